"""speech-to-text: pocketsphinx's packaged en-us model as a modelport artifact.

The artifact's model file is a small JSON config (runtime/speech.py's ``SphinxConfig``: an
optional grammar or keyword list, padding, dither, the SHA-256 of the model files); the model
itself stays in the ``pocketsphinx`` wheel, which building and running need
(``pip install 'modelport[speech]'``). A grammar or keywords given here hold for every request
that does not bring its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..artifact import ColumnSpec, ModelArtifact
from ..runtime import speech


def build(
    name: str, grammar: str | None = None, keywords: Sequence[str] | None = None
) -> ModelArtifact:
    """The speech-to-text artifact, listening for ``grammar`` or ``keywords`` if given; both
    are checked (every word in the dictionary, the grammar valid JSGF) before it is made."""
    search = speech.search_for(grammar, keywords, speech.SphinxConfig())
    config = speech.SphinxConfig(
        grammar=search.text if search.kind == "jsgf" else None,
        keywords=None if keywords is None else tuple(speech.keyword_phrases(keywords)),
        files=speech.model_hashes(speech.model_path()),
    )
    artifact = ModelArtifact.create(
        config.to_bytes(),
        name=name,
        task="transcription",
        inputs=[ColumnSpec(name="audio", dtype="audio", onnx_name="audio")],
        outputs={"transcript": "transcript", speech.WORDS: speech.WORDS},
        input_layout="audio",
        backend="pocketsphinx",
        library_versions={"pocketsphinx": speech.library_version()},
        skipped_variants={"int8": "not an ONNX model: pocketsphinx runs it"},
        source={"kind": "zoo", "zoo": name, "architecture": "pocketsphinx en-us"},
        description=_description(search.kind),
    )
    speech.SpeechPredictor(artifact, threads=1)  # loads the grammar: refuses invalid JSGF now
    return artifact


def _description(kind: str) -> str:
    listens = {
        "lm": "any English (best with a grammar or keywords per request)",
        "jsgf": "the commands of its grammar",
        "kws": "its keywords",
    }[kind]
    return (
        f"Speech to text (pocketsphinx, US English, offline) listening for {listens}: the "
        "transcript of a WAV recording and the time of each word."
    )
