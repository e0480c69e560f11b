"""Security: what a web page, a stranger's key, a tampering network and a crafted file can do.

Every test here failed before the fixes of issue 10 (each says what it stopped).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import zipfile
from pathlib import Path

import httpx
import pytest

from modelport import local_token
from modelport.client import Client
from modelport.config import Settings
from modelport.errors import IntegrityError, InvalidInput
from modelport.serve.keys import KeyStore
from modelport.store import Store
from modelport.store.db import ModelKeyRow

from .artifacts import linear_artifact
from .conftest import Server

CSV = b"a,b,target\n" + b"".join(b"%d,%d,%d\n" % (i, i % 7, i % 2) for i in range(40))
SCRIPT_JOB = {"name": "pwned", "target": "target", "script": "import os\nos.system('touch /tmp/x')"}
CALLERS = ("anonymous", "predict", "train", "metrics", "admin", "limited")
ROUTE_SCOPES = {
    # (method, OpenAPI path) -> the scope the route declares (None: public)
    ("GET", "/v2"): None,
    ("GET", "/v2/health/live"): None,
    ("GET", "/v2/health/ready"): None,
    ("GET", "/v2/models/{name}"): "predict",
    ("GET", "/v2/models/{name}/ready"): "predict",
    ("POST", "/v2/models/{name}/infer"): "predict",
    ("GET", "/v2/models/{name}/versions/{version}"): "predict",
    ("GET", "/v2/models/{name}/versions/{version}/ready"): "predict",
    ("POST", "/v2/models/{name}/versions/{version}/infer"): "predict",
    ("GET", "/v1/models/{name}"): "predict",
    ("GET", "/v1/models/{name}/metadata"): "predict",
    ("GET", "/v1/models/{name}/versions/{version}"): "predict",
    ("GET", "/v1/models/{name}/labels/{label}"): "predict",
    ("POST", "/v1/models/{name}:predict"): "predict",
    ("POST", "/v1/models/{name}/versions/{version}:predict"): "predict",
    ("POST", "/v1/models/{name}/labels/{label}:predict"): "predict",
    ("GET", "/api/v1/models"): "predict",
    ("POST", "/api/v1/models/{ref}/predict"): "predict",
    ("GET", "/api/v1/models/{ref}/manifest"): "predict",
    ("GET", "/api/v1/models/{ref}/artifact"): "predict",
    ("GET", "/api/v1/models/{ref}/key"): "predict",
    ("GET", "/api/v1/usage"): "admin",
    ("GET", "/api/v1/signing-key"): None,
    ("POST", "/api/v1/datasets"): "train",
    ("GET", "/api/v1/datasets"): "train",
    ("GET", "/api/v1/datasets/{id}"): "train",
    ("DELETE", "/api/v1/datasets/{id}"): "train",
    ("POST", "/api/v1/jobs"): "train",
    ("GET", "/api/v1/jobs"): "train",
    ("GET", "/api/v1/jobs/{id}"): "train",
    ("DELETE", "/api/v1/jobs/{id}"): "train",
    ("GET", "/api/v1/jobs/{id}/events"): "train",
    ("GET", "/api/v1/jobs/{id}/logs"): "train",
    ("GET", "/api/v1/jobs/{id}/report"): "train",
    ("GET", "/metrics"): "metrics",
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
}
HOLDS = {  # which callers hold each scope (the limited key: predict, for another model only)
    "predict": {"predict", "train", "admin", "limited"},
    "train": {"train", "admin"},
    "metrics": {"metrics", "admin"},
    "admin": {"admin"},
}
MODEL_IN_URL = re.compile(r"\{(name|ref)\}")


def _keys(home: Path) -> dict[str, str]:
    keys = KeyStore(Store(Settings(home=home)).engine)
    made = {scope: keys.create(f"{scope}-key", scope)[1] for scope in HOLDS}
    made["limited"] = keys.create("limited-key", "predict", models=["other"])[1]
    made["other-train"] = keys.create("other-train", "train")[1]  # known before the server starts
    return made


def _headers(secret: str | None, **more: str) -> dict[str, str]:
    return {**({"Authorization": f"Bearer {secret}"} if secret else {}), **more}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory):
    """A server with keys of every kind, /metrics behind a key, and no job ever running."""
    home = tmp_path_factory.mktemp("keyed")
    Store(Settings(home=home)).register(linear_artifact("lin"), name="lin")
    secrets = {"anonymous": None, **_keys(home)}
    server = Server(home, MODELPORT_JOB_WORKERS="0", MODELPORT_METRICS_REQUIRE_KEY="true")
    yield server, secrets, home
    server.stop()


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory):
    """The `make run` default: no keys, loopback, nothing allowed cross-origin."""
    home = tmp_path_factory.mktemp("keyless")
    Store(Settings(home=home)).register(linear_artifact("lin"), name="lin")
    server = Server(home, MODELPORT_JOB_WORKERS="0")
    yield server, home
    server.stop()


def _jobs_and_datasets(home: Path) -> tuple[int, int]:
    store = Store(Settings(home=home))
    return len(store.jobs.list()), len(store.datasets.list())


# -- a web page against a keyless local server ---------------------------------------------------


def test_a_cross_origin_text_plain_post_starts_nothing(keyless):
    server, home = keyless
    before = _jobs_and_datasets(home)
    refused = httpx.post(
        f"{server.url}/api/v1/jobs",
        content=json.dumps({**SCRIPT_JOB, "dataset": "ds_x"}),
        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
    )
    assert refused.status_code == 403 and "evil.example" in refused.json()["error"]
    # the same body from a non-browser client without the JSON type: 415, not a job
    untyped = httpx.post(
        f"{server.url}/api/v1/jobs",
        content=json.dumps({"dataset": "ds_x", "name": "m", "target": "t"}),
        headers={"Content-Type": "text/plain"},
    )
    assert untyped.status_code == 415 and "application/json" in untyped.json()["error"]
    assert _jobs_and_datasets(home) == before


def test_a_foreign_host_is_refused_which_stops_dns_rebinding(keyless):
    server, home = keyless
    before = _jobs_and_datasets(home)
    rebound = httpx.post(
        f"{server.url}/api/v1/datasets?filename=d.csv",
        content=CSV,
        headers={
            "Host": f"evil.example:{server.port}",
            "Origin": f"http://evil.example:{server.port}",
        },
    )
    assert rebound.status_code == 400 and "MODELPORT_ALLOWED_HOSTS" in rebound.json()["error"]
    predict = httpx.post(
        f"{server.url}/api/v1/models/lin/predict",  # the fast path is guarded too
        json={"rows": [{"a": 1, "b": 2}]},
        headers={"Host": "evil.example"},
    )
    assert predict.status_code == 400
    assert _jobs_and_datasets(home) == before
    for host in ("localhost", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert httpx.get(f"{server.url}/v2", headers={"Host": host}).status_code == 200


def test_a_form_upload_from_another_origin_stores_nothing(keyless):
    server, home = keyless
    before = _jobs_and_datasets(home)
    refused = httpx.post(
        f"{server.url}/api/v1/datasets",
        files={"file": ("d.csv", CSV, "text/csv")},
        headers={"Origin": "http://evil.example"},
    )
    assert refused.status_code == 403
    no_cors_read = httpx.get(
        f"{server.url}/api/v1/jobs",
        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    )
    assert no_cors_read.status_code == 403
    link = httpx.get(
        f"{server.url}/docs", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    )
    assert link.status_code == 200  # following a link to the docs still works
    assert _jobs_and_datasets(home) == before
    same_origin = httpx.post(
        f"{server.url}/api/v1/models/lin/predict",
        json={"rows": [{"a": 1, "b": 2}]},
        headers={"Origin": server.url},
    )
    assert same_origin.status_code == 200


def test_admin_needs_the_local_token_even_without_keys(keyless):
    server, home = keyless
    anonymous = httpx.post(f"{server.url}/api/v1/jobs", json={**SCRIPT_JOB, "dataset": "ds_x"})
    assert anonymous.status_code == 401 and "local-token" in anonymous.json()["error"]
    assert httpx.get(f"{server.url}/api/v1/usage").status_code == 401
    token_file = local_token.path(home)
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = local_token.read(home)
    assert httpx.get(f"{server.url}/api/v1/usage", headers=_headers(token)).status_code == 200
    # predictions and AutoML training stay open to the machine's own user
    assert httpx.get(f"{server.url}/api/v1/models").status_code == 200


def test_the_sdk_and_cli_send_the_local_token_to_a_local_server(keyless, tmp_path, monkeypatch):
    from modelport.client import TrainingClient

    server, home = keyless
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    data = tmp_path / "d.csv"
    data.write_bytes(CSV)
    with TrainingClient(server.url) as trainer:
        dataset = trainer.upload(data)["id"]
        job = trainer.submit(dataset, "own", target="target", script="def train(d, t): pass")
        assert trainer.cancel(job["id"])["status"] == "cancelled"
    assert local_token.for_server("http://models.example.com", home) is None  # never sent away


def test_cors_allow_list_lets_a_named_origin_in(tmp_path):
    home = tmp_path / "home"
    Store(Settings(home=home)).register(linear_artifact("lin"), name="lin")
    server = Server(
        home, MODELPORT_CORS_ORIGINS="http://app.example", MODELPORT_ALLOWED_HOSTS=".example.com"
    )
    try:
        preflight = httpx.options(
            f"{server.url}/api/v1/models/lin/predict",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        answer = httpx.post(
            f"{server.url}/api/v1/models/lin/predict",
            json={"rows": [{"a": 1, "b": 2}]},
            headers={"Origin": "http://app.example"},
        )
        assert answer.status_code == 200 and answer.json()["predictions"] == [3.0]
        assert answer.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.post(
            f"{server.url}/api/v1/models/lin/predict",
            json={"rows": [{"a": 1, "b": 2}]},
            headers={"Origin": "http://other.example"},
        )
        assert other.status_code == 403
        named = httpx.get(f"{server.url}/v2", headers={"Host": "models.example.com"})
        assert named.status_code == 200
    finally:
        server.stop()


# -- every route x every kind of caller ----------------------------------------------------------


def _request(server: Server, method: str, path: str, secret: str | None) -> httpx.Response:
    url = (
        path.replace("{name}", "lin")
        .replace("{ref}", "lin")
        .replace("{version}", "1")
        .replace("{label}", "production")
        .replace("{id}", "job_unknown" if "/jobs/" in path else "ds_unknown")
    )
    body = {"rows": []} if method == "POST" else None
    return httpx.request(
        method, f"{server.url}{url}", json=body, headers=_headers(secret), timeout=30
    )


def test_the_table_covers_every_documented_route(keyed):
    server, _, _ = keyed
    spec = httpx.get(f"{server.url}/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert documented <= set(ROUTE_SCOPES), documented - set(ROUTE_SCOPES)


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_enforces_its_scope(keyed, caller):
    server, secrets, _ = keyed
    wrong = []
    for (method, path), scope in ROUTE_SCOPES.items():
        status = _request(server, method, path, secrets[caller]).status_code
        allowed = scope is None or caller in HOLDS[scope]
        if allowed and caller == "limited" and MODEL_IN_URL.search(path):
            allowed = False  # its key is for model 'other' only
        refused = status in (401, 403)
        if refused == allowed:
            wrong.append(f"{method} {path}: {status}")
    assert not wrong, f"{caller}: " + "; ".join(wrong)


def test_list_models_shows_only_the_models_a_key_may_use(keyed):
    server, secrets, _ = keyed
    listed = httpx.get(f"{server.url}/api/v1/models", headers=_headers(secrets["limited"]))
    assert listed.status_code == 200 and listed.json()["models"] == []
    listed = httpx.get(f"{server.url}/api/v1/models", headers=_headers(secrets["predict"]))
    assert [m["name"] for m in listed.json()["models"]] == ["lin"]


def test_a_keyless_server_opens_predict_and_train_but_never_admin(keyless):
    server, _ = keyless
    for (method, path), scope in ROUTE_SCOPES.items():
        status = _request(server, method, path, None).status_code
        assert (status in (401, 403)) == (scope == "admin"), f"{method} {path}: {status}"


# -- owners of datasets and jobs ----------------------------------------------------------------


def test_train_keys_see_and_touch_only_their_own_datasets_and_jobs(keyed, tmp_path):
    server, secrets, home = keyed
    other = secrets["other-train"]
    alice = httpx.Client(base_url=server.url, headers=_headers(secrets["train"]))
    bob = httpx.Client(base_url=server.url, headers=_headers(other))
    admin = httpx.Client(base_url=server.url, headers=_headers(secrets["admin"]))
    uploaded = alice.post("/api/v1/datasets?filename=d.csv", content=CSV)
    assert uploaded.status_code == 201
    dataset = uploaded.json()["id"]
    assert dataset != "ds_" + uploaded.json()["sha256"][:16]  # not derived from the content
    job = alice.post("/api/v1/jobs", json={"dataset": dataset, "name": "m", "target": "target"})
    assert job.status_code == 201
    job_id = job.json()["id"]

    assert dataset not in [d["id"] for d in bob.get("/api/v1/datasets").json()["datasets"]]
    assert job_id not in [j["id"] for j in bob.get("/api/v1/jobs").json()["jobs"]]
    for method, path in [
        ("GET", f"/api/v1/datasets/{dataset}"),
        ("DELETE", f"/api/v1/datasets/{dataset}"),
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("DELETE", f"/api/v1/jobs/{job_id}"),
        ("GET", f"/api/v1/jobs/{job_id}/logs"),
        ("GET", f"/api/v1/jobs/{job_id}/events"),
    ]:
        assert bob.request(method, path).status_code == 404, (method, path)
    stolen = bob.post("/api/v1/jobs", json={"dataset": dataset, "name": "m", "target": "target"})
    assert stolen.status_code == 404
    assert alice.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"  # untouched

    # the same bytes from bob: his own dataset entry, stored once
    again = bob.post("/api/v1/datasets?filename=mine.csv", content=CSV)
    assert again.status_code == 201 and again.json()["id"] == dataset
    assert bob.delete(f"/api/v1/datasets/{dataset}").status_code == 200
    assert alice.get(f"/api/v1/datasets/{dataset}").status_code == 200  # still alice's

    assert job_id in [j["id"] for j in admin.get("/api/v1/jobs").json()["jobs"]]
    assert admin.delete(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
    for client in (alice, bob, admin):
        client.close()


# -- a device against a tampering network --------------------------------------------------------


class Replayer(httpx.BaseTransport):
    """Passes calls to the server; can answer artifact downloads with a recorded answer, or
    strip a header from them."""

    def __init__(self, url: str) -> None:
        self.upstream = httpx.Client(base_url=url)
        self.recorded: httpx.Response | None = None
        self.replay = False
        self.strip: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        forwarded = self.upstream.request(
            request.method, request.url.path, params=request.url.params, headers=request.headers
        )
        if not request.url.path.endswith("/artifact"):
            return _copy(forwarded)
        if self.replay and self.recorded is not None:
            return _copy(self.recorded)
        self.recorded = self.recorded or forwarded
        return _copy(forwarded, drop=self.strip)


def _copy(response: httpx.Response, drop: str | None = None) -> httpx.Response:
    skip = {"content-length", "content-encoding", (drop or "").lower()}
    headers = {k: v for k, v in response.headers.items() if k.lower() not in skip}
    return httpx.Response(response.status_code, headers=headers, content=response.content)


@pytest.fixture
def lin_server(tmp_path):
    home = tmp_path / "home"
    store = Store(Settings(home=home))
    store.register(linear_artifact("lin"), name="lin")
    server = Server(home)
    yield server, store, tmp_path / "cache"
    server.stop()


def test_an_older_signed_version_replayed_is_refused(lin_server):
    server, store, cache = lin_server
    network = Replayer(server.url)
    model = Client(server.url, cache_dir=cache, transport=network).model(
        "lin", mode="local_only", update="local"
    )
    assert model.sync() == 1  # recorded: version 1's signed download
    store.register(linear_artifact("lin", scale=10.0), name="lin")
    assert model.sync() == 2
    store.register(linear_artifact("lin", scale=5.0), name="lin")
    network.replay = True  # the server has 3; the network answers with version 1's download
    with pytest.raises(IntegrityError, match="replayed"):
        model.sync()
    assert model.version == 2 and model.predict([{"a": 2, "b": 1}]).predictions == [21.0]
    assert model.rollback() == 1  # going back on purpose still works


def test_an_operators_rollback_reaches_devices(lin_server):
    server, store, cache = lin_server
    model = Client(server.url, cache_dir=cache).model("lin", mode="local_only", update="local")
    store.register(linear_artifact("lin", scale=10.0), name="lin")
    assert model.sync() == 2
    store.set_alias("lin:1", "production")  # `modelport deploy lin:1`: a newer release
    assert model.sync() == 1


def test_stripping_the_encryption_flag_breaks_the_signature(lin_server):
    server, store, cache = lin_server
    store.set_encryption("lin", True)
    network = Replayer(server.url)
    network.strip = "X-Modelport-Encryption"
    model = Client(server.url, cache_dir=cache, transport=network).model(
        "lin", mode="local_only", update="local"
    )
    with pytest.raises(IntegrityError, match="signature"):
        model.sync()
    assert not list((cache / "lin").glob("v*.zip"))  # nothing stored, in clear or otherwise
    network.strip = None
    assert model.sync() == 1
    assert (cache / "lin" / "v1.zip").read_bytes().startswith(b"MPENC1")


def test_turning_encryption_on_reaches_devices_that_hold_the_version(lin_server):
    server, store, cache = lin_server
    network = Replayer(server.url)
    model = Client(server.url, cache_dir=cache, transport=network).model(
        "lin", mode="local_only", update="local"
    )
    assert model.sync() == 1  # recorded: the download in clear
    assert not (cache / "lin" / "v1.zip").read_bytes().startswith(b"MPENC1")
    store.set_encryption("lin", True)  # a new release: same version, now sealed on devices
    network.replay = True
    with pytest.raises(IntegrityError, match="replayed"):  # the clear copy cannot come back
        model.sync()
    network.replay = False
    assert model.sync() == 1
    assert (cache / "lin" / "v1.zip").read_bytes().startswith(b"MPENC1")
    assert model.predict([{"a": 2, "b": 1}]).predictions == [3.0]


# -- model keys at rest ---------------------------------------------------------------------------


def _stored_key(store: Store, name: str) -> str:
    from sqlalchemy.orm import Session

    with Session(store.engine) as session:
        return session.get(ModelKeyRow, name).key


def test_model_keys_are_wrapped_with_the_master_key(home, modelport):
    store = Store(Settings(home=home))
    store.register(linear_artifact("lin"), name="lin")
    key = store.set_encryption("lin", True)
    stored = _stored_key(store, "lin")
    assert stored.startswith("w1:") and base64.b64encode(key).decode() not in stored
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600

    rotated = modelport("keys", "rotate-master")
    assert "1 model key" in rotated.stdout
    assert _stored_key(store, "lin") != stored
    assert store.encryption_key("lin") == key  # a running process re-reads the rotated key
    assert Store(Settings(home=home)).encryption_key("lin") == key
    assert not (home / "master.key.next").exists()

    (home / "master.key").unlink()  # without its master key the database copy is useless
    with pytest.raises(IntegrityError, match="master key"):
        Store(Settings(home=home)).encryption_key("lin")


def test_a_plain_key_from_before_is_wrapped_on_first_use(home):
    from sqlalchemy.orm import Session

    store = Store(Settings(home=home))
    store.register(linear_artifact("lin"), name="lin")
    key = os.urandom(32)
    with Session(store.engine) as session, session.begin():
        session.add(ModelKeyRow(name="lin", key=base64.b64encode(key).decode()))
    assert store.encryption_key("lin") == key
    assert _stored_key(store, "lin").startswith("w1:")


def test_the_master_key_can_come_from_a_setting(home):
    master = base64.b64encode(os.urandom(32)).decode()
    store = Store(Settings(home=home, master_key=master))
    store.register(linear_artifact("lin"), name="lin")
    key = store.set_encryption("lin", True)
    assert not (home / "master.key").exists()
    assert Store(Settings(home=home, master_key=master)).encryption_key("lin") == key
    with pytest.raises(IntegrityError):
        Store(Settings(home=home)).encryption_key("lin")


# -- crafted bundles ------------------------------------------------------------------------------


def _bundle(manifest_change) -> bytes:
    artifact = linear_artifact("lin")
    manifest = json.loads(artifact.manifest.to_json())
    files = manifest_change(manifest, artifact.onnx)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _escaping_variant(manifest, onnx):
    manifest["variants"] = {
        "../../../escaped": {"sha256": manifest["sha256"], "size_bytes": len(onnx)}
    }
    return {"model.onnx": onnx, "model.../../../escaped.onnx": onnx}


def _escaping_digest(manifest, onnx):
    manifest["variants"] = {"int8": {"sha256": "../../../../victim", "size_bytes": 1}}
    return {"model.onnx": onnx}


@pytest.mark.parametrize("craft", [_escaping_variant, _escaping_digest])
def test_crafted_bundles_cannot_name_paths_outside_the_store(home, modelport, tmp_path, craft):
    bundle = tmp_path / "crafted.zip"
    bundle.write_bytes(_bundle(craft))
    victim = tmp_path / "victim.onnx"
    victim.write_bytes(b"keep me")
    result = modelport("import", bundle, "--name", "evil", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not made by modelport" in result.stdout + result.stderr
    assert victim.read_bytes() == b"keep me"
    assert not list(tmp_path.rglob("escaped*"))
    with pytest.raises(InvalidInput):
        from modelport.artifact import ModelArtifact

        ModelArtifact.from_bytes(bundle.read_bytes())
