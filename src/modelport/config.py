"""One settings object, read from ``MODELPORT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Names = Annotated[list[str], NoDecode]
"""A list setting written as comma-separated text in the environment (or a JSON list)."""


def _default_home() -> Path:
    return Path.home() / ".modelport"


class Settings(BaseSettings):
    """modelport's settings; each field is also the environment variable ``MODELPORT_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPORT_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    home: Path = Field(default_factory=_default_home)
    """Where the store keeps its database and blobs."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata database; default: SQLite at ``<home>/modelport.db``."""

    blob_dir: Path | None = None
    """Directory of model files; default: ``<home>/blobs``."""

    zoo_cache: Path | None = None
    """Where ready-made (zoo) models are kept once built from the weights their packages ship; default: ``<home>/zoo``."""

    intra_op_threads: int = 0
    """onnxruntime threads per prediction (0: onnxruntime's default, one per core)."""

    host: str = "127.0.0.1"
    """Address `modelport serve` listens on."""

    port: int = 8000
    """Port `modelport serve` listens on."""

    workers: int = 1
    """Server processes; rate limits, batching and /metrics counts apply per process."""

    allow_anonymous: bool = False
    """Serve without API keys on a non-loopback address (admin calls always need a credential)."""

    allowed_hosts: Names = Field(default_factory=list)
    """Host names the server answers to besides IP addresses and localhost, e.g. "models.example.com,.example.com" (a leading dot: any subdomain; "*": any name). Other Host headers get 400, which stops DNS rebinding."""

    cors_origins: Names = Field(default_factory=list)
    """Web origins whose pages may call the server from a browser, e.g. "https://app.example.com" ("*": any). Requests from other origins are refused with 403."""

    metrics_require_key: bool = False
    """Require a key with scope metrics (or admin) for /metrics."""

    master_key: SecretStr | None = None
    """Base64 of 32 bytes that wraps each model's encryption key in the database; default: the 0600 file <home>/master.key, created on first use."""

    master_key_previous: SecretStr | None = None
    """The master key before a rotation: still unwraps, until `modelport keys rotate-master` has rewrapped every model key."""

    serve_threads: int = 1
    """onnxruntime threads per prediction in the server (requests run in parallel instead)."""

    load: str = "lazy"
    """"lazy": load a model on its first request; "eager": load every model at start."""

    unload_after: float = 0
    """Seconds without requests after which a loaded model is unloaded (0: never)."""

    poll_interval: float = 1.0
    """Seconds between checks of the store for new versions and moved aliases."""

    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted (413 beyond)."""

    max_batch_rows: int = 10_000
    """Most rows in one request (413 beyond)."""

    request_timeout: float = 30.0
    """Seconds a queued (batched) prediction may wait and run before the request fails with 503; calls fast enough to run inline are not cut off."""

    batch_max_size: int = 64
    """Dynamic batching: most rows merged into one model call."""

    batch_max_wait_ms: float = 0.0
    """Dynamic batching: extra wait for more requests before a call (0: merge only what queued)."""

    batch_inline_below_ms: float = 1.0
    """Models whose calls take less run on the event loop, one call per loop turn for the requests it gathered (a thread hop would cost more); slower ones queue for a worker thread (0: always queue)."""

    batch_per_model: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per-model batching, e.g. {"credit": {"max_size": 256, "max_wait_ms": 2, "inline_below_ms": 0}}."""

    price_per_1000: float = 0.10
    """Cost shown by `modelport usage`, per 1,000 requests."""

    meter_flush_seconds: float = 2.0
    """How often buffered usage records are written to the database."""

    access_log: bool = True
    """Write one structured (JSON) log line per request, in batches within a second; never keys or input data."""

    max_dataset_bytes: int = 1024**3
    """Largest dataset upload accepted (413 beyond)."""

    max_unpacked_bytes: int = 4 * 1024**3
    """Most bytes a dataset zip may unpack to (a zip bomb is refused with 413)."""

    max_archive_files: int = 200_000
    """Most files a dataset zip may hold."""

    job_workers: int = 1
    """Training jobs that run at once per server process; the others wait in the queue."""

    max_queued_jobs: int = 100
    """Jobs that may wait in the queue (429 beyond)."""

    max_time_budget: float = 24 * 3600
    """Longest time budget a job may ask for, in seconds."""

    job_memory_mb: int = 0
    """Address-space limit of a local job process in MiB (0: none); a job over it fails."""

    warm_job_worker: bool = True
    """Once training is used (an upload, a job), keep a job worker ready with the training stack imported (jobs start ~3 s sooner)."""

    train_backend: Literal["local", "ray"] = "local"
    """Where training runs: "local" (worker processes) or "ray" (trials and jobs on Ray)."""

    ray_address: str | None = None
    """Ray cluster to join (e.g. "ray://head:10001" or "auto"); default: start a local Ray."""

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'modelport.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.home / "blobs"

    @property
    def resolved_zoo_cache(self) -> Path:
        return self.zoo_cache or self.home / "zoo"


def settings_table() -> str:
    """The Markdown table of every setting, as docs/settings.md shows it."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        value = "~/.modelport" if name == "home" else info.get_default(call_default_factory=True)
        default = "see meaning" if value is None else f"`{value}`"
        lines.append(f"| `MODELPORT_{name.upper()}` | {default} | {info.description} |")
    return "\n".join(lines)
