"""The device SDK against a real server: modes, fallback, updates, verification, rollback."""

import itertools
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from modelport.client import CacheNotWritable, Client, ServerUnavailable
from modelport.errors import IntegrityError, InvalidInput, SchemaMismatch

from .artifacts import linear_artifact
from .conftest import Server
from .serving import ROWS, churn_server, churn_store, wait_until


@pytest.fixture
def setup(tmp_path):
    """A server of this test's own: the test may change its store or stop it."""
    with churn_server(tmp_path / "home") as (server, store):
        yield server, store, tmp_path / "cache"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    with churn_server(tmp_path_factory.mktemp("shared") / "home") as served:
        yield served


@pytest.fixture
def shared(shared_server, tmp_path):
    """A server shared by this module's tests: they keep it running and leave 'churn' and 'lin'
    as they are (a test that changes a model uses its own, `lin` below); the device cache is the
    test's own."""
    server, store = shared_server
    return server, store, tmp_path / "cache"


_models = itertools.count(1)


@pytest.fixture
def lin(shared_server):
    """A model of this test's own on the shared server, to add versions to or encrypt: like
    'lin', version 1 is a*1+b."""
    name = f"lin-{next(_models)}"
    shared_server[1].register(linear_artifact(name, scale=1.0), name=name)
    return name


def test_the_client_package_is_light():
    code = (
        "import sys, modelport.client; heavy = {'pandas', 'sklearn', 'flaml', 'sqlalchemy', "
        "'starlette', 'uvicorn', 'torch', 'pydantic', 'lightgbm', 'onnx', 'scipy'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_local_and_remote_agree_and_say_who_answered(shared):
    server, _, cache = shared
    with Client(server.url, cache_dir=cache) as client:
        local = client.model("churn", mode="prefer_local", update="latest").predict(ROWS)
        remote = client.model("churn", mode="remote_only").predict(ROWS)
    assert (local.served_by, remote.served_by) == ("local", "remote")
    assert local.version == remote.version == 1
    assert local.predictions == remote.predictions
    for a, b in zip(local.probabilities, remote.probabilities, strict=True):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def test_server_down_local_keeps_answering_and_remote_falls_back(setup):
    server, _, cache = setup
    client = Client(server.url, cache_dir=cache, timeout=30)  # a stopped server refuses at once
    model = client.model("churn", mode="prefer_remote", update="latest")
    assert model.predict(ROWS).served_by == "remote"
    server.stop()
    assert model.predict(ROWS).served_by == "local"  # connection refused -> local copy
    assert client.model("churn", mode="prefer_local").predict(ROWS).served_by == "local"
    remote_only = client.model("churn", mode="remote_only")
    for _ in range(3):
        with pytest.raises(ServerUnavailable):
            remote_only.predict(ROWS)
    with pytest.raises(ServerUnavailable, match="circuit open"):
        remote_only.predict(ROWS)


def test_input_errors_are_raised_not_hidden_by_fallback(shared):
    server, _, cache = shared
    model = Client(server.url, cache_dir=cache).model(
        "churn", mode="prefer_remote", update="latest"
    )
    with pytest.raises(SchemaMismatch, match="lacks the column"):
        model.predict([{"age": 30}])


def test_new_versions_arrive_by_sync_and_rollback_goes_back(shared, lin):
    server, store, cache = shared
    events = []
    model = Client(server.url, cache_dir=cache).model(
        lin, mode="local_only", update="latest", on_sync=events.append
    )
    assert model.predict([{"a": 2, "b": 1}]).predictions == [3.0]
    assert model.sync() == 1 and events[-1].state == "up_to_date"  # answered by a 304
    store.register(linear_artifact(lin, scale=10.0), name=lin)
    assert model.sync() == 2 and events[-1].state == "installed"
    assert any(e.state == "downloading" and e.done_bytes > 0 for e in events)
    assert model.predict([{"a": 2, "b": 1}]).predictions == [21.0]
    assert model.versions() == {"cached": [1, 2], "current": 2, "previous": 1}
    assert model.rollback() == 1
    assert model.predict([{"a": 2, "b": 1}]).version == 1


def test_latest_offline_uses_the_cached_copy_and_says_it_is_stale(setup):
    server, _, cache = setup
    Client(server.url, cache_dir=cache).model("lin", update="latest").predict([{"a": 1, "b": 1}])
    server.stop()
    result = (
        Client(server.url, cache_dir=cache, timeout=1)
        .model("lin", mode="prefer_local", update="latest")
        .predict([{"a": 1, "b": 1}])
    )
    assert (result.served_by, result.stale, result.predictions) == ("local", True, [2.0])


def _tampering_transport(server_url, change):
    upstream = httpx.Client(base_url=server_url)

    def handle(request):
        response = upstream.request(request.method, request.url.path, headers=request.headers)
        content = response.content
        if request.url.path.endswith("/artifact"):
            content = change(content)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=content)

    return httpx.MockTransport(handle)


def _swap_graph(data: bytes) -> bytes:
    """A well-formed bundle whose graph was changed after signing off: only the hash can tell."""
    import io
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("manifest.json", source.read("manifest.json"))
        target.writestr("model.onnx", source.read("model.onnx").replace(b"Mul", b"Add"))
    return out.getvalue()


@pytest.mark.parametrize(
    "change", [_swap_graph, lambda data: data[: len(data) // 2]], ids=["tampered", "truncated"]
)
def test_a_bad_download_is_rejected_and_the_old_version_keeps_serving(shared, lin, change):
    server, store, cache = shared
    Client(server.url, cache_dir=cache).model(lin, update="latest").predict([{"a": 1, "b": 1}])
    store.register(linear_artifact(lin, scale=10.0), name=lin)
    client = Client(server.url, cache_dir=cache, transport=_tampering_transport(server.url, change))
    model = client.model(lin, mode="local_only", update="local")
    with pytest.raises((IntegrityError, InvalidInput)) as error:
        model.sync()
    assert "corrupted" in str(error.value) or "not a modelport artifact" in str(error.value)
    assert model.predict([{"a": 1, "b": 1}]).predictions == [2.0]
    assert model.versions()["cached"] == [1]


def test_a_damaged_cache_file_falls_back_to_the_previous_version(shared, lin):
    server, store, cache = shared
    model = Client(server.url, cache_dir=cache).model(lin, update="latest")
    model.predict([{"a": 1, "b": 1}])
    store.register(linear_artifact(lin, scale=10.0), name=lin)
    model.sync()
    current = cache / lin / "v2.zip"
    current.write_bytes(current.read_bytes()[:-40])
    fresh = Client(None, cache_dir=cache).model(lin, mode="local_only")
    assert fresh.predict([{"a": 1, "b": 1}]).version == 1


def test_unwritable_cache_is_a_clear_error(shared, tmp_path):
    server, _, _ = shared
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    model = Client(server.url, cache_dir=blocker).model("lin", mode="local_only", update="local")
    with pytest.raises(CacheNotWritable, match="Cannot write the model cache"):
        model.predict([{"a": 1, "b": 1}])


def test_predictions_keep_working_while_a_sync_swaps_versions(shared, lin):
    server, store, cache = shared
    model = Client(server.url, cache_dir=cache).model(lin, mode="local_only", update="latest")
    model.predict([{"a": 1, "b": 1}])
    store.register(linear_artifact(lin, scale=3.0, padding=2_000_000), name=lin)
    answers, errors, stop = [], [], threading.Event()

    def predict_loop():
        while not stop.is_set():
            try:
                answers.append(model.predict([{"a": 1, "b": 1}]).predictions[0])
            except Exception as exc:  # noqa: BLE001 - any failure fails the test
                errors.append(exc)

    threads = [threading.Thread(target=predict_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: 2.0 in answers or errors, "no prediction from version 1")
    assert model.sync() == 2
    wait_until(lambda: 4.0 in answers or errors, "no prediction from version 2")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == [] and set(answers) == {2.0, 4.0}
    assert model.predict([{"a": 1, "b": 1}]).predictions == [4.0]


def test_signatures_pin_the_servers_key(shared, modelport, monkeypatch):
    server, store, cache = shared
    public = httpx.get(f"{server.url}/api/v1/signing-key").json()["public_key"]
    monkeypatch.setenv("MODELPORT_HOME", str(store.settings.home))  # the server's store
    assert modelport("keys", "signing").stdout.strip() == public
    model = Client(server.url, cache_dir=cache).model("lin", update="latest")
    model.predict([{"a": 1, "b": 1}])
    assert (cache / "signing-key.pub").read_text() == public  # trusted on first use

    stranger = "A" * 43 + "="  # a valid-looking Ed25519 key that is not the server's
    pinned = Client(server.url, cache_dir=cache / "other", public_key=stranger)
    with pytest.raises(IntegrityError, match="does not match the pinned public key"):
        pinned.model("lin", mode="local_only", update="local").sync()
    assert not (cache / "other" / "lin" / "v1.zip").exists()


def test_a_forged_signature_is_rejected(shared, lin):
    server, store, cache = shared
    model = Client(server.url, cache_dir=cache).model(lin, update="latest")
    model.predict([{"a": 1, "b": 1}])
    store.register(linear_artifact(lin, scale=7.0), name=lin)
    upstream = httpx.Client(base_url=server.url)

    def forge(request):
        response = upstream.request(request.method, request.url.path, headers=request.headers)
        headers = dict(response.headers)
        if request.url.path.endswith("/artifact"):
            headers["x-modelport-signature"] = "A" * 86 + "=="
        headers.pop("content-length", None)
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    forged = Client(server.url, cache_dir=cache, transport=httpx.MockTransport(forge))
    victim = forged.model(lin, mode="local_only", update="local")
    with pytest.raises(IntegrityError, match="signature"):
        victim.sync()
    assert victim.predict([{"a": 1, "b": 1}]).version == 1


def test_pull_packages_a_verified_model_for_an_app(shared, modelport, tmp_path):
    server, _, _ = shared
    target = tmp_path / "app-assets"
    out = modelport("pull", "churn", "--server", server.url, "--to", target).stdout
    assert "version 1 verified" in out
    assert (target / "churn" / "v1.zip").exists() and (target / "signing-key.pub").exists()
    offline = Client(None, cache_dir=target).model("churn", mode="local_only")
    assert offline.predict(ROWS).served_by == "local"


def test_encrypted_at_rest_and_decrypted_only_in_memory(
    shared, lin, modelport, tmp_path, monkeypatch
):
    import shutil
    import stat

    from modelport.errors import ModelNotFound

    server, store, cache = shared
    monkeypatch.setenv("MODELPORT_HOME", str(store.settings.home))  # the server's store
    modelport("models", "encrypt", lin)
    model = Client(server.url, cache_dir=cache).model(lin, mode="local_only", update="latest")
    assert model.predict([{"a": 2, "b": 1}]).predictions == [3.0]
    on_disk = (cache / lin / "v1.zip").read_bytes()
    clear = store.get(lin).onnx
    assert on_disk.startswith(b"MPENC1") and clear[:64] not in on_disk
    key_file = cache / "keys" / f"{lin}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Client(None, cache_dir=cache).model(lin, mode="local_only").predict(
        [{"a": 2, "b": 1}]
    ).predictions == [3.0]  # offline, with the stored key

    other_device = tmp_path / "copied-cache"
    shutil.copytree(cache / lin, other_device / lin)  # the file without its key
    with pytest.raises(ModelNotFound, match="key was never fetched on this device"):
        Client(None, cache_dir=other_device).model(lin, mode="local_only").predict(
            [{"a": 2, "b": 1}]
        )


def test_devices_get_the_int8_variant_when_it_is_smaller_and_as_good(shared, tmp_path):
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelport.export.importers import import_file

    server, store, cache = shared
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    mlp = make_pipeline(StandardScaler(), MLPClassifier((128, 128), max_iter=200, random_state=0))
    joblib.dump(mlp.fit(X, y), tmp_path / "mlp.joblib")
    X.to_csv(tmp_path / "sample.csv", index=False)
    manifest = store.register(import_file(tmp_path / "mlp.joblib", "mlp", tmp_path / "sample.csv"))
    report = manifest.variants["int8"]
    assert report["size_bytes"] < report["fp32_size_bytes"] / 3 and report["recommended"]

    client = Client(server.url, cache_dir=cache)
    default = client.model("mlp", mode="local_only", update="latest")
    rows = X.head(50)
    assert default.predict(rows).version == 1
    assert default._predictor.manifest.variant == "int8"
    fp32 = Client(server.url, cache_dir=tmp_path / "fp32").model(
        "mlp", mode="local_only", update="latest", variant="fp32"
    )
    agree = np.mean(
        np.array(default.predict(rows).predictions) == np.array(fp32.predict(rows).predictions)
    )
    assert fp32._predictor.manifest.variant == "fp32" and agree >= 0.98


def test_an_unresolvable_server_falls_back_to_the_cached_copy(shared):
    server, _, cache = shared
    Client(server.url, cache_dir=cache).model("lin", update="latest").predict([{"a": 1, "b": 1}])
    lost = Client("http://modelport-test.invalid:9", cache_dir=cache, timeout=2)
    result = lost.model("lin", mode="prefer_remote", update="local").predict([{"a": 1, "b": 1}])
    assert (result.served_by, result.predictions) == ("local", [2.0])


@pytest.mark.parametrize("fault", ["delay", "drop"])
def test_a_slow_or_dropping_server_falls_back_to_the_cached_copy(shared, fault):
    from .proxy import FlakyProxy

    server, _, cache = shared
    proxy = FlakyProxy(server.port, delay=30)
    try:
        model = Client(proxy.url, cache_dir=cache, timeout=5).model(
            "lin", mode="prefer_remote", update="latest"
        )
        assert model.predict([{"a": 1, "b": 1}]).served_by == "remote"
        proxy.mode = fault
        started = time.monotonic()
        result = model.predict([{"a": 1, "b": 1}])
        assert (result.served_by, result.predictions) == ("local", [2.0])
        assert time.monotonic() - started < 15  # the timeout (5 s), not the server (30 s), decided
        proxy.mode = "pass"
        assert model.predict([{"a": 1, "b": 1}]).served_by == "remote"
    finally:
        proxy.close()


def test_background_updates_arrive_without_a_restart(shared, lin):
    server, store, cache = shared
    Client(server.url, cache_dir=cache).model(lin, update="latest").predict([{"a": 1, "b": 1}])
    store.register(linear_artifact(lin, scale=10.0), name=lin)
    events = []
    model = Client(server.url, cache_dir=cache).model(
        lin, mode="local_only", update="background", on_sync=events.append
    )
    first = model.predict([{"a": 1, "b": 1}])  # answers at once from the cached copy
    deadline = time.monotonic() + 30
    while not any(e.state == "installed" for e in events):
        assert time.monotonic() < deadline, f"no background install: {events}"
        time.sleep(0.05)
    assert first.version == 1 and model.predict([{"a": 1, "b": 1}]).version == 2


def test_a_revoked_key_stops_updates_but_not_the_cached_model(tmp_path):
    from modelport.errors import Unauthorized
    from modelport.serve.keys import KeyStore

    home = tmp_path / "home"
    store = churn_store(home)
    keys = KeyStore(store.engine)
    info, secret = keys.create("phone")
    server = Server(home)
    try:
        model = Client(server.url, api_key=secret, cache_dir=tmp_path / "cache").model(
            "lin", mode="prefer_local", update="latest"
        )
        assert model.predict([{"a": 1, "b": 1}]).served_by == "local"
        keys.revoke(info.id)
        deadline = time.monotonic() + 30
        while True:
            try:
                model.sync()
            except Unauthorized as exc:
                assert "revoked" in str(exc)
                break
            assert time.monotonic() < deadline, "the revoked key still syncs"
            time.sleep(0.2)
        assert model.predict([{"a": 1, "b": 1}]).predictions == [2.0]
    finally:
        server.stop()


def test_a_relabelled_manifest_fails_the_signature(shared):
    import io
    import json
    import zipfile

    server, store, cache = shared

    def relabel(data: bytes) -> bytes:
        source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        manifest = json.loads(source.read("manifest.json"))
        manifest["class_labels"] = list(reversed(manifest["class_labels"]))  # same graph and hash
        with zipfile.ZipFile(out, "w") as target:
            target.writestr("manifest.json", json.dumps(manifest))
            for name in source.namelist():
                if name != "manifest.json":
                    target.writestr(name, source.read(name))
        return out.getvalue()

    client = Client(
        server.url, cache_dir=cache, transport=_tampering_transport(server.url, relabel)
    )
    with pytest.raises(IntegrityError, match="signature"):
        client.model("churn", mode="local_only", update="local").sync()
