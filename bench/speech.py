"""speech-to-text: real-time factor and exact transcripts, with and without a grammar.

Run: .venv/bin/python bench/speech.py
Needs: pocketsphinx (the speech extra) and espeak-ng (espeakng-loader, or the espeak-ng
command) for the generated commands; ../shared/data's speech_sentence (jfk.wav) and
spoken_digits rows are skipped when absent.

Every recording goes through ``SpeechPredictor.predict`` (WAV decoding, resampling to 16 kHz,
padding, dither, decoding), one at a time on one thread. The real-time factor (RTF) is
transcription seconds / audio seconds (below 1: faster than spoken). "exact" counts transcripts
equal to what was said (lowercase, digits as words). Prints a Markdown table for
bench/RESULTS.md.
"""

from __future__ import annotations

import csv
import os
import resource
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # tests.speech_audio: the same generated speech as tests

from tests import speech_audio  # noqa: E402

from modelport.runtime.audio import read_wav  # noqa: E402
from modelport.runtime.speech import SpeechPredictor  # noqa: E402
from modelport.zoo.speech import build  # noqa: E402

DATA = BENCH.parents[1] / "shared" / "data"
COMMANDS = [
    "turn on the lights", "turn off the lights", "turn off the fan", "turn on the radio",
    "turn off the radio", "open the door", "open the window", "close the window",
    "play the music", "stop the music", "please turn on the fan", "please close the door",
]  # fmt: skip
COMMAND_GRAMMAR = (
    "[please] (turn (on | off) the (lights | fan | radio) | (open | close) the (door | window)"
    " | (play | stop) the music)"
)
VOICES = [("en-us", 130), ("en-us", 150), ("en-us", 170), ("en", 140)]
HEARD: list[str] = []
"""What was heard in single recordings, printed under the table."""
DIGITS = "zero | oh | one | two | three | four | five | six | seven | eight | nine"


def main() -> None:
    started = time.perf_counter()
    model = SpeechPredictor(build("speech-to-text"), threads=1)
    made = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"build + first decoder: {made:.2f} s; peak RSS {rss:.0f} MB; load {os.getloadavg()}\n")
    print("| audio | recordings | audio s | listening for | exact | transcription s | RTF |")
    print("|---|---|---|---|---|---|---|")
    if speech_audio.available():
        said = [(speech_audio.speak(c, v, r), c) for v, r in VOICES for c in COMMANDS]
        name = f"espeak-ng commands ({len(VOICES)} voices x rates)"
        _row(model, name, said, "language model", {})
        _row(model, name, said, "grammar (12 commands)", {"grammar": COMMAND_GRAMMAR})
    jfk = DATA / "speech_sentence" / "jfk.wav"
    if jfk.exists():
        text = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"  # noqa: E501
        _row(model, "jfk.wav (real, 16 kHz)", [(jfk.read_bytes(), text)], "language model", {})
    digits = DATA / "spoken_digits" / "transcripts.csv"
    if digits.exists():
        with digits.open() as rows:
            said = [
                ((digits.parent / r["file"]).read_bytes(), r["text"]) for r in csv.DictReader(rows)
            ]  # noqa: E501
        name = "spoken_digits (real, 8 kHz)"
        _row(model, name, said, "language model", {})
        _row(model, name, said, "grammar (digits)", {"grammar": DIGITS})
    for line in HEARD:
        print(f"\n{line}")


def _row(
    model: SpeechPredictor, name: str, said: list[tuple[bytes, str]], what: str, how: dict
) -> None:  # noqa: E501
    audio = sum(len(s) / r for s, r in (read_wav(wav) for wav, _ in said))
    model.predict(said[0][0], **how)  # the grammar added to the decoder
    started = time.perf_counter()
    heard = [model.predict(wav, **how).predictions[0] for wav, _ in said]
    seconds = time.perf_counter() - started
    exact = sum(h == text for h, (_, text) in zip(heard, said, strict=True))
    print(
        f"| {name} | {len(said)} | {audio:.1f} | {what} | {exact}/{len(said)} | "
        f"{seconds:.2f} | {seconds / audio:.3f} |"
    )
    if len(said) == 1:
        HEARD.append(f'{name}, {what}: "{heard[0]}"')


if __name__ == "__main__":
    main()
