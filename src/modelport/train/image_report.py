"""The training report of an image model as a PNG: the confusion matrix on the held-out photos
and a contact sheet of the photos it was least sure of, each with its true and predicted label.

The numbers come from ``manifest.source["report"]`` (see ``train/image.py``); the thumbnails from
wherever the photos are (a folder for the CLI, the uploaded zip for a hosted job). A photo that
is gone is drawn as a grey square, so a report can always be made.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from ..runtime.image import to_rgb

THUMB = 150
COLUMNS = 6
CELL = 44
MARGIN = 16
LINE = 18
GREEN, RED, GREY, INK = (30, 130, 60), (190, 40, 40), (200, 200, 200), (20, 20, 20)

PhotoSource = Callable[[str], Any]
"""The photo a report names (its path in the dataset) -> bytes or a path, or None when gone."""


def render_report(report: dict[str, Any], photo: PhotoSource) -> bytes:
    """The report as PNG bytes."""
    from PIL import Image, ImageDraw, ImageFont

    classes: list[str] = report["classes"]
    confusion: list[list[int]] = report["confusion"]
    worst: list[dict[str, Any]] = report["worst"]
    font = ImageFont.load_default(size=13)
    bold = ImageFont.load_default(size=16)
    label_width = max(80, 8 * max(len(c) for c in classes))
    matrix_width = label_width + CELL * len(classes)
    sheet_rows = (len(worst) + COLUMNS - 1) // COLUMNS
    width = max(2 * MARGIN + COLUMNS * (THUMB + 8), 2 * MARGIN + matrix_width + CELL)
    matrix_top = MARGIN + 2 * LINE + label_width
    sheet_top = matrix_top + CELL * len(classes) + MARGIN + 2 * LINE
    height = sheet_top + sheet_rows * (THUMB + 3 * LINE) + MARGIN
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    tested = sum(map(sum, confusion))
    draw.text(
        (MARGIN, MARGIN),
        f"Held-out accuracy {report['accuracy']:.3f} on {tested} photos; rows: true class, "
        "columns: predicted",
        fill=INK,
        font=bold,
    )
    left = MARGIN + label_width
    for j, name in enumerate(classes):  # column heads, written upwards
        text = Image.new("RGB", (label_width, CELL), "white")
        ImageDraw.Draw(text).text((4, CELL // 3), name, fill=INK, font=font)
        page.paste(text.rotate(90, expand=True), (left + j * CELL, matrix_top - label_width))
    for i, row in enumerate(confusion):
        top = matrix_top + i * CELL
        draw.text((MARGIN, top + CELL // 3), classes[i], fill=INK, font=font)
        total = max(1, sum(row))
        for j, count in enumerate(row):
            share = count / total
            base = GREEN if i == j else RED
            colour = tuple(int(255 - share * (255 - c)) for c in base)
            box = (left + j * CELL, top, left + (j + 1) * CELL - 2, top + CELL - 2)
            draw.rectangle(box, fill=colour if count else (245, 245, 245))
            ink = "white" if share > 0.5 else INK
            draw.text((box[0] + CELL // 3, top + CELL // 3), str(count), fill=ink, font=font)
    draw.text(
        (MARGIN, sheet_top - 1.5 * LINE),
        "Held-out photos the model was least sure of (lowest probability of the true class)",
        fill=INK,
        font=bold,
    )
    for k, item in enumerate(worst):
        x = MARGIN + (k % COLUMNS) * (THUMB + 8)
        y = sheet_top + (k // COLUMNS) * (THUMB + 3 * LINE)
        page.paste(_thumbnail(photo(item["photo"])), (x, y))
        right = item["predicted"] == item["truth"]
        draw.text((x, y + THUMB + 2), f"true: {item['truth']}", fill=INK, font=font)
        draw.text(
            (x, y + THUMB + 2 + LINE),
            f"pred: {item['predicted']} {item['score']:.2f}",
            fill=GREEN if right else RED,
            font=font,
        )
    buffer = io.BytesIO()
    page.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _thumbnail(source: Any) -> Any:
    from PIL import Image

    square = Image.new("RGB", (THUMB, THUMB), GREY)
    if source is None:
        return square
    try:
        picture = to_rgb(source, draft=THUMB)
    except Exception:  # noqa: BLE001 - a report draws what it can
        return square
    picture.thumbnail((THUMB, THUMB))
    square.paste(picture, ((THUMB - picture.width) // 2, (THUMB - picture.height) // 2))
    return square
