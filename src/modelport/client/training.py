"""Hosted training from Python: upload a dataset, submit a job, follow it, cancel it.

Example:
    >>> with TrainingClient("http://127.0.0.1:8000", api_key=KEY) as trainer:  # doctest: +SKIP
    ...     dataset = trainer.upload("credit.csv")
    ...     job = trainer.submit(dataset["id"], name="credit", target="default", time_budget=60)
    ...     for event, data in trainer.events(job["id"]):
    ...         print(event, data.get("progress"))
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .. import local_token
from ..errors import ModelportError, Unavailable
from .remote import server_error

UPLOAD_TIMEOUT = httpx.Timeout(60.0, read=900.0, write=900.0)
EVENTS_TIMEOUT = httpx.Timeout(60.0, read=60.0)
"""The server sends an event or a keep-alive at least every 15 s."""


class TrainingClient:
    """The server's dataset and job API; errors come back as modelport's own classes.

    Without ``api_key``, a server on this machine gets the local admin token of the store in
    ``MODELPORT_HOME`` (default ``~/.modelport``), as the `modelport` command sends it.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        api_key = api_key or local_token.for_server(url, local_token.default_home())
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Upload a CSV, Parquet, JSONL or zip file (streamed); the same bytes twice = one id."""
        path = Path(path)
        if not path.is_file():
            raise ModelportError(f"There is no file '{path}' to upload.")
        with path.open("rb") as handle:  # the server reads it all before it answers
            files = {"file": (path.name, handle)}
            return self._call("POST", "/api/v1/datasets", files=files, timeout=UPLOAD_TIMEOUT)

    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/datasets")["datasets"]

    def delete_dataset(self, dataset_id: str) -> None:
        self._call("DELETE", f"/api/v1/datasets/{dataset_id}")

    def submit(self, dataset: str, name: str, **options: Any) -> dict[str, Any]:
        """Queue a job: ``target``, ``time_budget``, ``task``, ``metric``, ``script`` ..."""
        body = {"dataset": dataset, "name": name, **options}
        return self._call("POST", "/api/v1/jobs", json=body)

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        return self._call("GET", "/api/v1/jobs", params=params)["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/jobs/{job_id}")

    def logs(self, job_id: str) -> str:
        return self._response("GET", f"/api/v1/jobs/{job_id}/logs").text

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: ``progress``, ``leaderboard``, and last ``done`` with the job."""
        try:
            path = f"/api/v1/jobs/{job_id}/events"
            with self.http.stream("GET", path, timeout=EVENTS_TIMEOUT) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise server_error(reply)
                name = "message"
                for line in reply.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        yield name, json.loads(line[6:])
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._response(method, path, **kwargs).json()

    def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise server_error(response)
        return response

    def _unreachable(self, exc: Exception) -> ModelportError:
        return Unavailable(
            f"The modelport server at {self.http.base_url} cannot be reached ({exc}). Start it "
            "with `modelport serve`, or pass --server / set MODELPORT_SERVER."
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TrainingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
