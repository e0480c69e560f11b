"""One settings object, read from ``MODELPORT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".modelport"


class Settings(BaseSettings):
    """modelport's settings; each field is also the environment variable ``MODELPORT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MODELPORT_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    """Where the store keeps its database and blobs."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata database; default: SQLite at ``<home>/modelport.db``."""

    blob_dir: Path | None = None
    """Directory of model files; default: ``<home>/blobs``."""

    intra_op_threads: int = 0
    """onnxruntime threads per prediction (0: onnxruntime's default, one per core)."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'modelport.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.home / "blobs"
