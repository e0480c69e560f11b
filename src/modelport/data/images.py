"""Labelled photos for training: a folder of class folders, a zip of them, or a CSV of path,label.

Every reader here returns the same :class:`ImageDataset` (photo paths and their class names) and
refuses a dataset that cannot train a classifier with an :class:`InvalidDataset` that says what to
fix. Files that are not photos by their name (notes, ``.DS_Store``) are skipped and counted; a
photo that does not decode is refused later, by name, when its features are computed.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidDataset
from .datasets import IMAGE_SUFFIXES, Limits, inspect, unpack_images

MIN_PER_CLASS = 2
"""One photo to learn from and one to test on, at the least."""
CSV_COLUMNS = ("path", "label")
SKIPPED = (".", "__MACOSX")


@dataclass
class ImageDataset:
    """Photos and their labels, in a stable order (by class, then path)."""

    paths: list[Path]
    labels: list[str]
    root: Path
    """The folder the photos' names in reports are relative to."""
    skipped: list[str] = field(default_factory=list)
    """Files that were left out because their names are not those of photos."""

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def name_of(self, path: Path) -> str:
        """``path`` as the dataset names it: relative to its root, with forward slashes."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


def is_image_csv(path: Path) -> bool:
    """True for a CSV whose header is exactly ``path,label`` (in any case and order)."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    return sorted(c.strip().lower() for c in header) == sorted(CSV_COLUMNS)


def is_image_dataset(path: Path) -> bool:
    """A folder, a zip or a ``path,label`` CSV: what :func:`read_images` reads."""
    return path.is_dir() or path.suffix.lower() == ".zip" or is_image_csv(path)


def read_images(path: Path, unpack_to: Path, limits: Limits) -> ImageDataset:
    """The labelled photos at ``path``; a zip is checked (like an upload) and unpacked first."""
    if path.is_dir():
        return _checked(read_folder(path))
    if not path.exists():
        raise InvalidDataset(
            f"{path} does not exist. Give a folder of class folders, a zip or a CSV."
        )
    if path.suffix.lower() == ".zip":
        inspect(path, "zip", limits)
        return _checked(read_folder(unpack_images(path, unpack_to)))
    return _checked(read_csv(path))


def read_folder(root: Path) -> ImageDataset:
    """One sub-folder per class; photos may sit deeper inside it. A lone top folder that holds
    the class folders (``flowers/daisy/1.jpg``) is looked through."""
    entries = [p for p in root.iterdir() if not p.name.startswith(SKIPPED)]
    folders = [p for p in entries if p.is_dir()]
    if len(folders) == 1 and not any(_is_photo(p) for p in entries):
        inner = [p for p in folders[0].iterdir() if p.is_dir() and not p.name.startswith(SKIPPED)]
        if len(inner) > 1:
            return read_folder(folders[0])
    loose = sorted(p.name for p in entries if _is_photo(p))
    if loose:
        raise InvalidDataset(
            f"{root} holds photos outside any class folder ({', '.join(loose[:3])}). Put each "
            "class's photos in a folder named after the class: daisy/1.jpg, roses/2.jpg ..."
        )
    paths: list[Path] = []
    labels: list[str] = []
    skipped: list[str] = []
    for folder in sorted(folders):
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            hidden = any(part.startswith(SKIPPED) for part in file.relative_to(root).parts)
            if hidden:
                continue
            if _is_photo(file):
                paths.append(file)
                labels.append(folder.name)
            else:
                skipped.append(file.relative_to(root).as_posix())
    return ImageDataset(paths, labels, root, skipped)


def read_csv(path: Path) -> ImageDataset:
    """Rows of ``path,label``; paths are relative to the CSV's folder (or absolute)."""
    base = path.parent
    paths: list[Path] = []
    labels: list[str] = []
    missing: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        if sorted(fields) != sorted(CSV_COLUMNS):
            raise InvalidDataset(
                f"{path} must have the header 'path,label' (one photo and its class per row)."
            )
        for row in reader:
            where, label = (row[fields["path"]] or "").strip(), (row[fields["label"]] or "").strip()
            if not where and not label:
                continue
            if not where or not label:
                raise InvalidDataset(
                    f"{path} line {reader.line_num} lacks a path or a label; every row needs both."
                )
            photo = base / where
            if not photo.is_file():
                missing.append(where)
            paths.append(photo)
            labels.append(label)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InvalidDataset(
            f"{len(missing)} photo(s) listed in {path} do not exist: {shown}. Paths are read "
            f"relative to the CSV's folder ({base}); fix them or remove those rows."
        )
    return ImageDataset(paths, labels, base)


def _is_photo(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _checked(dataset: ImageDataset) -> ImageDataset:
    counts = dataset.counts()
    if not counts:
        raise InvalidDataset(
            f"{dataset.root} holds no photos (JPEG, PNG, GIF, BMP or WebP). Give a folder with "
            "one sub-folder of photos per class: daisy/1.jpg, roses/2.jpg ..."
        )
    if len(counts) < 2:
        raise InvalidDataset(
            f"All {len(dataset.paths)} photos are in one class ('{next(iter(counts))}'); a "
            "classifier needs at least 2 classes. Add a folder of photos for each other class."
        )
    few = {label: n for label, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        listed = ", ".join(f"'{label}' ({n})" for label, n in few.items())
        raise InvalidDataset(
            f"The class(es) {listed} have fewer than {MIN_PER_CLASS} photos; each class needs at "
            "least 2 (one to learn from, one to test on), and 20 or more to learn well. Add "
            "photos or remove the class."
        )
    return dataset
