"""What each install brings: the base install is the light device SDK."""

import tomllib

from .conftest import REPO

LIGHT = {"numpy", "onnxruntime", "httpx", "cryptography", "pillow"}


def _names(requirements):
    return {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for r in requirements}


def test_the_base_install_is_only_the_device_sdk():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert _names(project["dependencies"]) == LIGHT
    assert project["optional-dependencies"]["client"] == []
    # torch only in the zoo extra, pinned to the CPU build: never a multi-GB GPU build by accident
    everything = [r for group in project["optional-dependencies"].values() for r in group]
    torches = [r for r in project["dependencies"] + everything if _names([r]) == {"torch"}]
    assert torches == ["torch==2.13.0"]
    assert "torch==2.13.0" in project["optional-dependencies"]["zoo"]


def test_the_command_tells_which_extra_is_missing(monkeypatch, capsys):
    import builtins

    import pytest

    from modelport import _entry

    real_import = builtins.__import__

    def without_typer(name, *args, **kwargs):
        if name in ("typer", "cli") or name.startswith("modelport.cli"):
            raise ImportError("No module named 'typer'", name="typer")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_typer)
    with pytest.raises(SystemExit) as exit_info:
        _entry.main()
    assert "pip install 'modelport[all]'" in str(exit_info.value)
