"""Helpers for hosted-training tests: datasets as bytes, keys, following a job."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from sklearn.datasets import load_breast_cancer


def cancer_csv() -> bytes:
    return load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()


def sample_jpegs() -> list[bytes]:
    """The two JPEG photos scikit-learn ships (no download)."""
    import sklearn

    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]


def image_zip(root: str = "flowers/") -> bytes:
    china, flower = sample_jpegs()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(6):
            archive.writestr(f"{root}china/{i}.jpg", china)
            archive.writestr(f"{root}flower/{i}.jpg", flower)
        archive.writestr(f"{root}README.txt", "not an image")
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def text_jsonl(rows: int = 20) -> bytes:
    lines = [
        json.dumps({"text": f"sample {i} {'great' if i % 2 else 'awful'}", "label": i % 2})
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    load_breast_cancer(as_frame=True).frame.to_parquet(buffer)
    return buffer.getvalue()


def create_key(home: Path, name: str, scope: str, models: list[str] | None = None) -> str:
    """A new key's secret, as `modelport keys create` makes it (in-process: no CLI start-up)."""
    from modelport.config import Settings
    from modelport.serve.keys import KeyStore
    from modelport.store import Store

    return KeyStore(Store(Settings(home=home)).engine).create(name, scope, models=models)[1]


def wait_for(
    client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 180
) -> dict:
    """The job once its status is one of ``statuses``; the deadline is generous because a loaded
    machine starts worker processes and trains many times slower than an idle one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {statuses} after {timeout} s: {job}")


def read_events(client: httpx.Client, job_id: str, timeout: float = 120) -> list[tuple[str, Any]]:
    """Every Server-Sent Event of the job until the stream ends."""
    events, name = [], None
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def frame() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame
