"""Audio AutoML: keyword and command classifiers from folders of WAV recordings, shipped as one
ONNX graph that takes raw 16 kHz audio and computes its own features.

Each recording is decoded, mixed down to mono and resampled to 16 kHz, refused if silent,
trimmed of its quiet start and end, and scaled to a peak of 1 (runtime/audio_plan.py, the code
that serves and runs the model on devices). The window the graph takes is the 95th percentile of
the trimmed sounds' lengths; each is centred in it. Log-mel features (export/audio_graph.py) are
computed by onnxruntime with the same graph that is shipped, pooled over a few segments in time;
the search fits multinomial logistic regressions on standardised MFCC or log-mel features over a
grid of regularisation strengths, scored by stratified cross-validation on the training
recordings within the time budget. The winner is refitted on all training recordings, appended
to the feature graph (export/image_head.attach_head), checked against the Python head on the
held-out recordings (parity), and scored there.

On spoken_digits (50 recordings, 5 speakers, one of each digit each) the design study measured
0.64 (log-mel, 3 segments) to 0.70 (20 MFCC, 5 segments) leave-one-speaker-out accuracy; both
are searched (bench/audio_training.py records what this trainer reaches).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..artifact import ColumnSpec, ModelArtifact
from ..data.audio import AudioDataset, read_recordings
from ..errors import ExportError, InvalidDataset, InvalidInput, ModelportError
from ..export import parity
from ..export.audio_graph import Features, feature_graph, frames
from ..export.image_head import OUTPUTS, LinearHead, attach_head
from ..runtime import Predictor
from ..runtime.audio import fit_window, recording
from ..runtime.audio_plan import AUDIO, AudioSpec
from .image import ImageAutoML, _fingerprint
from .leaderboard import LeaderboardRow
from .metrics import class_recall, test_scores
from .tabular import TrainingEvent, check_time_budget
from .versions import library_versions

TEST_SHARE = 0.2
FOLDS = 5
WINDOW_PERCENTILE = 95
WINDOW_STEP = 0.1
"""The window is the percentile rounded up to this many seconds."""
MIN_WINDOW, MAX_WINDOW = 0.3, 10.0
"""Seconds: enough frames for every segment; longer sounds than the most are cropped."""
EXPORT_RESERVE = (1.0, 0.05)
"""Seconds + share of the budget kept for the refit, export and parity check."""
PARITY_TOLERANCE = 1e-4
BALANCED = 0.8
"""Classes whose sizes differ more than this ratio are ranked by balanced accuracy."""
WORST = 12
INT8_SKIPPED = (
    "the graph is ~50 KB, most of it the mel filterbank, and onnxruntime's dynamic "
    "int8 rounds the power spectrum it multiplies (quiet bands vanish): leave-one-speaker-out "
    "on spoken_digits fell from 0.66 to 0.58 (bench/audio_training.py)"
)

Callback = Callable[[TrainingEvent], None]

FEATURES = (Features("mfcc", 20, 5), Features("logmel", 40, 3))


@dataclass(frozen=True)
class Candidate:
    """One head to try: features, then a standardised logistic regression with this C."""

    features: Features
    C: float

    @property
    def name(self) -> str:
        return f"logistic {self.features.name} C={self.C:g}"

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> LinearHead:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        model = LogisticRegression(C=self.C, max_iter=3000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs may stop at max_iter: still a usable head
            model.fit(scaler.transform(X), y)
        return LinearHead.from_sklearn(model, scaler=scaler)


CANDIDATES = tuple(
    Candidate(features, C) for C in (0.1, 1.0, 0.03, 0.3, 3.0, 10.0) for features in FEATURES
)
"""Likely winners first, so a short budget tries them."""


class AudioAutoML:
    """Train an audio classifier from labelled recordings; ``to_artifact`` gives the ONNX model.

    Args:
        time_budget: seconds for the whole run (reading, features, search, export, checks).
        seed: random seed of the held-out split and the search's folds.
        callback: called with a :class:`TrainingEvent` as training progresses.
    """

    _split = ImageAutoML._split  # stratified, at least one held-out example per class
    _emit = ImageAutoML._emit

    def __init__(
        self, *, time_budget: float = 60.0, seed: int = 0, callback: Callback | None = None
    ) -> None:
        self.time_budget = time_budget
        self.seed = seed
        self.callback = callback

    def fit(self, dataset: AudioDataset | Path | str) -> AudioAutoML:
        """Read, search, refit, export, parity and held-out scores; raises on bad recordings.
        ``dataset`` is read (a folder of class folders) or already read (data/audio.py)."""
        started = time.monotonic()
        check_time_budget(self.time_budget)
        if not isinstance(dataset, AudioDataset):
            dataset = read_recordings(Path(dataset))
        until = started + self.time_budget * (1 - EXPORT_RESERVE[1]) - EXPORT_RESERVE[0]
        self.classes_ = dataset.classes
        y = np.searchsorted(self.classes_, dataset.labels)
        names = [dataset.name_of(p) for p in dataset.paths]
        sounds = self._sounds(dataset, names, started)
        self.spec_ = AudioSpec(window_seconds=_window(sounds, AudioSpec.sample_rate))
        clips = np.stack([fit_window(s, self.spec_.samples) for s in sounds])
        train, test = self._split(y)
        self._emit("features", started, "Computing log-mel features")
        features = {f: self._features(f, clips) for f in FEATURES}
        counts = np.bincount(y)
        balanced = counts.min() >= BALANCED * counts.max()
        self.metric_ = "accuracy" if balanced else "balanced_accuracy"
        with threadpool_limits(1):  # small fits: BLAS threads only slow them on a busy machine
            self.leaderboard_ = self._search(features, y, train, started, until)
            best = next(c for c in CANDIDATES if c.name == self.leaderboard_[0].model)
            self._emit("export", started, "Exporting features + head to ONNX, checking parity")
            X = features[best.features]
            self.head_ = best.fit(X[train], y[train], self.seed)
        self.best_ = best
        self.onnx_ = attach_head(self._graph(best.features), self.head_)
        test_paths = [dataset.paths[i] for i in test]
        onnx = Predictor(self._artifact("model")).predict(test_paths)
        expected = self.head_.predict_proba(X[test])
        self.parity_ = parity.check_classifier(
            np.asarray(self.classes_)[expected.argmax(axis=1)], expected, onnx, best.name
        )
        if self.parity_.max_abs_diff > PARITY_TOLERANCE:
            raise ExportError(
                f"The exported graph's probabilities differ from the trained head's by up to "
                f"{self.parity_.max_abs_diff:.2g} on the held-out recordings (the rule is "
                f"{PARITY_TOLERANCE:g}); nothing was registered. Report this with the dataset."
            )
        assert onnx.probabilities is not None
        predicted = onnx.probabilities.argmax(axis=1)
        self.metrics_ = test_scores("classification", y[test], predicted, onnx.probabilities)
        self.leaderboard_[0].recall = class_recall(y[test], predicted, self.classes_)
        self.report_ = _report(self.classes_, [names[i] for i in test], y[test], onnx.probabilities)
        self.split_ = {"train": len(train), "test": len(test), "seed": self.seed}
        self.data_fingerprint_ = _fingerprint(self.digests_, dataset.labels)
        self.fit_seconds_ = time.monotonic() - started
        self._emit("done", started, f"Done in {self.fit_seconds_:.1f} s")
        return self

    def _sounds(self, dataset: AudioDataset, names: list[str], started: float) -> list[np.ndarray]:
        """Each recording decoded, resampled, checked for sound, trimmed and scaled."""
        spec = AudioSpec()
        sounds, self.digests_ = [], []
        for i, (path, name) in enumerate(zip(dataset.paths, names, strict=True)):
            if i % 50 == 0:
                self._emit("loading", started, f"Reading recordings: {i}/{len(names)}")
            data = path.read_bytes()
            self.digests_.append(hashlib.sha256(data).hexdigest())
            try:
                sounds.append(spec.sound(recording(data, spec.sample_rate, spec.max_seconds)))
            except InvalidInput as exc:
                raise InvalidDataset(
                    f"The recording {name} cannot be used: {exc.message} Remove or replace it "
                    "in the dataset, then train again; nothing was registered."
                ) from exc
        return sounds

    def _graph(self, features: Features) -> bytes:
        return feature_graph(self.spec_.samples, self.spec_.sample_rate, features)

    def _features(self, features: Features, clips: np.ndarray) -> np.ndarray:
        """The graph's own pooled features of the clips (onnxruntime, as shipped)."""
        extractor = ModelArtifact.create(
            self._graph(features),
            name="audio-features",
            task="classification",
            inputs=[ColumnSpec(name=AUDIO, dtype="audio", onnx_name=AUDIO)],
            outputs={"embedding": "embedding"},
            input_layout="audio",
            preprocessing={"audio": self.spec_.to_dict()},
        )
        return Predictor(extractor).embed({AUDIO: clips})

    def _search(
        self,
        features: dict[Features, np.ndarray],
        y: np.ndarray,
        train: np.ndarray,
        started: float,
        until: float,
    ) -> list[LeaderboardRow]:
        """Cross-validated score (then log loss) of each head while time is left, best first;
        the first one is always tried."""
        from sklearn.model_selection import StratifiedKFold

        labels = y[train]
        folds = min(FOLDS, int(np.bincount(labels).min()))
        splits = (
            list(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(train, labels))
            if folds >= 2
            else [(np.arange(len(train)), np.arange(len(train)))]
        )
        note = "" if folds >= 2 else "scored on its own training recordings (too few to fold)"
        rows: list[LeaderboardRow] = []
        for candidate in CANDIDATES:
            if rows and time.monotonic() > until:
                break
            X = features[candidate.features][train]
            rows.append(self._score(candidate, X, labels, splits, note))
            rows.sort(key=lambda r: (-r.score, r.loss))
            self._emit("search", started, f"Searching heads ({len(rows)} tried)", rows)
        return rows

    def _score(
        self,
        candidate: Candidate,
        X: np.ndarray,
        y: np.ndarray,
        splits: list[tuple[np.ndarray, np.ndarray]],
        note: str,
    ) -> LeaderboardRow:
        from sklearn.metrics import log_loss

        clock = time.monotonic()
        predicted, truth, loss = [], [], 0.0
        classes = np.arange(len(self.classes_))
        for fit_on, score_on in splits:
            proba = candidate.fit(X[fit_on], y[fit_on], self.seed).predict_proba(X[score_on])
            predicted.append(proba.argmax(axis=1))
            truth.append(y[score_on])
            loss += log_loss(y[score_on], proba, labels=classes) * len(score_on)
        guesses, answers = np.concatenate(predicted), np.concatenate(truth)
        recall = [np.mean(guesses[answers == c] == c) for c in np.unique(answers)]
        score = np.mean(guesses == answers) if self.metric_ == "accuracy" else np.mean(recall)
        return LeaderboardRow(
            model=candidate.name,
            metric=self.metric_,
            score=float(score),
            loss=float(loss / len(answers)),
            fit_seconds=(time.monotonic() - clock) / len(splits),
            trials=len(splits),
            note=note,
        )

    def _artifact(self, name: str, **fields: Any) -> ModelArtifact:
        return ModelArtifact.create(
            self.onnx_,
            name=name,
            task="classification",
            inputs=[ColumnSpec(name=AUDIO, dtype="audio", onnx_name=AUDIO)],
            outputs={role: role for role in OUTPUTS},
            input_layout="audio",
            class_labels=list(self.classes_),
            label_is_index=True,
            preprocessing={"audio": self.spec_.to_dict()},
            **fields,
        )

    def to_artifact(self, name: str = "model", description: str = "") -> ModelArtifact:
        """The ONNX artifact (features + head), with its full manifest."""
        if not hasattr(self, "onnx_"):
            raise ModelportError(
                "This AudioAutoML is not fitted yet. Call 'fit' with an audio dataset first."
            )
        return self._artifact(
            name,
            description=description,
            skipped_variants={"int8": INT8_SKIPPED},
            metrics=dict(self.metrics_),
            data_fingerprint=self.data_fingerprint_,
            library_versions=library_versions(),
            source={
                "kind": "automl",
                "modality": "audio",
                "features": self.best_.features.to_dict(),
                "frames": frames(self.spec_.samples),
                "estimator": self.best_.name,
                "metric": self.metric_,
                "time_budget": self.time_budget,
                "fit_seconds": round(self.fit_seconds_, 2),
                "split": self.split_,
                "parity": self.parity_.to_dict(),
                "leaderboard": [r.to_dict() for r in self.leaderboard_],
                "report": self.report_,
            },
        )


def _window(sounds: list[np.ndarray], rate: int) -> float:
    """Seconds: the WINDOW_PERCENTILE of the sounds' lengths, rounded up to WINDOW_STEP."""
    seconds = np.percentile([len(s) / rate for s in sounds], WINDOW_PERCENTILE)
    steps = math.ceil(round(seconds / WINDOW_STEP, 6))
    return float(min(MAX_WINDOW, max(MIN_WINDOW, round(steps * WINDOW_STEP, 3))))


def _report(
    classes: list[str], names: list[str], truth: np.ndarray, proba: np.ndarray
) -> dict[str, Any]:
    """The confusion matrix, recall per class and the held-out recordings the model gave the
    least to the truth."""
    predicted = proba.argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    truth_score = proba[np.arange(len(truth)), truth]
    worst = np.argsort(truth_score, kind="stable")[:WORST]
    return {
        "classes": list(classes),
        "confusion": confusion.tolist(),
        "accuracy": float((predicted == truth).mean()),
        "recall": class_recall(truth, predicted, classes),
        "worst": [
            {
                "recording": names[i],
                "truth": classes[truth[i]],
                "predicted": classes[predicted[i]],
                "score": round(float(proba[i, predicted[i]]), 4),
                "truth_score": round(float(truth_score[i]), 4),
            }
            for i in worst
        ],
    }
