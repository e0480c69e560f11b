"""speech-to-text: pocketsphinx behind the Predictor interface, on commands espeak-ng speaks."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from modelport.artifact import ModelArtifact, sha256_hex
from modelport.errors import InvalidInput, MissingDependency
from modelport.runtime import speech
from modelport.runtime.audio import read_wav, to_wav
from tests import speech_audio

pytest.importorskip("pocketsphinx")
needs_voice = pytest.mark.skipif(
    not speech_audio.available(), reason="no espeak-ng (pip install espeakng-loader)"
)
GRAMMAR = (
    "[please] (turn (on | off) the (lights | fan | radio) | (open | close) the (door | window)"
    " | (play | stop) the music)"
)
COMMANDS = [  # exact with GRAMMAR in every voice and rate tried, by both espeak-ng builds
    "turn on the lights",
    "turn off the radio",
    "close the window",
    "stop the music",
    "open the window",
]
JFK = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_sentence" / "jfk.wav"


@pytest.fixture(scope="module")
def model() -> speech.SpeechPredictor:
    from modelport.zoo.speech import build

    return speech.SpeechPredictor(build("speech-to-text"))


@pytest.fixture(scope="module")
def spoken() -> dict[str, bytes]:
    if not speech_audio.available():
        pytest.skip("no espeak-ng (pip install espeakng-loader)")
    return {text: speech_audio.speak(text) for text in COMMANDS}


def test_the_artifact_is_a_signed_config_run_by_pocketsphinx() -> None:
    from modelport.zoo.speech import build

    artifact = ModelArtifact.from_bytes(build("lights", grammar=GRAMMAR).to_bytes())
    manifest = artifact.manifest
    assert manifest.backend == "pocketsphinx" and manifest.task == "transcription"
    assert manifest.input_layout == "audio" and set(manifest.outputs) == {"transcript", "words"}
    assert manifest.library_versions == {"pocketsphinx": "5.1.1"}
    assert "int8" in manifest.skipped_variants and not manifest.variants
    assert manifest.sha256 == sha256_hex(artifact.onnx)
    config = speech.SphinxConfig.from_bytes(artifact.onnx)
    assert GRAMMAR in config.grammar and set(config.files) == set(speech.MODEL_FILES)
    assert json.loads(artifact.onnx)["engine"] == "pocketsphinx"


@needs_voice
def test_a_grammar_gives_exact_transcripts_and_timed_words(model, spoken) -> None:
    result = model.predict(list(spoken.values()), grammar=GRAMMAR)
    assert result.predictions.tolist() == COMMANDS
    for text, words, wav in zip(COMMANDS, result.extras["words"], spoken.values(), strict=True):
        assert [w["word"] for w in words] == text.split()
        samples, rate = read_wav(wav)
        times = [t for w in words for t in (w["start"], w["end"])]
        assert times == sorted(times) and times[0] >= 0
        assert times[-1] <= round(len(samples) / rate, 2)  # times are rounded to 10 ms


@needs_voice
def test_the_model_grammar_holds_unless_a_request_brings_its_own(spoken) -> None:
    from modelport.zoo.speech import build

    lights = speech.SpeechPredictor(build("lights", grammar="turn (on | off) the lights"))
    assert lights.predict(spoken["turn on the lights"]).predictions[0] == "turn on the lights"
    heard = lights.predict(spoken["close the window"]).predictions[0]
    assert heard in ("", "turn on the lights", "turn off the lights")  # nothing outside it
    answer = lights.predict(spoken["close the window"], grammar=GRAMMAR)
    assert answer.predictions[0] == "close the window"


@needs_voice
def test_every_input_form_gives_the_same_transcript(model, spoken, tmp_path) -> None:
    wav = spoken["stop the music"]
    path = tmp_path / "command.wav"
    path.write_bytes(wav)
    samples, rate = read_wav(wav)
    pcm = np.round(samples * 32767).astype(np.int16)
    inputs = [wav, str(path), path, (samples, rate), (pcm, rate), (np.stack([pcm, pcm], 1), rate)]
    assert model.predict(inputs, grammar=GRAMMAR).predictions.tolist() == ["stop the music"] * 6
    assert model.predict((samples, rate), grammar=GRAMMAR).predictions[0] == "stop the music"


@needs_voice
def test_keywords_are_spotted(model, spoken) -> None:
    said = ["turn on the lights", "close the window", "stop the music", "open the window"]
    result = model.predict([spoken[s] for s in said], keywords=["turn on", "Window", "music"])
    assert result.predictions.tolist() == ["turn on", "window", "music", "window"]
    assert [w["word"] for w in result.extras["words"][0]] == ["turn on"]


def test_words_the_dictionary_lacks_are_listed(model) -> None:
    from modelport.zoo.speech import build

    with pytest.raises(InvalidInput, match="2 word.*'frobnicate', 'Lights'"):
        model.predict(_silence(), grammar="turn (on | off) the (frobnicate | Lights | fan)")
    with pytest.raises(InvalidInput, match="'zzyzx'"):
        model.predict(_silence(), keywords=["lights", "zzyzx now"])
    with pytest.raises(InvalidInput, match="'frobnicate'"):
        build("broken", grammar="#JSGF V1.0;\ngrammar g;\npublic <c> = frobnicate the fan;")


def test_bad_grammars_and_keywords_get_clear_errors(model) -> None:
    from modelport.zoo.speech import build

    with pytest.raises(InvalidInput, match="not valid JSGF"):
        model.predict(_silence(), grammar="turn (on | off the fan")
    with pytest.raises(InvalidInput, match="not valid JSGF"):
        build("broken", grammar="turn (on | off the fan")
    with pytest.raises(InvalidInput, match="not both"):
        model.predict(_silence(), grammar="turn on the fan", keywords=["fan"])
    with pytest.raises(InvalidInput, match="grammar is empty"):
        model.predict(_silence(), grammar=" ; ")
    with pytest.raises(InvalidInput, match="keywords are empty"):
        model.predict(_silence(), keywords=[])


def test_silence_gives_an_empty_transcript_not_an_error(model) -> None:
    for how in ({}, {"grammar": GRAMMAR}, {"keywords": ["lights"]}):
        result = model.predict([_silence(), (np.zeros(0, np.float32), 16000)], **how)
        assert result.predictions.tolist() == ["", ""]
        assert result.extras["words"].tolist() == [[], []]


def test_bad_audio_gets_the_decoders_message(model, tmp_path) -> None:
    with pytest.raises(InvalidInput, match="an MP3 file, not a WAV file"):
        model.predict(b"ID3\x04" + bytes(100))
    with pytest.raises(InvalidInput, match="cut short"):
        model.predict(_silence()[:-1000])
    with pytest.raises(InvalidInput, match="Cannot read the recording"):
        model.predict(tmp_path / "missing.wav")
    with pytest.raises(InvalidInput, match="not dict"):
        model.predict({"audio": _silence()})
    with pytest.raises(InvalidInput, match=r"\(array, sample_rate\)"):
        model.predict((np.array(["a", "b"]), 16000))


def test_a_recording_over_the_limit_is_refused_before_decoding(model) -> None:
    with pytest.raises(InvalidInput, match="lasts 601 s; this model takes at most 600 s"):
        model.predict(_silence(seconds=601, rate=8000))
    with pytest.raises(InvalidInput, match="lasts 601 s; this model takes at most 600 s"):
        model.predict((np.zeros(601 * 8000, np.float32), 8000))


@needs_voice
def test_the_decoder_pool_serves_two_threads_at_once(model, spoken) -> None:
    """Each thread sends its own grammar or keywords; every answer is its own request's."""
    jobs = [
        ([spoken["turn on the lights"], spoken["stop the music"]], {"grammar": GRAMMAR}),
        ([spoken["open the window"], spoken["close the window"]], {"keywords": ["window"]}),
    ]
    expected = [model.predict(wavs, **how).predictions.tolist() for wavs, how in jobs]
    answers: list[list[list[str]]] = [[], []]
    start = threading.Barrier(2)

    def transcribe(index: int) -> None:
        start.wait()
        wavs, how = jobs[index]
        for _ in range(4):
            answers[index].append(model.predict(wavs, **how).predictions.tolist())

    threads = [threading.Thread(target=transcribe, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert expected[0] == ["turn on the lights", "stop the music"]
    assert answers == [[expected[0]] * 4, [expected[1]] * 4]


@needs_voice
def test_a_busy_pool_makes_another_decoder(model, spoken) -> None:
    with model._pool.decoder():  # the one another request holds
        answer = model.predict(spoken["close the window"], grammar=GRAMMAR)
    assert answer.predictions[0] == "close the window" and model._pool._made == 2


@needs_voice
def test_old_grammars_are_dropped_from_a_decoder(model, spoken, monkeypatch) -> None:
    monkeypatch.setattr(speech, "SEARCHES_KEPT", 2)
    wav = spoken["close the window"]
    grammars = [f"(open | close) the window [{word}]" for word in ("now", "please", "again")]
    for grammar in [*grammars, grammars[0]]:
        assert model.predict(wav, grammar=grammar).predictions[0] == "close the window"


@needs_voice
def test_a_recording_comes_out_the_same_whatever_came_before(model, spoken) -> None:
    """The server's and the device's decoders have heard different requests before."""
    first = model.predict(list(spoken.values()))
    again = model.predict(list(spoken.values())[::-1])
    assert first.predictions.tolist() == again.predictions.tolist()[::-1]
    assert first.extras["words"].tolist() == again.extras["words"].tolist()[::-1]


def test_without_pocketsphinx_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(MissingDependency, match=r"pip install 'modelport\[speech\]'"):
        speech.model_path()


def test_other_model_files_get_a_warning() -> None:
    from modelport.zoo.speech import build

    manifest = build("speech-to-text").manifest.to_dict()
    for name in ("sha256", "size_bytes", "format", "inputs"):
        del manifest[name]
    config = speech.SphinxConfig(files={"cmudict-en-us.dict": "0" * 64}).to_bytes()
    changed = ModelArtifact.create(config, inputs=[], **manifest)
    with pytest.warns(RuntimeWarning, match=r"cmudict-en-us.dict differ"):
        speech.SpeechPredictor(changed, threads=1)


@pytest.mark.skipif(not JFK.exists(), reason="../shared/data/speech_sentence is not available")
def test_a_real_recording_without_a_grammar(model) -> None:
    """JFK's 11 s: the general language model gets some words (far from all) of real speech."""
    assert "my fellow american" in model.predict(JFK).predictions[0]


def _silence(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A WAV file of digital silence."""
    return to_wav(np.zeros(round(seconds * rate), np.float32), rate)
