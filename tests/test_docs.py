"""The docs' examples run here, so they cannot rot; the output a page shows is compared too."""

import difflib
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from modelport.config import Settings

from .conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


@dataclass
class Step:
    """One example of a page: a console command (with the output the page shows) or Python."""

    kind: str
    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def page_steps(page: Path) -> list[Step]:
    """The ``console`` and ``python`` blocks of a page, in order; in a console block the lines
    after a ``$ `` command, up to the next one, are the output the page shows for it."""
    steps: list[Step] = []
    for kind, body in re.findall(r"```(console|python)\n(.*?)```", page.read_text(), flags=re.S):
        if kind == "python":
            steps.append(Step(kind, body))
            continue
        command = None
        for line in body.splitlines():
            if line.startswith("$ "):
                command = Step(kind, line[2:])
                steps.append(command)
            elif command is not None:
                command.shown.append(line)
    return steps


def console_commands(page: Path) -> list[list[str]]:
    return [step.args for step in page_steps(page) if step.kind == "console"]


def python_blocks(page: Path) -> list[str]:
    return [step.text for step in page_steps(page) if step.kind == "python"]


VOLATILE = [
    (r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?)?", "<time>"),
    (r"\d[\d,]* bytes", "<n> bytes"),
    # before hashes: a probability's long run of decimals is all hex digits too
    (r"-?\d+\.\d+(?:e[+-]?\d+)?", "<number>"),  # scores and probabilities of a timed search
    (r"\b[0-9a-f]{16,}\b", "<sha256>"),
    (r"([ ─━])\1+", r"\1"),  # table padding and rules, whose widths follow the values
]
"""What legitimately differs from run to run, and how both sides are rewritten before comparing."""


def normalised(text: str) -> list[str]:
    for pattern, replacement in VOLATILE:
        text = re.sub(pattern, replacement, text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def check_output(page: str, step: Step, printed: str, names: dict[str, str]) -> None:
    """Fail with a diff unless ``printed`` is what the page shows (``names`` maps the page's
    placeholders, such as KEY_ID, to the values of this run)."""
    if not step.shown:
        return
    for name, value in sorted(names.items(), key=lambda item: -len(item[1])):
        printed = printed.replace(value, name)
    expected, actual = normalised("\n".join(step.shown)), normalised(printed)
    if expected != actual:
        diff = "\n".join(
            difflib.unified_diff(expected, actual, f"{page} shows", "printed", lineterm="")
        )
        pytest.fail(
            f"The output of `{step.text}` is not what {page} shows (after normalising times, "
            f"hashes, sizes and decimals):\n{diff}\n\nprinted:\n{printed}",
            pytrace=False,
        )


def run_curl(args: list[str], step: Step, address: str, cwd: Path, names: dict[str, str]) -> str:
    """Run a page's curl against the test server; without shown output, an HTTP error fails it."""
    args = [substitute(a, names).replace("localhost:8000", address) for a in args]
    fail = [] if step.shown else ["--fail"]
    text = substitute(step.text, names).replace("localhost:8000", address)
    if "$(" in text:  # the shell makes part of it, e.g. <<< '"'$(base64 -w0 flower.jpg)'"'
        command = text.replace("curl ", f"curl {' '.join(fail)} ", 1)
        return subprocess.run(
            ["bash", "-c", command], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout
    return subprocess.run(
        [args[0], *fail, *args[1:]], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


LOCAL_TOKEN = "$(cat ~/.modelport/local-token)"
"""How the pages read the local admin token in a shell; the tests put the token of their store."""


def token_names(home: Path) -> dict[str, str]:
    """The placeholder of the local admin token, mapped to the one the test server made."""
    from modelport import local_token

    token = local_token.read(home)
    assert token, f"the server made no local admin token in {home}"
    return {LOCAL_TOKEN: token}


def substitute(arg: str, names: dict[str, str]) -> str:
    for name, value in names.items():
        arg = arg.replace(name, value)
    return arg


@pytest.fixture
def examples(tmp_path):
    """docs/examples, plus the photos the pages use: scikit-learn's sample photos (a package
    ships them, so the repository holds no photos of its own)."""
    from sklearn.datasets import load_sample_images

    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    for name in load_sample_images().filenames:
        shutil.copy(name, work)
    return work


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_console_examples(page, examples, modelport):
    # `serve` and curl against it are run by test_http_examples
    steps = [s for s in page_steps(REPO / page) if s.kind == "console" and s.args[0] == "modelport"]
    steps = [s for s in steps if s.args[1] != "serve"]
    assert steps, f"{page} has no console examples"
    names: dict[str, str] = {}
    for step in steps:
        printed = modelport(*shorter_budget(step.args[1:]), cwd=examples).stdout
        if step.args[1:3] == ["keys", "create"]:
            names.update(created_key(printed))
        check_output(page, step, printed, names)
    for produced in ("predictions.csv", "churn.onnx"):
        assert (examples / produced).stat().st_size > 0


def created_key(printed: str) -> dict[str, str]:
    """The placeholders KEY_ID and SECRET of what `keys create` printed."""
    found = re.search(r"Created key (\w+)", printed)
    assert found, printed
    return {"KEY_ID": found.group(1), "SECRET": printed.split()[-1]}


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
    Store(Settings(home=home)).register(trainer.to_artifact("churn"))  # pages set aliases
    server = Server(home)
    yield server
    server.stop()


def test_http_examples(churn_server, examples, home, modelport, monkeypatch):
    """docs/http.md in page order: curl, the CLI and Python against one server."""
    page = "docs/http.md"
    address = churn_server.url.removeprefix("http://")
    assert shutil.which("curl"), "the page shows curl examples and tests run them"
    monkeypatch.chdir(examples)
    namespace = {"URL": churn_server.url}
    names = token_names(home)  # placeholder -> this run's value
    ran = set()
    for step in page_steps(REPO / page):
        ran.add(step.args[0] if step.kind == "console" else "python")
        if step.kind == "python":
            exec(compile(step.text, page, "exec"), namespace)
            continue
        args = step.args
        if args[:2] == ["modelport", "serve"]:
            continue
        if args[0] == "curl":
            printed = run_curl(args, step, address, examples, names)
        else:
            printed = modelport(*(substitute(a, names) for a in args[1:]), cwd=examples).stdout
        if args[1:3] == ["keys", "create"]:
            names.update(created_key(printed))
            wait_for_keys(churn_server.url, names["SECRET"], 200)
        elif args[1:3] == ["keys", "revoke"]:
            wait_for_keys(churn_server.url, names["SECRET"], 401)
        check_output(page, step, printed, names)
    assert ran == {"curl", "modelport", "python"} and "SECRET" in names
    assert (examples / "churn.onnx").read_bytes()[:2] == b"\x08\x08"  # an ONNX protobuf header


def wait_for_keys(url: str, secret: str, status: int, timeout: float = 30) -> None:
    """Wait until the server's key table has caught up: ``secret`` answers ``status``."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {secret}"}
    while httpx.get(f"{url}/api/v1/models", headers=headers).status_code != status:
        assert time.monotonic() < deadline, f"the server did not pick up the key change ({url})"
        time.sleep(0.05)


def test_client_examples(churn_server, examples, modelport, tmp_path, monkeypatch):
    monkeypatch.chdir(examples)  # the page's photos
    for command in console_commands(REPO / "docs" / "client.md"):
        if command[:2] == ["modelport", "zoo"]:  # models the page's server needs
            modelport(*command[1:], cwd=examples)
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

    from .conftest import Server

    server = Server(home)
    monkeypatch.setenv("MODELPORT_SERVER", server.url)
    try:
        page = REPO / "docs" / "training.md"
        ids: dict[str, str] = {}
        for step in page_steps(page):
            if step.kind != "console":
                continue
            command = step.args
            if command[0] == "modelport":
                printed = modelport(*shorter_budget(command[1:]), cwd=examples).stdout
                check_output("docs/training.md", step, printed, ids)
                continue
            args = [a.replace('"time_budget": 20', '"time_budget": 4') for a in command]
            out = run_curl(args, step, server.url.removeprefix("http://"), examples, ids)
            check_output("docs/training.md", step, out, ids)
            url = next(a for a in args if "/api/v1/" in a and not a.startswith("{"))
            if url.endswith(("/api/v1/datasets", "/api/v1/jobs")):
                answer = json.loads(out)
                if set(answer) != {"error"}:  # not a refusal the page shows (compared above)
                    ids["DATASET_ID" if url.endswith("datasets") else "JOB_ID"] = answer["id"]
            elif url.endswith("/events"):
                assert "event: done" in out and '"status":"succeeded"' in out
        assert ids.keys() == {"DATASET_ID", "JOB_ID"}
        assert (examples / "churn.onnx").read_bytes()[:2] == b"\x08\x08"
        monkeypatch.chdir(examples)
        namespace = {"URL": server.url}
        for block in python_blocks(page):
            exec(compile(block, "docs/training.md", "exec"), namespace)
        names = {m["name"] for m in httpx.get(f"{server.url}/api/v1/models").json()["models"]}
        assert names == {"churn", "churn-own"}
    finally:
        server.stop()
