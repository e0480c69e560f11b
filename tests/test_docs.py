"""The docs' examples run here, so they cannot rot."""

import re
import shlex
import shutil
from pathlib import Path

import httpx
import pytest

from modelport.config import Settings

from .conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


def console_commands(page: Path) -> list[list[str]]:
    blocks = re.findall(r"```console\n(.*?)```", page.read_text(), flags=re.S)
    return [
        shlex.split(line[2:])
        for block in blocks
        for line in block.splitlines()
        if line.startswith("$ ")
    ]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.fixture
def examples(tmp_path):
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    return work


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_console_examples(page, examples, modelport):
    # `serve` and curl against it are run by test_http_examples
    commands = [c for c in console_commands(REPO / page) if c[0] == "modelport" and c[1] != "serve"]
    assert commands, f"{page} has no console examples"
    for command in commands:
        assert command[0] == "modelport", command
        modelport(*shorter_budget(command[1:]), cwd=examples)
    for produced in ("predictions.csv", "churn.onnx"):
        assert (examples / produced).stat().st_size > 0


def shorter_budget(args: list[str]) -> list[str]:
    """The docs' budgets, cut to 4 s to keep the suite quick."""
    return ["4" if i and args[i - 1] == "--time-budget" else a for i, a in enumerate(args)]


def test_python_examples(examples, home, monkeypatch, capsys):
    monkeypatch.chdir(examples)
    namespace: dict[str, object] = {}
    for block in python_blocks(REPO / "docs" / "python.md"):
        exec(compile(block, "docs/python.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "churn 1" in out
    assert "'monthly fee', 'plan', 'region'" in out


def test_settings_page_lists_every_setting():
    from modelport.config import settings_table

    page = (REPO / "docs" / "settings.md").read_text()
    assert settings_table() in page  # regenerate with: python -c "...import settings_table..."
    assert len(Settings.model_fields) == settings_table().count("`MODELPORT_")


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```console\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert first_block is not None
    lines = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert lines == ["make run", "make test"]


@pytest.fixture
def churn_server(examples, home):
    from modelport.config import Settings
    from modelport.data import read_table
    from modelport.store import Store
    from modelport.train import TabularAutoML

    from .conftest import Server

    frame = read_table(examples / "churn.csv")
    trainer = TabularAutoML(time_budget=3, estimators=("lgbm",))
    trainer.fit(frame.drop(columns="churn"), frame["churn"])
    Store(Settings(home=home)).register(trainer.to_artifact("churn"), aliases=("production",))
    server = Server(home)
    yield server
    server.stop()


def test_http_examples(churn_server, examples, modelport, monkeypatch):
    import subprocess

    page = REPO / "docs" / "http.md"
    commands = console_commands(page)
    address = churn_server.url.removeprefix("http://")
    curls = [c for c in commands if c[0] == "curl"]
    assert curls and shutil.which("curl"), "the page shows curl examples and tests run them"
    for command in curls:
        args = [a.replace("localhost:8000", address) for a in command]
        subprocess.run(
            [args[0], "--fail", *args[1:]], cwd=examples, check=True, capture_output=True
        )
    assert (examples / "churn.onnx").read_bytes()[:2] == b"\x08\x08"  # an ONNX protobuf header
    monkeypatch.chdir(examples)
    namespace = {"URL": churn_server.url}
    for block in python_blocks(page):
        exec(compile(block, "docs/http.md", "exec"), namespace)
    key_id = None
    for command in commands:
        if command[0] != "modelport" or command[1] == "serve":
            continue
        args = [key_id if a == "KEY_ID" else a for a in command[1:]]
        out = modelport(*args, cwd=examples).stdout
        if command[1:3] == ["keys", "create"]:
            key_id = re.search(r"Created key (\w+)", out).group(1)
    assert key_id is not None


def test_client_examples(churn_server, tmp_path, monkeypatch):
    namespace = {"URL": churn_server.url, "CACHE": tmp_path / "device-cache"}
    for block in python_blocks(REPO / "docs" / "client.md"):
        exec(compile(block, "docs/client.md", "exec"), namespace)
    pull = [
        c for c in console_commands(REPO / "docs" / "client.md") if c[:2] == ["modelport", "pull"]
    ]
    assert pull, "the page shows `modelport pull`"


def test_training_examples(examples, home, modelport, monkeypatch):
    """docs/training.md end to end: upload, job, events, predict, download, CLI, Python, script."""
    import json
    import subprocess

    from .conftest import Server

    server = Server(home)
    monkeypatch.setenv("MODELPORT_SERVER", server.url)
    try:
        page = REPO / "docs" / "training.md"
        ids: dict[str, str] = {}
        for command in console_commands(page):
            if command[0] == "modelport":
                modelport(*shorter_budget(command[1:]), cwd=examples)
                continue
            args = [
                a.replace("localhost:8000", server.url.removeprefix("http://"))
                .replace("DATASET_ID", ids.get("dataset", ""))
                .replace("JOB_ID", ids.get("job", ""))
                .replace('"time_budget": 20', '"time_budget": 4')
                for a in command[1:]
            ]
            out = subprocess.run(
                ["curl", "--fail", *args], cwd=examples, check=True, capture_output=True, text=True
            ).stdout
            url = next(a for a in args if "/api/v1/" in a and not a.startswith("{"))
            if url.endswith("/api/v1/datasets"):
                ids["dataset"] = json.loads(out)["id"]
            elif url.endswith("/api/v1/jobs"):
                ids["job"] = json.loads(out)["id"]
            elif url.endswith("/events"):
                assert "event: done" in out and '"status":"succeeded"' in out
        assert ids.keys() == {"dataset", "job"}
        assert (examples / "churn.onnx").read_bytes()[:2] == b"\x08\x08"
        monkeypatch.chdir(examples)
        namespace = {"URL": server.url}
        for block in python_blocks(page):
            exec(compile(block, "docs/training.md", "exec"), namespace)
        names = {m["name"] for m in httpx.get(f"{server.url}/api/v1/models").json()["models"]}
        assert names == {"churn", "churn-own"}
    finally:
        server.stop()
