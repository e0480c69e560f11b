"""One model as an app sees it: predictions on the device, on the server, or both."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import numpy as np

from ..artifact import Manifest, ModelArtifact
from ..errors import IntegrityError, InvalidInput, InvalidParameter, ModelNotFound, ModelportError
from ..runtime import Predictor, audio_plan, head, image, text_plan
from ..runtime.tabular import to_columns
from ..signing import Delivery
from . import images
from .cache import ModelCache
from .remote import (
    ENCRYPTION_HEADER,
    RELEASE_HEADER,
    SIGNATURE_HEADER,
    Remote,
    ServerUnavailable,
)
from .trust import Trust

Mode = Literal["local_only", "prefer_local", "prefer_remote", "remote_only"]
Update = Literal["local", "background", "latest"]
MODES = ("local_only", "prefer_local", "prefer_remote", "remote_only")
UPDATES = ("local", "background", "latest")


class Result:
    """Predictions for the rows or images asked about, and who computed them.

    ``probabilities`` and ``top_k`` are made on first use: for a large batch, building a dict
    per row costs a fifth of the prediction, and many callers read only ``predictions``.
    """

    def __init__(
        self,
        predictions: list[Any],
        probabilities: Lazy[list[dict[str, float]]],
        served_by: Literal["local", "local-personalized", "remote"],
        version: int | None,
        stale: bool = False,
        top_k: Lazy[list[list[dict[str, Any]]]] = None,
    ) -> None:
        self.predictions = predictions
        self.served_by = served_by
        """``local-personalized``: the head :meth:`Model.personalize` fitted on this device
        answered."""
        self.version = version
        self.stale = stale
        """True when ``update="latest"`` could not reach the server and the cached copy
        answered."""
        self._probabilities = probabilities
        self._top_k = top_k

    @property
    def probabilities(self) -> list[dict[str, float]] | None:
        """Classifiers: ``{label: probability}`` for each row."""
        if callable(self._probabilities):
            self._probabilities = self._probabilities()
        return self._probabilities

    @property
    def top_k(self) -> list[list[dict[str, Any]]] | None:
        """Classifiers: the most probable labels of each row, best first: ``[{"label", "score"}]``."""
        if callable(self._top_k):
            self._top_k = self._top_k()
        return self._top_k

    def __repr__(self) -> str:
        return (
            f"Result(predictions={self.predictions!r}, probabilities={self.probabilities!r}, "
            f"served_by={self.served_by!r}, version={self.version!r}, stale={self.stale!r}, "
            f"top_k={self.top_k!r})"
        )


T = TypeVar("T")
Lazy = T | Callable[[], T | None] | None
"""A value, or a function that makes it when it is first read."""


@dataclass
class SyncEvent:
    """Progress of a sync, for the ``on_sync`` callback."""

    state: Literal["checking", "up_to_date", "downloading", "installed", "failed"]
    version: int | None = None
    done_bytes: int = 0
    total_bytes: int | None = None
    error: str | None = None


class Model:
    """A model that predicts locally (onnxruntime), remotely (the server), or both with fallback.

    Args:
        mode: "local_only", "prefer_local" (default: local, the server when no copy is cached),
            "prefer_remote" (the server, the local copy when it is unreachable, slow, failing or
            rate-limiting) or "remote_only".
        update: "local" (use the cached copy; download only if there is none), "background" (use
            the cached copy now, fetch a newer one in a background thread for the next calls) or
            "latest" (fetch before the first prediction; offline, the cached copy answers and
            results say ``stale=True``).
        variant: "fp32", "int8", or None for the server's device default (int8 when it is
            meaningfully smaller and loses at most one point, else fp32).
    """

    def __init__(
        self,
        ref: str,
        cache: ModelCache,
        remote: Remote | None,
        mode: str,
        update: str,
        on_sync: Callable[[SyncEvent], None] | None = None,
        trust: Trust | None = None,
        variant: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidParameter(f"mode must be one of {', '.join(MODES)}, not '{mode}'.")
        if update not in UPDATES:
            raise InvalidParameter(f"update must be one of {', '.join(UPDATES)}, not '{update}'.")
        if remote is None and mode != "local_only":
            raise InvalidParameter(
                f"mode '{mode}' needs a server: give Client a URL, or use mode='local_only'."
            )
        self.ref = ref
        self.cache = cache
        self.remote = remote
        self.mode = mode
        self.update = update
        self.on_sync = on_sync
        self.trust = trust
        self.variant = variant
        self.stale = False
        self._predictor: Predictor | None = None
        """The server's version in use on the device."""
        self._personal: head.HeadPredictor | None = None
        """The version personalised on this device, which answers instead while it exists."""
        self._load_error: ModelportError | None = None
        self._lock = threading.Lock()
        self._prepared = False

    # -- predicting ----------------------------------------------------------------------------

    def predict(self, inputs: Any, top_k: int = 5) -> Result:
        """Predict where the mode says, for rows (dicts, a DataFrame or columns); for an image
        model, photos (JPEG/PNG/WebP bytes, file paths, PIL images, arrays, or a list of these);
        for a text model, one text or a list of them (an embedder's predictions are vectors);
        for an audio model, recordings (WAV bytes, paths, ``(samples, sample_rate)`` or a list).
        Classifiers also give the ``top_k`` most probable labels of each. A personalised version
        answers on the device in every mode but ``remote_only``: the server does not have it."""
        if top_k < 1:
            raise InvalidParameter(f"top_k must be 1 or more, not {top_k}.")
        self._prepare()
        if self.mode == "remote_only":
            return self._remote(inputs, top_k)
        if self.mode == "local_only" or self._personal is not None:
            return self._local(inputs, top_k)
        if self.mode == "prefer_remote":
            try:
                return self._remote(inputs, top_k)
            except ServerUnavailable:
                if self._predictor is None:
                    raise
                return self._local(inputs, top_k)
        if self._predictor is None:
            return self._remote(inputs, top_k)
        return self._local(inputs, top_k)

    def _local(self, inputs: Any, top_k: int) -> Result:
        personal = self._personal
        predictor = personal or self._predictor
        if predictor is None and self._load_error is not None:
            raise self._load_error
        if predictor is None:
            raise ModelNotFound(
                f"No local copy of '{self.ref}' is available: sync while online, or use a mode "
                "that may call the server."
            )
        prediction = predictor.predict(inputs)
        return Result(
            prediction.predictions.tolist(),
            prediction.probabilities_by_label,
            "local-personalized" if personal else "local",
            predictor.manifest.version,
            self.stale,
            lambda: prediction.top_k(top_k),
        )

    def _remote(self, inputs: Any, top_k: int) -> Result:
        assert self.remote is not None
        manifest = self._predictor.manifest if self._predictor else None
        texts = manifest.is_text if manifest else _looks_like_texts(inputs)
        recordings = (
            manifest.input_layout == "audio"
            if manifest
            else audio_plan.looks_like_recordings(inputs)
        )
        if recordings:
            column = manifest.inputs[0].name if manifest else audio_plan.AUDIO
            answer = self.remote.predict(self.ref, audio_plan.as_rows(inputs, column))
        elif manifest.is_image if manifest else not texts and images.looks_like_images(inputs):
            answer = self.remote.predict_images(self.ref, images.as_base64(inputs), top_k)
        elif texts:
            column = manifest.inputs[0].name if manifest else "text"
            answer = self.remote.predict(self.ref, text_plan.as_rows(inputs, column))
        else:
            rows = inputs if isinstance(inputs, list) else _as_rows(inputs, manifest)
            answer = self.remote.predict(self.ref, rows)
        probabilities = answer.get("probabilities")
        return Result(
            answer["predictions"],
            probabilities,
            "remote",
            answer.get("version"),
            top_k=answer.get("top_k") or (lambda: _ranked(probabilities, top_k)),
        )

    # -- personalising on the device -----------------------------------------------------------

    def personalize(self, examples: Any, labels: Sequence[str]) -> int:
        """Learn this user's own classes on the device from a few labelled photos.

        Fits a new classifier head (numpy only) over the model's embedding output: its classes
        are exactly the distinct ``labels`` (the model's own classes are replaced, since their
        training photos are not on the device; label a few photos of any of them to keep it).
        The result is a local version on top of the server's version in use: kept in the cache
        (it survives restarts, is never uploaded), answering every prediction but
        ``remote_only`` ones (``served_by="local-personalized"``) until :meth:`rollback`. A newer
        server version that sync installs waits behind it; personalise again to move onto it.
        Personalising again replaces the head. Returns the server version it sits on.
        """
        self._prepare()
        if self.mode == "remote_only":
            raise InvalidParameter(
                "personalize() trains on the device, and mode='remote_only' keeps no copy there; "
                "use another mode."
            )
        predictor = self._predictor
        if predictor is None:
            raise self._load_error or ModelNotFound(
                f"No local copy of '{self.ref}' to personalise: sync while online first."
            )
        manifest = predictor.manifest
        if "embedding" not in manifest.outputs:
            raise InvalidInput(
                f"Model '{manifest.name}' has no embedding output, so it cannot be personalised: "
                "only image models (the zoo's image-labeler, models trained from photos) have one."
            )
        if image.is_image_like(examples):
            examples = [examples]
        elif not isinstance(examples, np.ndarray):
            examples = list(examples)  # a generator, a tuple ...
        labels = [labels] if isinstance(labels, str) else list(labels)
        head.check(len(examples), labels)
        fitted = head.fit(head.embed(predictor, examples), labels)
        record = {
            "version": manifest.version,
            "sha256": manifest.sha256,
            "labels": fitted.labels,
            "examples": len(labels),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "head": fitted.to_dict(),
        }
        assert manifest.version is not None  # cached versions always have one
        self.cache.save_personalized(manifest.version, record)
        self._personal = head.HeadPredictor(predictor, fitted)
        return manifest.version

    def _load_personalized(self) -> None:
        """The personalised version in the cache, on the server version it was fitted on."""
        record = self.cache.personalized()
        if record is None:
            self._personal = None
            return
        try:
            base, fitted = record["version"], head.Head.from_dict(record["head"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"The personalised head of '{self.cache.name}' is damaged ({exc!r}); roll back "
                "(model.rollback()) and personalise again."
            ) from exc
        predictor = self._predictor
        if predictor is None or predictor.manifest.version != base:
            predictor = Predictor(self.cache.load(base))
        self._personal = head.HeadPredictor(predictor, fitted)

    # -- keeping the local copy current --------------------------------------------------------

    def _prepare(self) -> None:
        if self._prepared:
            return
        with self._lock:
            if self._prepared:
                return
            self._prepared = True
            if self.mode == "remote_only":
                return
            self._load_cached()
            if self.remote is None:
                return
            if self.update == "latest" or (self.update == "local" and self._predictor is None):
                try:
                    self.sync()
                except ModelportError:
                    if self._predictor is None and self.mode == "local_only":
                        raise
                    self.stale = self.update == "latest" and self._predictor is not None
            elif self.update == "background":
                threading.Thread(target=self._sync_quietly, daemon=True).start()

    def _load_cached(self) -> None:
        """Load the current cached version (a damaged one falls back to the previous) and the
        personalised version, if there is one."""
        state = self.cache.state()
        for version in (state.current, state.previous):
            if version is None:
                continue
            try:
                self._predictor = Predictor(self.cache.load(version))
                break
            except ModelportError as exc:
                self._load_error = exc  # said when nothing else can answer
        self._load_personalized()

    def _sync_quietly(self) -> None:
        try:
            self.sync()
        except ModelportError as exc:
            self._emit(SyncEvent("failed", error=exc.message))

    def sync(self) -> int | None:
        """Fetch a newer version if the server has one; returns the version now in use (a
        personalised version keeps answering, on the version it sits on, until rollback()).

        Checks with the ETag first (a 304 costs no download); a new artifact is verified
        (SHA-256, and the Ed25519 signature against the pinned key) before it replaces the
        current one, and predictions keep running meanwhile.
        """
        if self.remote is None:
            raise InvalidParameter("sync() needs a server: give Client a URL.")
        if self._predictor is None:
            self._load_cached()  # a copy on disk from an earlier run counts as current
        self._emit(SyncEvent("checking"))
        state = self.cache.state()
        etag = state.etag if self._predictor else None
        response = self.remote.manifest(self.ref, etag, self.variant)
        current = self._predictor.manifest if self._predictor else None
        if response.status_code == 304:
            return self._up_to_date(current)
        listed = Manifest.from_dict(response.json())
        offered = self._verified(listed, response.headers, state.release)
        if (
            current is not None
            and (listed.sha256, listed.version) == (current.sha256, current.version)
            and (offered.encryption is not None) == self.cache.is_sealed(current.version)
        ):
            self.cache.remember(response.headers.get("etag"), offered.release)
            return self._up_to_date(current)
        data, headers = self.remote.download(
            self.ref,
            lambda done, total: self._emit(SyncEvent("downloading", None, done, total)),
            self.variant,
        )
        downloaded = ModelArtifact.from_bytes(data, origin=f"the download of '{self.ref}'")
        delivery = self._verified(downloaded.manifest, headers, offered.release)
        loaded = Predictor(downloaded)  # a graph this device cannot load never becomes current
        encrypt = delivery.encryption is not None
        if encrypt and self.cache.keys is not None and self.cache.keys.get(self.cache.name) is None:
            self.cache.keys.put(self.cache.name, self.remote.model_key(self.ref))
        manifest = self.cache.install(
            data, response.headers.get("etag"), encrypt=encrypt, release=delivery.release
        )
        self._predictor = loaded  # one atomic swap; the bytes were verified above
        self.stale = False
        self._emit(SyncEvent("installed", manifest.version, len(data), len(data)))
        return self.version

    def _up_to_date(self, current: Manifest | None) -> int | None:
        self.stale = False
        self._emit(SyncEvent("up_to_date", current.version if current else None))
        return self.version

    def _verified(self, manifest: Manifest, headers: Any, newest: int | None) -> Delivery:
        """How ``headers`` say ``manifest`` was delivered, once checked: this model, signed by the
        pinned key together with the delivery, and no older than release ``newest`` (an older
        release is an old answer replayed)."""
        delivery = _delivery(headers)
        if manifest.name != self.cache.name:
            raise IntegrityError(
                f"Asked for {self.ref} but received {manifest.name}:{manifest.version}; the "
                "answer is rejected."
            )
        if self.trust is not None:
            self.trust.check(manifest, delivery, headers.get(SIGNATURE_HEADER))
        if newest is not None and delivery.release < newest:
            raise IntegrityError(
                f"The server sent {manifest.name}:{manifest.version} as release "
                f"{delivery.release}, older than release {newest} this device has seen: an old "
                "answer replayed. It is rejected and the current version keeps serving "
                "(rollback() goes back on purpose)."
            )
        return delivery

    def rollback(self) -> int:
        """Go back: from a personalised version to the server's current one, else to the
        previously cached version; returns the version now in use."""
        if self.cache.state().personalized is not None:
            self.cache.drop_personalized()
            self._personal = None
            version = self.cache.state().current
            if version is None:  # pragma: no cover - a personalised model sits on a cached one
                raise ModelNotFound(f"No server version of '{self.ref}' is cached.")
        else:
            version = self.cache.rollback()
        self._predictor = Predictor(self.cache.load(version))
        return version

    def versions(self) -> dict[str, Any]:
        """Cached versions, the one in use and the one a rollback would restore; while a
        personalised version exists, ``personalized`` describes it (it answers instead)."""
        state = self.cache.state()
        found: dict[str, Any] = {
            "cached": self.cache.versions(),
            "current": state.current,
            "previous": state.previous,
        }
        record = self.cache.personalized()
        if record is not None:
            keys = ("version", "labels", "examples", "created")
            found["personalized"] = {key: record.get(key) for key in keys}
        return found

    @property
    def version(self) -> int | None:
        """The local version in use (None before any is cached); a personalised version says
        the server version it sits on."""
        predictor = self._personal or self._predictor
        return predictor.manifest.version if predictor else None

    def _emit(self, event: SyncEvent) -> None:
        if self.on_sync is not None:
            self.on_sync(event)


def _delivery(headers: Any) -> Delivery:
    """How the server says it delivered the download (checked against its signature)."""
    release = headers.get(RELEASE_HEADER, "")
    if not release.isdigit():
        raise IntegrityError(
            "The download arrived without a release number (X-Modelport-Release); it is rejected."
        )
    return Delivery(int(release), headers.get(ENCRYPTION_HEADER))


def _ranked(
    probabilities: list[dict[str, float]] | None, k: int
) -> list[list[dict[str, Any]]] | None:
    """The ``k`` most probable labels of each row, when the server did not rank them."""
    if probabilities is None:
        return None
    return [
        [{"label": label, "score": score} for label, score in sorted(row.items(), key=_score)[:k]]
        for row in probabilities
    ]


def _score(item: tuple[str, float]) -> float:
    return -item[1]


def _looks_like_texts(inputs: Any) -> bool:
    """Strings that name no file (which would be photos) are texts, for a model not yet seen."""
    if not text_plan.looks_like_texts(inputs):
        return False
    return not any(os.path.isfile(t) for t in ([inputs] if isinstance(inputs, str) else inputs))


def _as_rows(rows: Any, manifest: Any) -> list[dict[str, Any]]:
    """Rows for the JSON API from a DataFrame, one dict, or columns."""
    if hasattr(rows, "to_dict"):
        return rows.to_dict(orient="records")
    if isinstance(rows, dict):
        columns = (
            to_columns(rows, manifest)
            if manifest
            else {k: v if isinstance(v, list) else [v] for k, v in rows.items()}
        )
        names = list(columns)
        return [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
    raise InvalidParameter("Remote predictions take a list of row dicts, one dict or a DataFrame.")
