"""The on-device model cache: verified artifacts, an atomic current/previous pointer, rollback.

Layout: ``<root>/<model>/v<version>.zip`` (artifact bundles, verified on every load),
``<root>/<model>/state.json`` (current and previous version, ETag) and, once the model was
personalised on the device, ``<root>/<model>/personalized.json`` (the head fitted here and the
version it sits on). Every write goes to a temp file that is renamed into place, so a crash, a
full disk or a killed download leaves the cache as it was; only the current and previous versions
are kept, and the version a personalised head sits on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fs import atomic_write
from ..artifact import Manifest, ModelArtifact
from ..encryption import MAGIC, is_sealed, open_sealed, seal
from ..errors import IntegrityError, InvalidInput, ModelNotFound, ModelportError

if TYPE_CHECKING:
    from .keys import KeyStore


PERSONALIZED = "personalized.json"
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(directory: Path) -> threading.Lock:
    """One lock per cache directory, shared by every ModelCache of that model in this process."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(directory.resolve(), threading.Lock())


@dataclass
class CacheState:
    current: int | None = None
    previous: int | None = None
    etag: str | None = None
    release: int | None = None
    """The newest signed release installed: older ones are refused as replays."""
    personalized: int | None = None
    """The version a head personalised on this device sits on (kept while the head is)."""


class ModelCache:
    """Cached versions of one model."""

    def __init__(self, root: Path, name: str, keys: KeyStore | None = None) -> None:
        self.dir = Path(root) / name
        self.name = name
        self.keys = keys
        self._lock = _lock_for(self.dir)

    def state(self) -> CacheState:
        try:
            return CacheState(**json.loads((self.dir / "state.json").read_text()))
        except (FileNotFoundError, NotADirectoryError):
            return CacheState()
        except (ValueError, TypeError):  # a damaged pointer: fall back to what is on disk
            versions = self.versions()
            return CacheState(current=versions[-1] if versions else None)

    def versions(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in self.dir.glob("v*.zip") if p.stem[1:].isdigit())

    def load(self, version: int | None = None) -> ModelArtifact:
        """The cached artifact (default: current), its SHA-256 verified."""
        version = version if version is not None else self.state().current
        if version is None:
            raise ModelNotFound(
                f"No copy of model '{self.name}' is cached in {self.dir} yet. Sync it once while "
                "the server is reachable (model.sync()), or package one with `modelport pull`."
            )
        path = self.dir / f"v{version}.zip"
        try:
            data = path.read_bytes()
            if is_sealed(data):  # decrypted in memory only, never written in clear
                data = open_sealed(self._key(), data, self.name)
            return ModelArtifact.from_bytes(data, origin=str(path))
        except FileNotFoundError as exc:
            raise ModelNotFound(f"Version {version} of '{self.name}' is not in the cache.") from exc
        except InvalidInput as exc:
            raise IntegrityError(f"The cached file {path} is damaged: {exc.message}") from exc

    def is_sealed(self, version: int | None) -> bool:
        """Whether the cached file of ``version`` is encrypted at rest."""
        try:
            with (self.dir / f"v{version}.zip").open("rb") as handle:
                return is_sealed(handle.read(len(MAGIC)))
        except OSError:
            return False

    def install(
        self,
        data: bytes,
        etag: str | None = None,
        encrypt: bool = False,
        release: int | None = None,
    ) -> Manifest:
        """Verify ``data`` (an artifact bundle) and make it current; the old current becomes previous.

        With ``encrypt``, the file on disk is sealed with the model's key (AES-256-GCM);
        ``release`` is the signed release number it came with.
        """
        manifest = ModelArtifact.from_bytes(data, origin=f"the download of '{self.name}'").manifest
        if encrypt:
            data = seal(self._key(), data, self.name)
        if manifest.version is None:
            raise IntegrityError("The downloaded artifact has no version; the server must set one.")
        with self._lock:
            self._write(self.dir / f"v{manifest.version}.zip", data)
            state = self.state()
            if state.current != manifest.version:
                state.previous, state.current = state.current, manifest.version
            state.etag = etag
            if release is not None:
                state.release = max(release, state.release or 0)
            self._save(state)
            self._prune(state)
        return manifest

    def _key(self) -> bytes:
        key = self.keys.get(self.name) if self.keys is not None else None
        if key is None:
            raise ModelNotFound(
                f"Model '{self.name}' is encrypted at rest, and its key was never fetched on this "
                "device. Go online once and sync (model.sync()) with an API key allowed to use it."
            )
        return key

    def remember(self, etag: str | None, release: int) -> None:
        """The server's ETag and signed release of the version already held."""
        with self._lock:
            state = self.state()
            state.etag = etag
            state.release = max(release, state.release or 0)
            self._save(state)

    def rollback(self) -> int:
        """Make the previous version current again (and the current one previous)."""
        with self._lock:
            state = self.state()
            if state.previous is None:
                raise ModelNotFound(
                    f"Model '{self.name}' has no previous version in the cache to roll back to."
                )
            state.current, state.previous = state.previous, state.current
            state.etag = None  # the server's current version is no longer what we hold
            self._save(state)
            return state.current

    def save_personalized(self, version: int, record: dict[str, Any]) -> None:
        """Keep ``record`` (a head fitted on ``version``) as this device's personalised version;
        it replaces an earlier one."""
        with self._lock:
            self._write(self.dir / PERSONALIZED, json.dumps(record).encode())
            state = self.state()
            state.personalized = version
            self._save(state)
            self._prune(state)

    def personalized(self) -> dict[str, Any] | None:
        """The record of the personalised version, or None when there is none."""
        if self.state().personalized is None:
            return None
        path = self.dir / PERSONALIZED
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise IntegrityError(
                f"The personalised head in {path} is damaged ({exc}); roll back (model.rollback())"
                " and personalise again."
            ) from exc

    def drop_personalized(self) -> None:
        """Forget the personalised version; the server's versions are untouched."""
        with self._lock:
            state = self.state()
            state.personalized = None
            self._save(state)
            (self.dir / PERSONALIZED).unlink(missing_ok=True)
            self._prune(state)

    def _save(self, state: CacheState) -> None:
        self._write(self.dir / "state.json", json.dumps(asdict(state)).encode())

    def _write(self, path: Path, data: bytes) -> None:
        write_file(path, data)

    def _prune(self, state: CacheState) -> None:
        keep = {state.current, state.previous, state.personalized}
        for version in self.versions():
            if version not in keep:
                (self.dir / f"v{version}.zip").unlink(missing_ok=True)


def write_file(path: Path, data: bytes) -> None:
    """Atomic write into the cache; a read-only or full disk becomes one clear error."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise CacheNotWritable(
            f"Cannot write the model cache at {path.parent}: {exc.strerror or exc}. The cached "
            "versions are unchanged; free disk space or choose a writable cache_dir."
        ) from exc


class CacheNotWritable(ModelportError):
    """The cache directory cannot be written (read-only, full disk)."""

    code = "cache_not_writable"
