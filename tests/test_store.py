import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelport.config import Settings
from modelport.errors import IntegrityError, InvalidReference, ModelNotFound
from modelport.store import ModelRef, Store

from .artifacts import linear_artifact


def test_versions_count_up_and_plain_name_means_newest(store):
    assert store.register(linear_artifact(scale=1.0), name="m").version == 1
    assert store.register(linear_artifact(scale=2.0), name="m").version == 2
    assert store.manifest("m").version == 2
    assert store.manifest("m:1").version == 1
    assert store.manifest("m@latest").version == 2


def test_production_alias_decides_what_plain_name_means(store):
    store.register(linear_artifact(scale=1.0), name="m", aliases=("production",))
    store.register(linear_artifact(scale=2.0), name="m")
    assert store.manifest("m").version == 1
    store.set_alias("m:2", "production")
    assert store.manifest("m").version == 2
    store.remove_alias("m", "production")
    assert store.manifest("m").version == 2
    store.set_alias("m:1", "staging")
    assert store.manifest("m@staging").version == 1
    assert store.aliases("m") == {"staging": 1}


def test_get_returns_the_exact_bytes(store):
    artifact = linear_artifact(scale=3.0)
    store.register(artifact, name="m")
    assert store.get("m").onnx == artifact.onnx


def test_deleted_versions_are_not_reused(store):
    for scale in (1.0, 2.0):
        store.register(linear_artifact(scale=scale), name="m")
    assert store.delete("m:2") == [2]
    assert store.register(linear_artifact(scale=4.0), name="m").version == 3
    assert [m.version for m in store.versions("m")] == [1, 3]
    assert store.delete("m") == [1, 3]
    with pytest.raises(ModelNotFound):
        store.manifest("m")
    assert list(store.blobs.digests()) == []


def test_list_models(store):
    store.register(linear_artifact(scale=1.0), name="b")
    store.register(linear_artifact(scale=2.0), name="a", aliases=("production",))
    store.register(linear_artifact(scale=3.0), name="a")
    summaries = store.list_models()
    assert [(s.name, s.latest_version, s.versions) for s in summaries] == [("a", 2, 2), ("b", 1, 1)]
    assert summaries[0].aliases == {"production": 1}
    assert summaries[0].task == "regression"


@pytest.mark.parametrize(
    ("ref", "error", "words"),
    [
        ("nope", ModelNotFound, "no model named 'nope'"),
        ("mm", ModelNotFound, "no model named 'mm'. Did you mean 'm'?"),
        ("m:7", ModelNotFound, "no version 7"),
        ("m@gone", ModelNotFound, "no alias 'gone'"),
        ("m:x", InvalidReference, "whole number"),
        ("bad name", InvalidReference, "not valid"),
        ("m@9lives", InvalidReference, "starting with a letter"),
    ],
)
def test_unknown_or_malformed_references(store, ref, error, words):
    store.register(linear_artifact(), name="m")
    with pytest.raises(error, match=words):
        store.manifest(ref)


def test_latest_cannot_be_set(store):
    store.register(linear_artifact(), name="m")
    with pytest.raises(InvalidReference, match="built-in"):
        store.set_alias("m:1", "latest")


def test_corrupted_blob_is_detected(store):
    manifest = store.register(linear_artifact(), name="m")
    path = store.blobs.path(manifest.sha256)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(IntegrityError, match="corrupted"):
        store.get("m")
    assert len(store.check()) == 1


def test_refs_round_trip():
    for text in ("m", "m:3", "m@production"):
        assert str(ModelRef.parse(text)) == text


REGISTER_LOOP = """
import sys
from modelport.config import Settings
from modelport.store import Store
sys.path.insert(0, {tests!r})
from artifacts import linear_artifact
store = Store(Settings(home={home!r}))
for i in range({count}):
    artifact = linear_artifact(scale={base} + i, padding={padding})
    print("registering", i, flush=True)
    store.register(artifact, name="m")
    print("registered", i, flush=True)
"""


def _writer(home: Path, base: int, count: int, padding: int = 0) -> subprocess.Popen[str]:
    code = REGISTER_LOOP.format(
        tests=str(Path(__file__).parent), home=str(home), count=count, base=base, padding=padding
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_two_processes_registering_at_once_get_distinct_versions(home):
    writers = [_writer(home, base, 10) for base in (100, 200)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    store = Store(Settings(home=home))
    versions = [m.version for m in store.versions("m")]
    assert versions == list(range(1, 21))
    assert len({m.sha256 for m in store.versions("m")}) == 20
    assert store.check() == []


def test_sigkill_mid_registration_leaves_a_consistent_store(home):
    """Kill writers of 8 MB models inside a registration; every version left must load and verify.

    A writer is killed once it reports that registration N+1 began (not after a delay: a slow
    machine may need seconds for the first), after a pause that lands at varied moments of it.
    """
    landed = 0
    for round_, (done, pause) in enumerate(((0, 0.0), (1, 0.01), (2, 0.03), (1, 0.06), (2, 0.1))):
        writer = _writer(home, 1000 * (round_ + 1), 50, padding=8_000_000)
        assert writer.stdout is not None
        for line in writer.stdout:
            if line.split() == ["registering", str(done)]:
                break
        else:
            raise AssertionError(f"writer {round_} exited before registration {done} began")
        time.sleep(pause)  # any moment of that registration: the assertions hold for all
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        landed += done
    store = Store(Settings(home=home))
    manifests = store.versions("m")
    assert len(manifests) >= landed  # every reported registration stayed
    assert store.check() == []
    for manifest in manifests:
        assert store.get(f"m:{manifest.version}").manifest.sha256 == manifest.sha256
    # leftovers of killed writers are unreferenced and removable, never half models; a sweep
    # spares files younger than an hour (a registration may be in progress), so age them
    an_hour_ago = time.time() - 3700
    for digest in store.blobs.digests():
        os.utime(store.blobs.path(digest), (an_hour_ago, an_hour_ago))
    store.collect_garbage()
    assert set(store.blobs.digests()) == {m.sha256 for m in manifests}


def test_generation_grows_with_every_change(store):
    seen = [store.generation()]
    store.register(linear_artifact(), name="m")
    seen.append(store.generation())
    store.set_alias("m:1", "production")
    seen.append(store.generation())
    store.remove_alias("m", "production")
    seen.append(store.generation())
    store.delete("m")
    seen.append(store.generation())
    assert seen == sorted(set(seen)) and len(seen) == 5


def test_deleting_the_last_version_then_the_model(store):
    store.register(linear_artifact(), name="m")
    store.delete("m:1")
    with pytest.raises(ModelNotFound, match=r"no model named 'm' \(the store is empty\)"):
        store.manifest("m")
    assert store.delete("m") == []  # the empty name can still be removed
    assert store.register(linear_artifact(), name="m").version == 1
