"""Audio classifiers from folders of WAV recordings: the log-mel features run inside the one ONNX
graph, the runtime prepares recordings (any rate, stereo, WAV bytes, paths, samples) the same way
on the device and on the server, and recordings or folders that cannot be used get a clear
error, with nothing registered."""

from __future__ import annotations

import base64
import functools
import io
import json
import wave
import zipfile
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from modelport.artifact import ModelArtifact
from modelport.client import Client
from modelport.data.audio import is_audio_dataset, read_recordings
from modelport.errors import InvalidDataset, InvalidInput, SchemaMismatch
from modelport.export import audio_graph
from modelport.runtime import Predictor
from modelport.runtime.audio import read_wav
from modelport.train.audio import AudioAutoML

from .conftest import Server, shared_csv

KINDS = ("chirp", "noise", "tone")
RATES = (8000, 16000, 44100)


def clip(kind: str, seed: int) -> tuple[np.ndarray, int, int]:
    """One generated sound of ``kind`` with quiet lead-in and tail: samples in [-1, 1], its
    rate and channel count (rates and channels vary with the seed)."""
    rng = np.random.default_rng(seed)
    rate, channels = RATES[seed % 3], 1 + seed % 2
    t = np.arange(int(rng.uniform(0.3, 0.6) * rate)) / rate
    if kind == "tone":
        sound = np.sin(2 * np.pi * rng.uniform(400, 700) * t)
    elif kind == "chirp":
        sound = np.sin(2 * np.pi * (rng.uniform(200, 400) + 3000 * t) * t)
    else:
        sound = np.clip(rng.standard_normal(len(t)) / 3, -1, 1)
    quiet = np.zeros(int(rng.uniform(0.05, 0.3) * rate))
    samples = np.concatenate([quiet, sound * rng.uniform(0.1, 0.8), quiet])
    return samples + rng.standard_normal(len(samples)) * 1e-3, rate, channels


def wav(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A PCM WAV file (16-bit, or 8-bit unsigned with ``width`` 1) written by the stdlib."""
    if width == 1:
        pcm = (np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8)
    else:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return out.getvalue()


def make_folder(root: Path, per_class: int = 10, first_seed: int = 0) -> Path:
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            samples, rate, channels = clip(kind, first_seed + i)
            (root / kind / f"{i}.wav").write_bytes(wav(samples, rate, channels))
    return root


@functools.cache
def trained() -> ModelArtifact:
    """An audio classifier of tones, chirps and noise, trained once per session."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        automl = AudioAutoML(time_budget=10).fit(make_folder(Path(folder) / "sounds"))
        return automl.to_artifact("sounds")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(trained())


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recordings the model has not heard: one class folder each."""
    return make_folder(tmp_path_factory.mktemp("fresh"), per_class=4, first_seed=100)


def test_an_audio_classifier_learns_and_its_graph_computes_the_features(predictor, fresh):
    manifest = predictor.manifest
    assert (manifest.input_layout, manifest.class_labels) == ("audio", list(KINDS))
    spec = manifest.preprocessing["audio"]
    assert spec["sample_rate"] == 16000 and 0.3 <= spec["window_seconds"] <= 1.2
    assert {"trim_top_db", "silence_dbfs", "peak_normalize", "max_seconds"} <= set(spec)
    graph = onnx.load_from_string(trained().onnx).graph
    assert {"STFT", "MatMul", "Log", "Softmax"} <= {node.op_type for node in graph.node}
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == round(
        16000 * spec["window_seconds"]
    )
    source = manifest.source
    assert source["parity"]["label_mismatches"] == 0 and source["parity"]["max_abs_diff"] < 1e-4
    assert set(source["leaderboard"][0]["recall"]) == set(KINDS)
    assert source["report"]["recall"] == source["leaderboard"][0]["recall"]
    assert "int8" in manifest.skipped_variants and manifest.metrics["accuracy"] >= 0.8
    files = sorted(fresh.rglob("*.wav"))
    answers = predictor.predict([str(f) for f in files]).predictions
    assert np.mean(answers == [f.parent.name for f in files]) >= 0.9


def test_the_graphs_log_mel_features_are_numpys():
    samples = 8000
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal((3, samples)) * 0.2).astype(np.float32)
    for features in (audio_graph.Features("mfcc", 20, 5), audio_graph.Features("logmel", 40, 3)):
        graph = audio_graph.feature_graph(samples, 16000, features)
        session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
        (found,) = session.run(None, {"audio": audio})
        count = audio_graph.frames(samples)
        frames = np.stack(
            [
                audio[:, i * audio_graph.HOP : i * audio_graph.HOP + audio_graph.N_FFT]
                for i in range(count)
            ],
            axis=1,
        )
        power = np.abs(np.fft.rfft(frames * audio_graph.window(), axis=-1)) ** 2
        logmel = np.log(power @ audio_graph.mel_filterbank(16000) + audio_graph.FLOOR)
        if features.kind == "mfcc":
            logmel = logmel @ audio_graph.dct_matrix(features.coefficients)
        per = count // features.segments
        used = logmel[:, : per * features.segments]
        means = used.reshape(3, features.segments, per, -1).mean(axis=2).reshape(3, -1)
        expected = np.concatenate([means, used.std(axis=1)], axis=1)
        assert found.shape == (3, features.size)
        np.testing.assert_allclose(found, expected, atol=1e-4)


def test_a_recording_in_any_form_gets_the_same_answer(predictor, fresh, tmp_path):
    path = fresh / "chirp" / "1.wav"  # seed 101: 16 kHz stereo
    data = path.read_bytes()
    samples, rate = read_wav(data)
    stereo = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)
    forms = {
        "bytes": data,
        "path": path,
        "str": str(path),
        "samples": (samples, rate),
        "int16 stereo": (stereo, rate),
        "row": {"audio": base64.b64encode(data).decode()},
        "rows": [{"audio": base64.b64encode(data).decode()}],
        "wire": np.array([base64.b64encode(data).decode()], dtype=object),
    }
    reference = predictor.predict(data)
    for form, value in forms.items():
        answer = predictor.predict(value)
        assert answer.predictions.tolist() == reference.predictions.tolist(), form
        np.testing.assert_allclose(answer.probabilities, reference.probabilities, atol=1e-6)
    # the same sound at other rates and in stereo answers alike (resampled, mixed down)
    sound, rate, _ = clip("tone", 7)
    copies = [
        wav(sound, rate),
        wav(
            np.interp(np.arange(0, len(sound), rate / 44100), np.arange(len(sound)), sound),
            44100,
            2,
        ),
    ]
    answers = predictor.predict(copies)
    assert answers.predictions.tolist() == ["tone", "tone"]
    assert np.abs(np.diff(answers.probabilities, axis=0)).max() < 0.05
    batch = predictor.predict([data, str(path), forms["samples"]] * 20)  # two onnxruntime calls
    assert len(batch) == 60 and set(batch.predictions) == {reference.predictions[0]}


def test_recordings_that_cannot_be_classified_get_a_clear_error(predictor, tmp_path):
    long = tmp_path / "two-hours.wav"  # 8-bit at 1 kHz: 7 MB
    long.write_bytes(wav(np.zeros(2 * 3600 * 1000), 1000, width=1))
    for value, error, message in [
        (b"ID3\x04" + bytes(100), InvalidInput, "an MP3 file, not a WAV file"),
        (b"hello", InvalidInput, "not a recognised audio file, not a WAV file"),
        (wav(np.zeros(8000), 8000), InvalidInput, "The recording is silent .digital silence"),
        (wav(np.full(8000, 1e-4), 8000), InvalidInput, "is silent .peaks at -8. dBFS"),
        (str(long), InvalidInput, "lasts 7,200 s; this model takes at most 600 s"),
        ((np.zeros(8000 * 7200, np.int8), 8000), InvalidInput, "lasts 7,200 s"),
        ([], InvalidInput, "no recordings to predict"),
        (str(tmp_path / "nope.wav"), InvalidInput, "Cannot read the recording"),
        ({"clip": "x"}, SchemaMismatch, "reads a recording from the field 'audio'"),
        ([{"audio": "/etc/passwd"}], InvalidInput, "not base64"),
        (42, InvalidInput, "classifies recordings"),
    ]:
        with pytest.raises(error, match=message):
            predictor.predict(value)
    with pytest.raises(InvalidInput, match=r"Recording 2 of 2 \(.*nope.wav\): Cannot read"):
        predictor.predict([wav(*clip("tone", 1)[:2]), str(tmp_path / "nope.wav")])


def test_folders_that_cannot_train_are_refused_by_name(tmp_path):
    good = make_folder(tmp_path / "good", per_class=3)
    assert is_audio_dataset(good) and not is_audio_dataset(tmp_path / "good" / "tone" / "0.wav")
    (good / "tone" / "notes.txt").write_text("recorded on tuesday")
    assert read_recordings(good).skipped == ["tone/notes.txt"]
    cases = []
    lonely = make_folder(tmp_path / "lonely", per_class=3)
    (lonely / "hum").mkdir()
    (lonely / "hum" / "0.wav").write_bytes(wav(*clip("tone", 5)[:2]))
    cases.append((lonely, r"'hum' \(1\) have fewer than 2 recordings"))
    mp3 = make_folder(tmp_path / "mp3", per_class=3)
    (mp3 / "noise" / "extra.mp3").write_bytes(b"ID3")
    cases.append((mp3, "are not WAV files: noise/extra.mp3.*ffmpeg"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    cases.append((tmp_path / "empty", "holds no WAV recordings"))
    single = tmp_path / "single"
    (single / "tone").mkdir(parents=True)
    for i in range(3):
        (single / "tone" / f"{i}.wav").write_bytes(wav(*clip("tone", i)[:2]))
    cases.append((single, "one class"))
    archive = tmp_path / "sounds.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for file in sorted(good.rglob("*.wav")):
            packed.write(file, file.relative_to(good).as_posix())
    assert is_audio_dataset(archive)
    cases.append((archive, "is a zip; recordings are read from a folder. Unzip it"))
    for folder, message in cases:
        with pytest.raises(InvalidDataset, match=message):
            read_recordings(folder)
    corrupt = make_folder(tmp_path / "corrupt", per_class=3)
    (corrupt / "chirp" / "1.wav").write_text("not a recording")
    silent = make_folder(tmp_path / "silent", per_class=3)
    (silent / "tone" / "2.wav").write_bytes(wav(np.zeros(4000), 8000))
    for folder, message in [
        (corrupt, "The recording chirp/1.wav cannot be used: The audio is not a recognised"),
        (silent, "The recording tone/2.wav cannot be used: The recording is silent"),
    ]:
        with pytest.raises(InvalidDataset, match=message):
            AudioAutoML(time_budget=5).fit(folder)


def test_train_on_the_command_line_then_the_device_and_the_server_agree(modelport, home, tmp_path):
    folder = make_folder(tmp_path / "Sound Kinds", per_class=8)
    for broken, message in [
        ("silent", "tone/0.wav cannot be used: The recording is silent"),
        ("lonely", "'hum' (1) have fewer than 2 recordings"),
    ]:
        bad = make_folder(tmp_path / broken, per_class=3)
        if broken == "silent":
            (bad / "tone" / "0.wav").write_bytes(wav(np.zeros(4000), 8000))
        else:
            (bad / "hum").mkdir()
            (bad / "hum" / "0.wav").write_bytes(wav(*clip("tone", 5)[:2]))
        result = modelport("train", bad, check=False)
        error = " ".join(result.stderr.split())
        assert result.returncode == 1 and message in error and "Traceback" not in error, error
    assert json.loads(modelport("models", "list", "--json").stdout) == []
    trained_json = json.loads(modelport("train", folder, "--time-budget", "10", "--json").stdout)
    assert trained_json["name"] == "sound-kinds" and trained_json["classes"] == list(KINDS)
    assert trained_json["recordings"] == {kind: 8 for kind in KINDS}
    assert set(trained_json["recall"]) == set(KINDS)
    clips = make_folder(tmp_path / "clips", per_class=2, first_seed=50)
    out = modelport("predict", "sound-kinds", clips, "-o", "out.csv")
    assert "Wrote 6 predictions" in out.stderr
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == ["path", "prediction", *(f"proba_{k}" for k in KINDS)]
    globbed = modelport("predict", "sound-kinds", str(clips / "*" / "0.wav")).stdout
    assert len(pd.read_csv(io.StringIO(globbed))) == 3
    files = [Path(p) for p in table["path"]]
    server = Server(home)
    try:
        with Client(server.url, cache_dir=tmp_path / "cache") as client:
            device = client.model("sound-kinds", mode="prefer_local", update="latest")
            local = device.predict([str(f) for f in files])
            remote = client.model("sound-kinds", mode="remote_only").predict(
                [str(f) for f in files]
            )
            samples = client.model("sound-kinds", mode="remote_only").predict(
                [read_wav(f.read_bytes()) for f in files]
            )
        assert (local.served_by, remote.served_by) == ("local", "remote")
        assert local.predictions == remote.predictions == samples.predictions
        assert local.predictions == table["prediction"].tolist()
        for mine, theirs in zip(local.probabilities, remote.probabilities, strict=True):
            assert max(abs(mine[k] - theirs[k]) for k in KINDS) < 1e-5
        encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
        url = f"{server.url}/api/v1/models/sound-kinds/predict"
        simple = httpx.post(url, json={"rows": [{"audio": e} for e in encoded]}).json()
        assert simple["predictions"] == local.predictions
        audio = {"name": "audio", "shape": [len(encoded)], "datatype": "BYTES", "data": encoded}
        oip = httpx.post(
            f"{server.url}/v2/models/sound-kinds/infer", json={"inputs": [audio]}
        ).json()
        assert next(o for o in oip["outputs"] if o["name"] == "label")["data"] == local.predictions
        tfs = httpx.post(
            f"{server.url}/v1/models/sound-kinds:predict", json={"inputs": {"audio": encoded}}
        ).json()
        assert tfs["outputs"]["label"] == local.predictions
        silent = base64.b64encode(wav(np.zeros(8000), 8000)).decode()
        refused = httpx.post(url, json={"rows": [{"audio": silent}]})
        assert refused.status_code == 400 and "is silent" in refused.json()["error"]
        path = httpx.post(url, json={"rows": [{"audio": str(files[0])}]})
        assert path.status_code == 400 and "not base64" in path.json()["error"]
    finally:
        server.stop()


def test_spoken_digits_from_other_speakers_are_mostly_recognised(tmp_path):
    """../shared/data/spoken_digits (5 speakers x 10 digits at 8 kHz): trained on four speakers,
    the fifth speaker's digits are recognised well above chance (0.10); the bench measures 0.66
    over all five speakers."""
    table = pd.read_csv(shared_csv("spoken_digits"))
    data = shared_csv("spoken_digits").parent
    held_out = table[table["speaker"] == "theo"]
    for row in table[table["speaker"] != "theo"].itertuples():
        link = tmp_path / str(row.digit) / Path(row.file).name
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(data / row.file)
    automl = AudioAutoML(time_budget=10).fit(tmp_path)
    predicted = Predictor(automl.to_artifact("digits")).predict(
        [str(data / f) for f in held_out["file"]]
    )
    assert automl.fit_seconds_ < 10
    assert np.mean(predicted.predictions == held_out["digit"].astype(str).to_numpy()) >= 0.5
