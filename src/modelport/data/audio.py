"""Labelled recordings for training: a folder with one sub-folder of WAV files per class.

:func:`read_recordings` returns an :class:`AudioDataset` (WAV paths and their class names) or
refuses, with an :class:`InvalidDataset` that says what to fix, a folder that cannot train a
classifier: no recordings, one class, a class with a single recording, or sound files in another
format (named, with the command that converts them). Other files (notes, ``.DS_Store``) are
skipped and counted; a WAV file that does not decode, or is silent, is refused later, by name,
when it is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from ..errors import InvalidDataset
from ..runtime.audio import CONVERT
from .datasets import IMAGE_SUFFIXES
from .images import MIN_PER_CLASS, SKIPPED, ImageDataset

WAV = ".wav"
OTHER_SOUND = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff"}
"""Sound files modelport does not decode: refused by name rather than silently left out."""
EXAMPLE = "yes/1.wav, no/2.wav ..."


class AudioDataset(ImageDataset):
    """Recordings and their labels, in a stable order (by class, then path); ``skipped`` lists
    files left out because they are not sound files."""


def is_audio_dataset(path: Path) -> bool:
    """A folder (or zip) whose files are mostly recordings (rather than photos)."""
    if path.is_dir():
        suffixes = [p.suffix.lower() for p in path.rglob("*") if not _hidden(p, path)]
    elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            suffixes = [PurePosixPath(name).suffix.lower() for name in archive.namelist()]
    else:
        return False
    sounds = sum(s == WAV or s in OTHER_SOUND for s in suffixes)
    return sounds > 0 and sounds >= sum(s in IMAGE_SUFFIXES for s in suffixes)


def read_recordings(root: Path) -> AudioDataset:
    """One sub-folder per class, WAV files inside (at any depth); a lone top folder that holds
    the class folders (``commands/yes/1.wav``) is looked through."""
    if root.suffix.lower() == ".zip" and root.is_file():
        raise InvalidDataset(
            f"{root} is a zip; recordings are read from a folder. Unzip it (unzip "
            f"{root.name} -d {root.stem}) and train on the folder."
        )
    if not root.is_dir():
        raise InvalidDataset(
            f"{root} is not a folder. Give a folder with one sub-folder of WAV files per class: "
            f"{EXAMPLE}"
        )
    entries = [p for p in root.iterdir() if not p.name.startswith(SKIPPED)]
    folders = [p for p in entries if p.is_dir()]
    if len(folders) == 1 and not any(_is_sound(p) for p in entries):
        inner = [p for p in folders[0].iterdir() if p.is_dir() and not p.name.startswith(SKIPPED)]
        if len(inner) > 1:
            return read_recordings(folders[0])
    loose = sorted(p.name for p in entries if _is_sound(p))
    if loose:
        raise InvalidDataset(
            f"{root} holds recordings outside any class folder ({', '.join(loose[:3])}). Put "
            f"each class's recordings in a folder named after the class: {EXAMPLE}"
        )
    paths: list[Path] = []
    labels: list[str] = []
    skipped: list[str] = []
    other: list[str] = []
    for folder in sorted(folders):
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            name = file.relative_to(root).as_posix()
            if _hidden(file, root):
                continue
            if file.suffix.lower() == WAV:
                paths.append(file)
                labels.append(folder.name)
            elif file.suffix.lower() in OTHER_SOUND:
                other.append(name)
            else:
                skipped.append(name)
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise InvalidDataset(
            f"{len(other)} recording(s) are not WAV files: {shown}. modelport trains on WAV; "
            f"{CONVERT}, then train again."
        )
    return _checked(AudioDataset(paths, labels, root, skipped))


def _is_sound(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() == WAV or path.suffix.lower() in OTHER_SOUND)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(SKIPPED) for part in path.relative_to(root).parts)


def _checked(dataset: AudioDataset) -> AudioDataset:
    counts = dataset.counts()
    if not counts:
        raise InvalidDataset(
            f"{dataset.root} holds no WAV recordings. Give a folder with one sub-folder of WAV "
            f"files per class: {EXAMPLE}"
        )
    if len(counts) < 2:
        raise InvalidDataset(
            f"All {len(dataset.paths)} recordings are in one class ('{next(iter(counts))}'); a "
            "classifier needs at least 2 classes. Add a folder of recordings for each other class."
        )
    few = {label: n for label, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        listed = ", ".join(f"'{label}' ({n})" for label, n in few.items())
        raise InvalidDataset(
            f"The class(es) {listed} have fewer than {MIN_PER_CLASS} recordings; each class "
            "needs at least 2 (one to learn from, one to test on), and 10 or more to learn well. "
            "Add recordings or remove the class."
        )
    return dataset
