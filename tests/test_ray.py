"""The Ray backend: AutoML trials in parallel on a local Ray, and server jobs as Ray tasks."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import pytest

from modelport.config import Settings
from modelport.store import Store
from modelport.train import TabularAutoML

from .conftest import Server
from .training import cancer_csv, frame, read_events, wait_for

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture
def local_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 2-CPU Ray of this test's own, with HOME elsewhere: nothing may land in ~/.ray."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield tmp_path / "home"
    ray.shutdown()


def test_two_trials_run_in_parallel_and_the_model_registers(local_ray, home):
    busy_cpus = []

    def watch(event):
        if event.stage == "search":
            busy_cpus.append(2 - ray.available_resources().get("CPU", 0))

    data = frame()
    automl = TabularAutoML(time_budget=8, backend="ray", callback=watch, seed=0)
    automl.fit(data.drop(columns="target"), data["target"])
    assert max(busy_cpus) == 2, busy_cpus  # both CPUs held by searching trials at once
    families = {row.model for row in automl.leaderboard_}
    assert len(families) >= 4 and all(row.trials >= 1 for row in automl.leaderboard_)
    manifest = Store(Settings(home=home)).register(automl.to_artifact("on-ray"))
    assert manifest.version == 1 and manifest.metrics["accuracy"] > 0.85
    assert not (local_ray / ".ray").exists()


@pytest.mark.timeout(900)  # generous deadlines below, for a loaded machine
def test_server_jobs_run_as_ray_tasks(tmp_path):
    """The issue's "done when" with the Ray backend: upload, train, watch, predict, download."""
    server = Server(
        tmp_path / "store",
        "--backend",
        "ray",
        HOME=str(tmp_path / "home"),
        MODELPORT_WARM_JOB_WORKER="true",
    )
    try:
        client = httpx.Client(base_url=server.url)
        dataset = client.post("/api/v1/datasets", files={"file": ("c.csv", cancer_csv())}).json()
        body = {"dataset": dataset["id"], "target": "target", "name": "rayjob", "time_budget": 8}
        job_id = client.post("/api/v1/jobs", json=body).json()["id"]
        events = read_events(client, job_id, timeout=180)
        done = events[-1][1]
        assert done["status"] == "succeeded", done
        assert any(name == "leaderboard" and data["leaderboard"] for name, data in events)
        assert "Ray task" in client.get(f"/api/v1/jobs/{job_id}/logs").text
        rows = frame().drop(columns="target").head(3)
        answer = client.post(
            done["links"]["predict"], json={"rows": rows.to_dict(orient="records")}
        ).json()
        session = onnxruntime.InferenceSession(client.get(done["links"]["onnx"]).content)
        inputs = client.get(f"/api/v1/models/{done['model']}/manifest").json()["inputs"]
        feeds = {c["onnx_name"]: rows[[c["name"]]].to_numpy(np.float32) for c in inputs}
        assert session.run(None, feeds)[0].ravel().tolist() == answer["predictions"]
        assert not (tmp_path / "home" / ".ray").exists()

        # trials that outlived their cancelled job would hold both CPUs for most of an hour
        long = client.post("/api/v1/jobs", json={**body, "name": "long", "time_budget": 3600})
        long_id = long.json()["id"]
        deadline = time.monotonic() + 180
        while not client.get(f"/api/v1/jobs/{long_id}").json()["leaderboard"]:
            assert time.monotonic() < deadline, "the long job never reported a trial"
            time.sleep(0.5)
        assert client.delete(f"/api/v1/jobs/{long_id}").status_code == 202
        cancelled = wait_for(client, long_id, ("cancelled", "failed", "succeeded"))
        assert cancelled["status"] == "cancelled"
        again = client.post("/api/v1/jobs", json={**body, "name": "after", "time_budget": 5})
        after = wait_for(client, again.json()["id"], ("succeeded", "failed"), timeout=300)
        assert after["status"] == "succeeded", after
        assert after["elapsed"] < 300, after  # the cancelled trials did not hold the CPUs
    finally:
        server.stop()
