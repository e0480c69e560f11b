"""The metadata database: models, versions, aliases, keys, usage, datasets and training jobs
(SQLAlchemy 2, SQLite by default)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One transaction; the objects it returns stay readable after the commit."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def from_row(cls: type[T], row: Any, **overrides: Any) -> T:
    """The dataclass ``cls`` filled from the same-named columns of ``row``."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{**values, **overrides})


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime: SQLite hands back naive ones, which were written in UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    """Versions are never reused, even after a delete, so caches keyed by version stay valid."""
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class VersionRow(Base):
    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AliasRow(Base):
    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class StateRow(Base):
    """Counters other processes poll; ``generation`` grows with every change to models."""

    __tablename__ = "store_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class ModelKeyRow(Base):
    """The AES key devices use to keep a model encrypted at rest (present = encryption on)."""

    __tablename__ = "model_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of the secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    rate: Mapped[float | None] = mapped_column(default=None)
    models: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class UsageRow(Base):
    """Requests of one key to one model with one status in one minute."""

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    key_id: Mapped[str | None] = mapped_column(String(16), index=True)
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    compute_seconds: Mapped[float] = mapped_column()


class DatasetRow(Base):
    """An uploaded dataset; the file is kept once per SHA-256 under ``<home>/datasets``."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    """``columns`` (tables) or ``classes`` with counts (images, text)."""
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DatasetOwnerRow(Base):
    """Who may see and use a dataset: each key that uploaded its bytes ("" anonymous)."""

    __tablename__ = "dataset_owners"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(16), primary_key=True)


class JobRow(Base):
    """A training job; only the server process that claimed it (``runner``) updates it."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    leaderboard: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[str | None] = mapped_column(String(80), default=None)
    error: Mapped[str | None] = mapped_column(String(4000), default=None)
    timings: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    """Seconds spent queued, starting the worker, training and registering."""
    runner: Mapped[str | None] = mapped_column(String(80), default=None)
    owner: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    """The id of the API key that submitted it; "" for an anonymous local caller."""
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


def make_engine(url: str) -> Engine:
    """Create the engine; on SQLite, writes take the lock up front (BEGIN IMMEDIATE)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60} if url.startswith("sqlite") else {})
    if engine.dialect.name == "sqlite":
        _serialise_sqlite_writes(engine)
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer modelport declares to tables an older one created.

    ``create_all`` makes missing tables only; new columns are always nullable, so adding them
    in place is the whole migration.
    """
    existing = inspect(engine)
    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in existing.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in present]
        if not missing:
            continue
        with engine.begin() as connection:
            for column in missing:
                assert column.nullable, f"{table.name}.{column.name} must be nullable to be added"
                kind = column.type.compile(dialect=engine.dialect)
                connection.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'
                )


def _serialise_sqlite_writes(engine: Engine) -> None:
    # NOTE: pysqlite's own transaction handling is switched off so that SQLAlchemy's "begin" event
    # decides: BEGIN IMMEDIATE makes two processes registering at once queue instead of racing.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
