"""Fixtures: an isolated store per test, the real `modelport` command, generated datasets."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelport.artifact import ModelArtifact
from modelport.config import Settings
from modelport.store import Store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MODELPORT = Path(sys.executable).with_name("modelport")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MODELPORT_HOME for this test (and for commands it runs)."""
    path = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(path))
    monkeypatch.setenv("HOME", str(tmp_path))  # onnxruntime writes a cache under $HOME
    return path


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """The process umask is 022 during the test (child processes inherit it); call the fixture's
    value to set another."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode(path: Path) -> int:
    """A file's permission bits, e.g. 0o644."""
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(home: Path) -> Store:
    return Store(Settings(home=home))


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def modelport(home: Path, tmp_path: Path) -> Run:
    """Run the installed `modelport` command in ``tmp_path`` with this test's store."""

    def run(
        *args: object, check: bool = True, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        result = subprocess.run(
            [str(MODELPORT), *map(str, args)],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"modelport {' '.join(map(str, args))} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


def pytest_configure(config: pytest.Config) -> None:
    """Zoo models are built once per test run, in one cache every test, CLI and server shares."""
    import tempfile

    os.environ.setdefault("MODELPORT_ZOO_CACHE", tempfile.mkdtemp(prefix="modelport-zoo-"))


@functools.cache
def zoo_model(name: str = "image-labeler") -> ModelArtifact:
    """A zoo model, built (once per run) into the shared MODELPORT_ZOO_CACHE."""
    from modelport import zoo

    return zoo.load(name, Path(os.environ["MODELPORT_ZOO_CACHE"]))


@functools.cache
def trained_churn() -> ModelArtifact:
    """The churn classifier (LightGBM on 400 generated rows, 2 s budget) trained once per test
    session: tests that need *a* trained classifier, not a training, share it."""
    from modelport.train import TabularAutoML

    from .datasets import mixed_classification

    frame = mixed_classification(400)
    trainer = TabularAutoML(time_budget=2, estimators=("lgbm",))
    return trainer.fit(frame.drop(columns="churn"), frame["churn"]).to_artifact("churn")


@functools.cache
def trained_spam() -> ModelArtifact:
    """A text classifier (TF-IDF of 'message' -> spam/ham, 4 s budget), trained once per session."""
    from modelport.train import TabularAutoML

    from .datasets import spam_messages

    frame = spam_messages()
    trainer = TabularAutoML(time_budget=4)
    return trainer.fit(frame[["message"]], frame["label"]).to_artifact("spam")


def shared_csv(name: str) -> Path:
    """A CSV from ../shared/data, or skip the test when that folder is absent."""
    matches = sorted((SHARED_DATA / name).glob("*.csv")) if (SHARED_DATA / name).is_dir() else []
    if not matches:
        pytest.skip(f"../shared/data/{name} is not available")
    return matches[0]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real `modelport serve` process on a free port.

    With ``port``, the caller's ``args`` or environment choose the port (``--port`` or
    ``MODELPORT_PORT``) and the server is expected there; with ``command``, another command (such
    as `make run`) starts it, in a process group of its own that :meth:`stop` ends as a whole.
    """

    def __init__(
        self,
        home: Path,
        *args: str,
        port: int | None = None,
        command: list[str] | None = None,
        timeout: float = 120,
        **env: str,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        environment = {
            **os.environ,
            "MODELPORT_HOME": str(home),
            "MODELPORT_POLL_INTERVAL": "0.2",
            "MODELPORT_METER_FLUSH_SECONDS": "0.2",
            "MODELPORT_WARM_JOB_WORKER": "false",  # servers that train turn it on
            **env,
        }
        home.mkdir(parents=True, exist_ok=True)
        flags = () if port else ("--port", str(self.port))
        self.group = command is not None
        self.process = subprocess.Popen(
            command or [str(MODELPORT), "serve", *flags, *args],
            cwd=REPO if command else None,
            env=environment,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=self.group,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.group:
            self._stop_group()
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _stop_group(self) -> None:
        """SIGTERM to every process of the group (as Ctrl-C reaches all of `make run`), then
        wait for all of them to be gone; SIGKILL after 15 s."""
        import time

        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.process.poll()  # reaps make; the server it started is reaped by init
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
