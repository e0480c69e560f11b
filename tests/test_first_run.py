"""A new user's first hour (issue 17): the README, `make run`, `modelport serve`'s settings and the
server's answers to the first mistakes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from modelport.config import Settings
from modelport.store import Store

from .artifacts import linear_artifact
from .conftest import MODELPORT, REPO, Server, free_port

README = (REPO / "README.md").read_text()
JSON = {"Content-Type": "application/json"}
LIN = {"rows": [{"a": 2.0, "b": 1.0}]}


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
def occupied():
    """A port some other program listens on (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`modelport serve` expected to stop before it starts serving."""
    return subprocess.run(
        [str(MODELPORT), "serve", *args],
        env={**os.environ, "MODELPORT_HOME": str(home), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def env_server(tmp_path_factory):
    """A server on the port MODELPORT_PORT names (no --port), loading eagerly as MODELPORT_LOAD
    says, with the model 'lin'."""
    home = tmp_path_factory.mktemp("env") / "home"
    Store(Settings(home=home)).register(linear_artifact("lin"), name="lin")
    port = free_port()
    server = Server(
        home, port=port, MODELPORT_PORT=str(port), MODELPORT_LOAD="eager", HOME=str(home.parent)
    )
    yield server
    server.stop()


def test_serve_takes_its_settings_from_the_environment(env_server):
    assert _metric(env_server, "modelport_loaded_models ") == 1  # eager: loaded before ready
    response = httpx.post(f"{env_server.url}/api/v1/models/lin/predict", json=LIN)
    assert response.status_code == 200


SETTINGS = {
    "MODELPORT_HOST": "0.0.0.0",
    "MODELPORT_WORKERS": "3",
    "MODELPORT_ALLOW_ANONYMOUS": "true",
    "MODELPORT_LOAD": "eager",
}


@pytest.mark.parametrize("flags", [False, True])
def test_a_flag_wins_over_its_setting_and_the_setting_holds_without_it(home, monkeypatch, flags):
    """In-process, with uvicorn.run recorded: what `modelport serve` starts, and the settings its
    worker processes read from the environment."""
    import uvicorn

    from modelport.cli.serve import serve as serve_command

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(kwargs))
    env_port, flag_port = free_port(), free_port()
    monkeypatch.delenv("MODELPORT_TRAIN_BACKEND", raising=False)
    for name, value in {**SETTINGS, "MODELPORT_PORT": str(env_port)}.items():
        monkeypatch.setenv(name, value)  # serve() rewrites them for its workers; undone after
    if flags:
        serve_command(
            host="127.0.0.1", port=flag_port, workers=1, allow_anonymous=False, load="lazy"
        )
        expected = {"host": "127.0.0.1", "port": flag_port, "workers": 1}
    else:
        serve_command()
        expected = {"host": "0.0.0.0", "port": env_port, "workers": 3}
    assert {k: started[k] for k in expected} == expected
    workers_see = Settings()
    assert (workers_see.load, workers_see.allow_anonymous) == (
        ("lazy", False) if flags else ("eager", True)
    )


def test_a_host_from_the_environment_is_refused_without_keys(home, monkeypatch):
    from modelport.cli.serve import serve as serve_command
    from modelport.errors import InvalidParameter

    monkeypatch.setenv("MODELPORT_HOST", "0.0.0.0")
    monkeypatch.setenv("MODELPORT_PORT", str(free_port()))
    with pytest.raises(InvalidParameter, match="Refusing to serve on 0.0.0.0"):
        serve_command()


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_a_port_in_use_is_one_clear_error_with_a_hint(home, occupied, how):
    args = ("--port", str(occupied)) if how == "flag" else ()
    env = {} if how == "flag" else {"MODELPORT_PORT": str(occupied)}
    result = serve(home, *args, **env)
    assert result.returncode == 1 and result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message, message
    assert f"Port {occupied} on 127.0.0.1 is already in use" in message
    assert "--port" in message and "MODELPORT_PORT" in message and "make run" in message
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_serves_the_users_store_on_the_chosen_port(home):
    """`MODELPORT_PORT=... make run` serves MODELPORT_HOME (default ~/.modelport) on that port,
    trains the demo model only if it is missing, and serves what the Quick start trains while it
    runs."""
    store = Store(Settings(home=home))
    store.register(linear_artifact("breast-cancer"), name="breast-cancer")  # no training needed
    port = free_port()
    # -o: the test runs inside the installed venv; never reinstall it from here
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "run"]
    server = Server(home, port=port, command=command, timeout=180, MODELPORT_PORT=str(port))
    try:
        log = server.log.read_text()
        assert "Demo model breast-cancer:1 is already in" in log
        assert f"curl -s localhost:{port}/v2/models/breast-cancer" in log
        assert "-H 'Content-Type: application/json'" in log
        assert f"Serving the store in {home} on http://127.0.0.1:{port}" in log
        # the Quick start, in a second terminal: a model registered now is served at once
        store.register(linear_artifact("churn", scale=2.0), name="churn")
        url = f"{server.url}/api/v1/models/churn/predict"
        deadline = time.monotonic() + 30
        while (response := httpx.post(url, json=LIN)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        assert response.json()["predictions"] == [5.0]
    finally:
        server.stop()
    assert [m.version for m in store.versions("breast-cancer")] == [1]


def test_empty_rows_and_binary_bodies_get_plain_answers(env_server):
    url = env_server.url
    empty = httpx.post(f"{url}/api/v1/models/lin/predict", json={"rows": []})
    assert empty.status_code == 400
    assert "no rows to predict" in empty.json()["error"]
    assert "of type list" not in empty.json()["error"]
    tf = httpx.post(f"{url}/v1/models/lin:predict", json={"instances": []})
    assert tf.status_code == 400 and "no rows to predict" in tf.json()["error"]
    binary = httpx.post(
        f"{url}/api/v1/models/lin/predict",
        content=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
        headers=JSON,
    )
    assert binary.status_code == 400
    error = binary.json()["error"]
    assert error.startswith("The request body is not valid JSON: it holds binary data")
    assert "Content-Type: application/json" in error
    assert "decode" not in error and "codec" not in error  # no decoder's wording


def _quick_start() -> str:
    return README[README.index("## Quick start") :]


def test_readme_puts_modelport_on_the_path_before_using_it():
    commands = re.findall(r"^\$ (.+)$", _quick_start(), flags=re.M)
    first = next(i for i, c in enumerate(commands) if c.startswith("modelport "))
    assert "source .venv/bin/activate" in commands[:first]


def test_readme_says_how_to_pick_a_port_and_posts_json_as_json():
    assert "MODELPORT_PORT=8002 make run" in README
    posts = [c for c in re.findall(r"^\$ (curl .+)$", README, flags=re.M) if " -d " in c]
    assert posts
    for command in posts:
        assert "-H 'Content-Type: application/json'" in command, command


def test_readme_lists_every_command():
    import typer

    from modelport.cli import app

    row = next(line for line in README.splitlines() if line.startswith("| CLI:"))
    names = re.findall(r"`([^`]+)`", row)
    for name, command in typer.main.get_command(app).commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            assert name in names, f"`{name}` is missing from the README's CLI row"
            continue
        listed = next((n for n in names if n.split()[0] == name), None)
        assert listed is not None, f"`{name}` is missing from the README's CLI row"
        if listed != name:  # `keys` alone stands for all of them; a list must be complete
            assert set(subcommands) <= set(listed.split(" ", 1)[1].split("/")), (name, listed)
