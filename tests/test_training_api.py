"""Hosted training against the real server: datasets, jobs, events, cancel, scripts, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time

import httpx
import numpy as np
import onnxruntime
import pytest

from modelport import local_token
from modelport.config import Settings
from modelport.store import Store

from .conftest import MODELPORT, Server
from .training import (
    cancer_csv,
    create_key,
    frame,
    image_zip,
    parquet_bytes,
    read_events,
    text_jsonl,
    wait_for,
    zip_of,
)

pytestmark = pytest.mark.slow
FAST_JOB = {"target": "target", "time_budget": 4, "estimators": ["lgbm", "linear"]}


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("hosted")
    keys = {
        scope: create_key(home, f"{scope}-key", scope) for scope in ("predict", "train", "admin")
    }
    server = Server(
        home,
        MODELPORT_MAX_DATASET_BYTES="3000000",
        MODELPORT_MAX_UNPACKED_BYTES="5000000",
        MODELPORT_MAX_QUEUED_JOBS="3",
        MODELPORT_JOB_WORKERS="1",
        MODELPORT_WARM_JOB_WORKER="true",
    )
    clients = {
        scope: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
        for scope, key in keys.items()
    }
    yield server, clients, home
    for client in clients.values():
        client.close()
    server.stop()


def upload(client: httpx.Client, data: bytes, filename: str) -> httpx.Response:
    return client.post("/api/v1/datasets", files={"file": (filename, data)})


def test_upload_train_watch_predict_download(hosted):
    """The issue's "done when": only an API key and an HTTP client."""
    server, clients, _ = hosted
    client = clients["train"]
    first = upload(client, cancer_csv(), "cancer.csv")
    assert first.status_code == 201, first.text
    dataset = first.json()
    assert dataset["rows"] == 569 and dataset["kind"] == "table"
    assert {"name": "target", "dtype": "number"} in dataset["columns"]
    again = client.post(  # the same bytes, streamed as the body: stored once
        "/api/v1/datasets?filename=again.csv", content=cancer_csv()
    )
    assert again.status_code == 200 and again.json()["id"] == dataset["id"]
    as_curl_sends_it = client.post(  # curl --data-binary: a form type, the file as the body
        "/api/v1/datasets?filename=c.csv",
        content=cancer_csv(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert as_curl_sends_it.status_code == 200, as_curl_sends_it.text
    assert [d["id"] for d in client.get("/api/v1/datasets").json()["datasets"]].count(
        dataset["id"]
    ) == 1

    submitted = client.post(
        "/api/v1/jobs", json={"dataset": dataset["id"], "name": "cancer", **FAST_JOB}
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/api/v1/jobs/{job_id}"

    events = read_events(client, job_id)
    names = [name for name, _ in events]
    assert names[-1] == "done" and "leaderboard" in names
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(0 < p < 1 for p in progress), progress
    boards = [data["leaderboard"] for name, data in events if name == "leaderboard"]
    assert {row["model"] for row in boards[-1]} <= {"lgbm", "linear"} and boards[-1]

    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["model"] == "cancer:1" and job["progress"] == 1.0 and job["elapsed"] > 0
    assert job["leaderboard"][0]["onnx_latency_us"] is not None

    rows = frame().drop(columns=["target"]).head(5)
    answer = client.post(
        f"{job['links']['predict']}", json={"rows": rows.to_dict(orient="records")}
    ).json()
    onnx = client.get(job["links"]["onnx"])
    assert onnx.status_code == 200
    session = onnxruntime.InferenceSession(onnx.content)
    inputs = client.get(f"/api/v1/models/{job['model']}/manifest").json()["inputs"]
    feeds = {c["onnx_name"]: rows[[c["name"]]].to_numpy(np.float32) for c in inputs}
    labels = session.run(None, feeds)[0].ravel().tolist()
    assert labels == answer["predictions"]
    bundle = client.get(job["links"]["artifact"])
    assert bundle.headers["content-type"] == "application/zip"
    log = client.get(f"/api/v1/jobs/{job_id}/logs").text
    assert "started on local worker process" in log and "registered cancer:1" in log


def test_keys_and_scopes(hosted):
    server, clients, home = hosted
    assert httpx.get(f"{server.url}/api/v1/jobs").status_code == 401
    assert upload(clients["predict"], cancer_csv(), "c.csv").status_code == 403
    assert clients["predict"].get("/api/v1/datasets").status_code == 403
    script_job = {"dataset": "ds_x", "name": "mine", "script": "def train(d, t): pass"}
    refused = clients["train"].post("/api/v1/jobs", json=script_job)
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    limited = create_key(home, "churn-only", "train", models=["churn"])

    def fraud_job() -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/v1/jobs",
            json={"dataset": "ds_x", "name": "fraud", "target": "t"},
            headers={"Authorization": f"Bearer {limited}"},
        )

    # the server re-reads keys every poll interval: until then the new key is unknown (401)
    deadline = time.monotonic() + 30
    while (other := fraud_job()).status_code == 401:
        assert time.monotonic() < deadline, f"the new key is still unknown: {other.text}"
        time.sleep(0.1)
    assert other.status_code == 403 and "may not write model 'fraud'" in other.json()["error"]


def _corrupt_deflate() -> bytes:
    """A zip whose central directory is fine but whose compressed bytes are garbage."""
    data = bytearray(
        zip_of({f"{c}/{i}.jpg": b"\xff\xd8\xff" + bytes(5000) for c in "ab" for i in range(6)})
    )
    start = data.index(b"PK\x03\x04") + 30 + len("a/0.jpg")
    data[start + 2 : start + 12] = b"\xff" * 10
    return bytes(data)


def _truncated_parquet() -> bytes:
    data = parquet_bytes()
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "empty": (b"", "x.csv", 400, "empty"),
    "binary as csv": (b"\x00\x01\x02" * 100, "x.csv", 400, "binary"),
    "too few rows": (b"a,b\n1,2\n", "x.csv", 400, "at least"),
    "truncated csv": (cancer_csv()[:5000], "x.csv", 400, "cut off"),
    "truncated parquet": (_truncated_parquet(), "x.parquet", 400, "Parquet"),
    "too large": (b"a,b\n" + b"1,2\n" * 800_000, "x.csv", 413, "MODELPORT_MAX_DATASET_BYTES"),
    "zip traversal": (
        zip_of({"../evil/1.jpg": b"\xff\xd8\xff" + b"0" * 100}),
        "x.zip",
        400,
        "outside",
    ),
    "absolute path": (zip_of({"/etc/cron.d/x.jpg": b"\xff\xd8\xff"}), "x.zip", 400, "outside"),
    "zip bomb": (zip_of({"a/1.jpg": b"\xff\xd8\xff" + bytes(6_000_000)}), "x.zip", 413, "unpacks"),
    "truncated zip": (image_zip()[:-200], "x.zip", 400, "damaged"),
    "not an image": (
        zip_of({f"{c}/{i}.jpg": b"hello" for c in "ab" for i in range(6)}),
        "x.zip",
        400,
        "not a JPEG",
    ),
    "one class": (
        zip_of({f"a/{i}.png": b"\x89PNG\r\n\x1a\n" for i in range(12)}),
        "x.zip",
        400,
        "2 classes",
    ),
    "bad jsonl": (text_jsonl()[:-30], "t.jsonl", 400, "line"),
    "corrupt deflate": (_corrupt_deflate(), "x.zip", 400, "damaged"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_leave_nothing(hosted, case):
    server, clients, home = hosted
    data, filename, status, words = BAD_UPLOADS[case]
    before = clients["train"].get("/api/v1/datasets").json()["datasets"]
    response = upload(clients["train"], data, filename)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()
    assert clients["train"].get("/api/v1/datasets").json()["datasets"] == before
    assert list((home / "datasets" / ".incoming").glob("*")) == []


def test_malformed_multipart_is_a_400(hosted):
    server, clients, _ = hosted
    no_file = clients["train"].post("/api/v1/datasets", files={"other": ("a.csv", b"a,b")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]
    form = clients["train"].post("/api/v1/datasets", data={"name": "x"})
    assert form.status_code == 400 and "'file'" in form.json()["error"]
    empty = upload(clients["train"], b"a,b\n", "header-only.csv").json()["error"]
    assert "0 row(s)" in empty and ".incoming" not in empty
    binary = upload(clients["train"], b"\x00\x01" * 50, "data.csv").json()["error"]
    assert "'data.csv'" in binary and ".incoming" not in binary  # named as the user knows it
    broken = clients["train"].post(
        "/api/v1/datasets",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\na,b\n1',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400


def test_images_text_and_parquet_datasets(hosted):
    server, clients, _ = hosted
    client = clients["train"]
    images = upload(client, image_zip(), "flowers.zip").json()
    assert images["kind"] == "images" and images["rows"] == 12
    assert images["classes"] == {"china": 6, "flower": 6}
    text = upload(client, text_jsonl(), "reviews.jsonl").json()
    assert text["kind"] == "text" and text["classes"] == {"1": 10, "0": 10}
    table = upload(client, parquet_bytes(), "cancer.parquet").json()
    assert table["format"] == "parquet" and table["rows"] == 569
    column_of_images = client.post(  # image AutoML itself: tests/test_train_images.py
        "/api/v1/jobs", json={"dataset": images["id"], "name": "pics", "target": "species"}
    )
    assert column_of_images.status_code == 400
    assert "folders" in column_of_images.json()["error"]
    assert client.delete(f"/api/v1/datasets/{images['id']}").json() == {"deleted": images["id"]}
    assert client.get(f"/api/v1/datasets/{images['id']}").status_code == 404


JOB_ERRORS = {
    "missing target": ({"target": "nope"}, 400, "no column 'nope'"),
    "no target": ({"target": None}, 400, "target"),
    "bad budget": ({"time_budget": -1}, 400, "time_budget"),
    "huge budget": ({"time_budget": 10**9}, 400, "MODELPORT_MAX_TIME_BUDGET"),
    "unknown field": ({"epochs": 3}, 400, "Unknown field"),
    "bad name": ({"name": "no spaces please"}, 400, "name"),
    "unknown dataset": ({"dataset": "ds_missing"}, 404, "no dataset"),
    "bad metric": ({"metric": "vibes"}, 400, "metric"),
    "aliases not a list": ({"aliases": "prod"}, 400, "list of strings"),
    "latest alias": ({"aliases": ["latest"]}, 400, "cannot be set"),
    "seed not a number": ({"seed": "x"}, 400, "seed"),
}


@pytest.mark.parametrize("case", JOB_ERRORS, ids=list(JOB_ERRORS))
def test_bad_jobs_are_refused(hosted, case):
    server, clients, _ = hosted
    client = clients["train"]
    dataset = upload(client, cancer_csv(), "cancer.csv").json()["id"]
    change, status, words = JOB_ERRORS[case]
    body = {"dataset": dataset, "name": "bad", **FAST_JOB, **change}
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()


def test_queue_cancel_and_deleted_dataset(hosted):
    """One worker: jobs queue; cancel works queued and running; a dataset in use cannot be
    deleted over the API, and one removed behind the server's back fails its job clearly."""
    server, clients, home = hosted
    client = clients["train"]
    cancer = upload(client, cancer_csv(), "cancer.csv").json()["id"]
    doomed = upload(client, cancer_csv() + b"\n", "doomed.csv").json()["id"]
    long = {"target": "target", "time_budget": 60, "estimators": ["lgbm"]}
    running = client.post("/api/v1/jobs", json={"dataset": cancer, "name": "slow", **long}).json()
    waiting = client.post(
        "/api/v1/jobs", json={"dataset": doomed, "name": "gone", **FAST_JOB}
    ).json()
    queued = client.post("/api/v1/jobs", json={"dataset": cancer, "name": "later", **long}).json()
    wait_for(client, running["id"], ("running",))
    time.sleep(1.0)
    assert client.get(f"/api/v1/jobs/{waiting['id']}").json()["status"] == "queued"
    statuses = [j["status"] for j in client.get("/api/v1/jobs").json()["jobs"]]
    assert statuses.count("running") == 1

    full = client.post("/api/v1/jobs", json={"dataset": cancer, "name": "x", **FAST_JOB})
    extra = client.post("/api/v1/jobs", json={"dataset": cancer, "name": "y", **FAST_JOB})
    assert 429 in (full.status_code, extra.status_code)  # at most 3 wait
    for response in (full, extra):
        if response.status_code == 201:
            assert client.delete(f"/api/v1/jobs/{response.json()['id']}").status_code == 200

    cancelled_queued = client.delete(f"/api/v1/jobs/{queued['id']}")
    assert cancelled_queued.status_code == 200 and cancelled_queued.json()["status"] == "cancelled"
    in_use = client.delete(f"/api/v1/datasets/{doomed}")
    assert in_use.status_code == 409 and waiting["id"] in in_use.json()["error"]
    Store(Settings(home=home)).datasets.delete(doomed)  # e.g. an administrator's cleanup

    stopping = client.delete(f"/api/v1/jobs/{running['id']}")
    assert stopping.status_code == 202
    stopped = wait_for(client, running["id"], ("cancelled", "failed", "succeeded"))
    assert stopped["status"] == "cancelled" and stopped["model"] is None
    assert client.delete(f"/api/v1/jobs/{running['id']}").status_code == 409

    failed = wait_for(client, waiting["id"], ("failed", "succeeded"))
    assert failed["status"] == "failed" and "deleted" in failed["error"]
    names = {m["name"] for m in client.get("/api/v1/models").json()["models"]}
    assert not names & {"slow", "gone", "later"}


SCRIPT = textwrap.dedent(
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def train(data, target):
        print("training on", len(data), "rows")
        X, y = data.drop(columns=[target]), data[target]
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    """
)
FAILING_SCRIPT = textwrap.dedent(
    """
    def train(data, target):
        columns = list(data.columns)
        raise ValueError(f"cannot learn from {len(columns)} columns")
    """
)


def test_bring_your_own_training_code(hosted):
    server, clients, _ = hosted
    client = clients["admin"]
    dataset = upload(client, cancer_csv(), "cancer.csv").json()["id"]
    body = {"dataset": dataset, "name": "own", "target": "target", "script": SCRIPT}
    job_id = client.post("/api/v1/jobs", json=body).json()["id"]
    done = wait_for(client, job_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    manifest = client.get(f"/api/v1/models/{done['model']}/manifest").json()
    assert (
        manifest["source"]["kind"] == "script"
        and manifest["source"]["parity"]["label_mismatches"] == 0
    )
    assert "training on 569 rows" in client.get(f"/api/v1/jobs/{job_id}/logs").text

    failing = {**body, "name": "broken", "script": FAILING_SCRIPT}
    job_id = client.post("/api/v1/jobs", json=failing).json()["id"]
    failed = wait_for(client, job_id, ("succeeded", "failed"))
    assert failed["status"] == "failed"
    assert "ValueError: cannot learn from 31 columns" in failed["error"]
    assert failed["stage"] == "failed" and failed["message"] == "Failed"  # not a stale "train"
    log = client.get(f"/api/v1/jobs/{job_id}/logs").text
    assert "Traceback" in log and 'raise ValueError(f"cannot learn' in log
    assert client.get("/v2/health/ready").status_code == 200


def test_out_of_memory_job_fails_and_the_server_lives(tmp_path):
    server = Server(tmp_path, MODELPORT_JOB_MEMORY_MB="3000")
    try:  # a script job: admin, here the local admin token of a keyless server
        token = local_token.read(tmp_path)
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        dataset = upload(client, cancer_csv(), "cancer.csv").json()["id"]
        hog = "def train(data, target):\n    block = bytearray(4 * 1024**3)\n    return block\n"
        body = {"dataset": dataset, "name": "hog", "target": "target", "script": hog}
        job_id = client.post("/api/v1/jobs", json=body).json()["id"]
        failed = wait_for(client, job_id, ("succeeded", "failed"))
        assert failed["status"] == "failed" and "memory" in failed["error"].lower(), failed
        assert client.get("/v2/health/ready").status_code == 200
    finally:
        server.stop()


def test_server_killed_mid_job_leaves_a_failed_job(tmp_path):
    server = Server(tmp_path)
    client = httpx.Client(base_url=server.url)
    dataset = upload(client, cancer_csv(), "cancer.csv").json()["id"]
    body = {"dataset": dataset, "name": "orphan", "target": "target", "time_budget": 60}
    job_id = client.post("/api/v1/jobs", json=body).json()["id"]
    wait_for(client, job_id, ("running",))
    time.sleep(1.5)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    restarted = Server(tmp_path)
    try:
        client = httpx.Client(base_url=restarted.url)
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "failed" and "stopped before it finished" in job["error"]
        assert client.get("/api/v1/models").json()["models"] == []
    finally:
        restarted.stop()


def test_cli_jobs_submit_follow_list_logs_cancel(hosted, tmp_path):
    server, clients, home = hosted
    key = clients["admin"].headers["authorization"].removeprefix("Bearer ")
    data = tmp_path / "cancer.csv"
    data.write_bytes(cancer_csv())
    env = {**os.environ, "MODELPORT_SERVER": server.url, "MODELPORT_API_KEY": key}

    def jobs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(MODELPORT), "jobs", *args], env=env, capture_output=True, text=True, timeout=240
        )

    submitted = jobs(
        "submit",
        str(data),
        "--target",
        "target",
        "--name",
        "from-cli",
        "--time-budget",
        "4",
        "--estimators",
        "lgbm",
        "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded" and job["model"].startswith("from-cli:")
    listed = json.loads(jobs("list", "--json").stdout)
    assert job["id"] in [j["id"] for j in listed]
    assert "registered from-cli:" in jobs("logs", job["id"]).stdout
    shown = jobs("show", job["id"])
    assert "succeeded" in shown.stdout and f"{server.url}/api/v1/models/" in shown.stdout
    too_late = jobs("cancel", job["id"])
    assert too_late.returncode == 1 and "already ended (succeeded)" in too_late.stderr
    missing = jobs("submit", str(data), "--target", "nope", "--name", "x")
    assert missing.returncode == 1 and "no column 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    unreachable = subprocess.run(
        [str(MODELPORT), "jobs", "list", "--server", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert unreachable.returncode == 1 and "cannot be reached" in unreachable.stderr
