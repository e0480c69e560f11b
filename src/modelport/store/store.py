"""The Store: versioned models with movable aliases over a database and a blob directory."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..artifact import Manifest, ModelArtifact
from ..config import Settings
from ..errors import IntegrityError, InvalidReference, ModelNotFound, ModelportError
from ..refs import DEFAULT_ALIAS, LATEST, ModelRef, check_alias, check_name
from .blobs import BlobStore
from .datasets import DatasetStore
from .db import AliasRow, ModelKeyRow, ModelRow, StateRow, VersionRow, make_engine, transaction
from .jobs import JobStore
from .master_key import WRAPPED, MasterKey

REGISTER_ATTEMPTS = 8
GENERATION = "generation"


@dataclass(frozen=True)
class ModelSummary:
    """One line of `modelport models list`."""

    name: str
    latest_version: int
    versions: int
    aliases: dict[str, int]
    task: str
    created: datetime


class Store:
    """Models, their versions (1, 2, 3 ...) and aliases, kept safe against crashes.

    Args:
        settings: where the database and blobs live; default: read from ``MODELPORT_*``.

    Example:
        >>> store = Store(Settings(home=tmp_path))            # doctest: +SKIP
        >>> manifest = store.register(artifact, name="credit")  # doctest: +SKIP
        >>> store.get("credit@production")                     # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.engine = _retry_locked(lambda: make_engine(self.settings.resolved_database_url))
        self.blobs = BlobStore(self.settings.resolved_blob_dir)
        home, settings = self.settings.home, self.settings
        self.datasets = DatasetStore(
            self.engine,
            home / "datasets",
            settings.max_dataset_bytes,
            settings.max_unpacked_bytes,
            settings.max_archive_files,
        )
        self.jobs = JobStore(self.engine, home / "jobs")

    def _session(self) -> AbstractContextManager[Session]:
        return transaction(self.engine)

    @contextmanager
    def _change(self) -> Iterator[Session]:
        """A write transaction that also bumps the generation servers poll for changes."""
        with self._session() as session:
            yield session
            state = session.get(StateRow, GENERATION, with_for_update=True)
            if state is None:
                session.add(StateRow(key=GENERATION, value=1))
            else:
                state.value += 1

    def generation(self) -> int:
        """A number that changes whenever a version, alias or model is added or removed."""
        with self._session() as session:
            state = session.get(StateRow, GENERATION)
            return state.value if state else 0

    # -- writing -------------------------------------------------------------------------------

    def register(
        self, artifact: ModelArtifact, name: str | None = None, aliases: tuple[str, ...] = ()
    ) -> Manifest:
        """Store ``artifact`` as the next version of ``name``; returns its manifest with version.

        The file is written (temp name, fsync, rename) before one transaction adds the version,
        so a crash leaves either no new version or a complete one.
        """
        artifact.verify()
        name = check_name(name or artifact.manifest.name)
        for alias in aliases:
            _check_settable(alias)
        self._put_files(artifact)
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                stored = self._insert_version(artifact.manifest, name, aliases)
                # a delete of the last version with the same bytes may have removed the file
                # between our write and our commit: write it again
                self._put_files(artifact)
                return stored
            except DBIntegrityError:  # another writer took the number first (PostgreSQL)
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _put_files(self, artifact: ModelArtifact) -> None:
        for onnx in (artifact.onnx, *artifact.variants.values()):
            self.blobs.put(onnx)

    def _insert_version(self, manifest: Manifest, name: str, aliases: tuple[str, ...]) -> Manifest:
        with self._change() as session:
            model = session.get(ModelRow, name, with_for_update=True)
            if model is None:
                model = ModelRow(name=name, next_version=1)
                session.add(model)
                session.flush()
            version = model.next_version
            model.next_version = version + 1
            stored = dataclasses.replace(manifest, name=name, version=version)
            session.add(
                VersionRow(
                    name=name, version=version, sha256=stored.sha256, manifest=stored.to_dict()
                )
            )
            for alias in aliases:
                session.merge(AliasRow(name=name, alias=alias, version=version))
        return stored

    def set_alias(self, ref: str, alias: str) -> Manifest:
        """Point ``alias`` at the version ``ref`` resolves to (moving it if it exists)."""
        _check_settable(alias)
        with self._change() as session:
            row = self._resolve(session, ModelRef.parse(ref))
            session.merge(AliasRow(name=row.name, alias=alias, version=row.version))
            return Manifest.from_dict(row.manifest)

    def remove_alias(self, name: str, alias: str) -> None:
        with self._change() as session:
            row = session.get(AliasRow, (name, alias))
            if row is None:
                raise ModelNotFound(
                    f"Model '{name}' has no alias '{alias}'. See its aliases with "
                    f"`modelport models show {name}`."
                )
            session.delete(row)

    def delete(self, ref: str) -> list[int]:
        """Delete one version (``name:3``, ``name@alias``) or a whole model (``name``).

        Returns the deleted version numbers. Files go after the transaction commits, so a crash
        can leave an unreferenced file (removed by :meth:`collect_garbage`), never a version
        without its file.
        """
        parsed = ModelRef.parse(ref)
        with self._change() as session:
            if parsed.version is None and parsed.alias is None:
                if session.get(ModelRow, parsed.name) is None:
                    raise ModelNotFound(_unknown_model(session, parsed.name))
                rows = list(
                    session.scalars(select(VersionRow).where(VersionRow.name == parsed.name))
                )
                session.execute(delete(AliasRow).where(AliasRow.name == parsed.name))
                session.execute(delete(VersionRow).where(VersionRow.name == parsed.name))
                session.execute(delete(ModelRow).where(ModelRow.name == parsed.name))
            else:
                rows = [self._resolve(session, parsed)]
                session.execute(
                    delete(AliasRow).where(
                        AliasRow.name == parsed.name, AliasRow.version == rows[0].version
                    )
                )
                session.delete(rows[0])
        self.collect_garbage(
            {
                digest
                for row in rows
                for digest in [
                    row.sha256,
                    *(v["sha256"] for v in row.manifest.get("variants", {}).values()),
                ]
            }
        )
        return [row.version for row in rows]

    def collect_garbage(self, candidates: set[str] | None = None) -> int:
        """Remove files no version refers to (all files, or only ``candidates``)."""
        with self._session() as session:
            used = set()
            for digest, manifest in session.execute(select(VersionRow.sha256, VersionRow.manifest)):
                used.add(digest)
                used.update(info["sha256"] for info in manifest.get("variants", {}).values())
        removed = 0
        for digest in candidates if candidates is not None else set(self.blobs.digests()):
            # NOTE: in a full sweep, a young file may belong to a registration still in progress
            if digest not in used and (candidates is not None or not self.blobs.is_young(digest)):
                self.blobs.delete(digest)
                removed += 1
        return removed + self.blobs.remove_stale_temps()

    @functools.cached_property
    def master_key(self) -> MasterKey:
        """What wraps the model keys in the database (made on first use)."""
        return MasterKey.from_settings(self.settings)

    def set_encryption(self, name: str, enabled: bool) -> bytes | None:
        """Turn encryption at rest on devices on (creating the model's key) or off.

        A change is a new release (the generation grows), so devices re-fetch the model sealed,
        and an older, unsealed download can no longer be replayed to them.
        """
        from ..encryption import new_key

        with self._change() as session:
            self._versions(session, name)  # the model must exist
            row = session.get(ModelKeyRow, name)
            if not enabled:
                if row is not None:
                    session.delete(row)
                return None
            if row is None:
                row = ModelKeyRow(name=name, key=self.master_key.wrap(new_key()))
                session.add(row)
            return self._unwrap(row.key, name)

    def is_encrypted(self, name: str) -> bool:
        """Whether devices keep the model encrypted at rest (without unwrapping its key)."""
        with self._session() as session:
            return session.get(ModelKeyRow, name) is not None

    def encryption_key(self, name: str) -> bytes | None:
        """The model's at-rest key, or None when its downloads are not encrypted on devices."""
        with self._session() as session:
            row = session.get(ModelKeyRow, name)
            if row is None:
                return None
            key = self._unwrap(row.key, name)
        if not row.key.startswith(WRAPPED):  # kept plain by an older modelport: wrap it now
            self.rewrap_keys(self.master_key)
        return key

    def _unwrap(self, stored: str, name: str) -> bytes:
        try:
            return self.master_key.unwrap(stored, name)
        except IntegrityError:  # another process rotated the master key: read it again
            self.__dict__.pop("master_key", None)
            return self.master_key.unwrap(stored, name)

    def rewrap_keys(self, master: MasterKey) -> int:
        """Wrap every model key under ``master``'s current key, in one transaction; returns how
        many changed."""
        changed = 0
        with self._session() as session:
            for row in session.scalars(select(ModelKeyRow)):
                if not master.is_current(row.key):
                    row.key = master.wrap(master.unwrap(row.key, row.name))
                    changed += 1
        return changed

    # -- reading -------------------------------------------------------------------------------

    def manifest(self, ref: str) -> Manifest:
        """The manifest of the version ``ref`` resolves to, without reading the model file."""
        with self._session() as session:
            return Manifest.from_dict(self._resolve(session, ModelRef.parse(ref)).manifest)

    def release(self, ref: str) -> tuple[Manifest, int]:
        """The manifest ``ref`` resolves to and the generation it was read at (one transaction):
        servers sign the generation into downloads as a release number that only grows."""
        with self._session() as session:
            row = self._resolve(session, ModelRef.parse(ref))
            state = session.get(StateRow, GENERATION)
            return Manifest.from_dict(row.manifest), state.value if state else 0

    def get(self, ref: str) -> ModelArtifact:
        """The artifact ``ref`` resolves to, its SHA-256 verified."""
        manifest = self.manifest(ref)
        origin = f"{manifest.name}:{manifest.version}"
        onnx = self.blobs.get(manifest.sha256, origin=origin)
        variants = {
            name: self.blobs.get(info["sha256"], origin=f"{origin} ({name})")
            for name, info in manifest.variants.items()
        }
        return ModelArtifact(onnx, manifest, variants)

    def versions(self, name: str) -> list[Manifest]:
        with self._session() as session:
            return [Manifest.from_dict(r.manifest) for r in self._versions(session, name)]

    def aliases(self, name: str) -> dict[str, int]:
        with self._session() as session:
            rows = session.scalars(select(AliasRow).where(AliasRow.name == name))
            return {row.alias: row.version for row in rows}

    def list_models(self) -> list[ModelSummary]:
        with self._session() as session:
            aliases: dict[str, dict[str, int]] = {}
            for alias in session.scalars(select(AliasRow)):
                aliases.setdefault(alias.name, {})[alias.alias] = alias.version
            latest = session.execute(
                select(VersionRow.name, func.max(VersionRow.version), func.count())
                .group_by(VersionRow.name)
                .order_by(VersionRow.name)
            ).all()
            summaries = []
            for name, version, count in latest:
                row = session.get(VersionRow, (name, version))
                assert row is not None
                summaries.append(
                    ModelSummary(
                        name=name,
                        latest_version=version,
                        versions=count,
                        aliases=aliases.get(name, {}),
                        task=row.manifest.get("task", ""),
                        created=row.created,
                    )
                )
            return summaries

    def check(self) -> list[str]:
        """Problems a crash or a disk fault could have left: missing or corrupted files."""
        problems = []
        with self._session() as session:
            rows = list(session.scalars(select(VersionRow)))
        for row in rows:
            try:
                self.blobs.get(row.sha256, origin=f"{row.name}:{row.version}")
            except ModelportError as exc:
                problems.append(exc.message)
        return problems

    # -- resolution ----------------------------------------------------------------------------

    def _versions(self, session: Session, name: str) -> list[VersionRow]:
        rows = list(
            session.scalars(
                select(VersionRow).where(VersionRow.name == name).order_by(VersionRow.version)
            )
        )
        if not rows:
            raise ModelNotFound(_unknown_model(session, name))
        return rows

    def _resolve(self, session: Session, ref: ModelRef) -> VersionRow:
        version = ref.version
        alias = ref.alias
        if alias == LATEST:
            alias = None
        elif alias is None and version is None:
            row = session.get(AliasRow, (ref.name, DEFAULT_ALIAS))
            version = row.version if row else None
        elif alias is not None:
            row = session.get(AliasRow, (ref.name, alias))
            if row is None:
                known = sorted(self._alias_names(session, ref.name))
                raise ModelNotFound(
                    f"Model '{ref.name}' has no alias '{alias}' (its aliases: "
                    f"{', '.join(known) or 'none'}). Set one with "
                    f"`modelport models alias {ref.name}:VERSION {alias}`."
                )
            version = row.version
        if version is None:
            rows = self._versions(session, ref.name)
            return rows[-1]
        found = session.get(VersionRow, (ref.name, version))
        if found is None:
            numbers = [r.version for r in self._versions(session, ref.name)]
            raise ModelNotFound(
                f"Model '{ref.name}' has no version {version} (its versions: "
                f"{', '.join(map(str, numbers))}). Use one of those, or '{ref.name}' for the "
                "default version."
            )
        return found

    def _alias_names(self, session: Session, name: str) -> list[str]:
        return list(session.scalars(select(AliasRow.alias).where(AliasRow.name == name)))


def _unknown_model(session: Session, name: str) -> str:
    known = list(session.scalars(select(VersionRow.name).distinct().order_by(VersionRow.name)))
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"There is no model named '{name}'. Did you mean '{close[0]}'?"
    listing = ", ".join(known[:20]) if known else "the store is empty"
    return (
        f"There is no model named '{name}' ({listing}). Check the name with "
        "`modelport models list`; train one with `modelport train DATA.csv --target COLUMN "
        f"--name {name}` (or on a folder of photos), or take a ready-made one with "
        "`modelport zoo pull`."
    )


def _check_settable(alias: str) -> None:
    check_alias(alias)
    if alias == LATEST:
        raise InvalidReference(
            f"'{LATEST}' is a built-in alias that always means the newest version; it cannot be "
            "set. Choose another name, such as 'production' or 'staging'."
        )


def _retry_locked(make):  # type: ignore[no-untyped-def]
    # NOTE: two processes creating the same fresh SQLite database can briefly collide on the schema.
    for attempt in range(5):
        try:
            return make()
        except OperationalError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")
