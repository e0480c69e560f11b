"""Atomic writes: user outputs get the umask's mode, secrets 0600 from their first byte."""

from __future__ import annotations

import os
import stat

import pytest

from modelport._fs import atomic_write, atomic_writer

from .conftest import mode


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write(tmp_path / "churn.onnx", b"graph")
    assert mode(tmp_path / "churn.onnx") == expected
    assert (tmp_path / "churn.onnx").read_bytes() == b"graph"


@pytest.mark.parametrize(("name", "private"), [("secret.bin", True), ("ed25519.pem", False)])
def test_secrets_are_0600_from_the_first_byte(tmp_path, umask, name, private):
    """``private=True``, or key material by its name (*.pem, *.key), whatever the umask."""
    umask(0o000)
    with atomic_writer(tmp_path / name, private=private) as handle:
        assert stat.S_IMODE(os.fstat(handle.fileno()).st_mode) == 0o600  # the temp file too
        handle.write(b"key")
    assert mode(tmp_path / name) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
