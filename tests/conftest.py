"""Fixtures: an isolated store per test, the real `modelport` command, generated datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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


def shared_csv(name: str) -> Path:
    """A CSV from ../shared/data, or skip the test when that folder is absent."""
    matches = sorted((SHARED_DATA / name).glob("*.csv")) if (SHARED_DATA / name).is_dir() else []
    if not matches:
        pytest.skip(f"../shared/data/{name} is not available")
    return matches[0]
