"""The live training display: a progress bar and the leaderboard, on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._console import err_console


class LiveTraining:
    """A progress bar over the time budget and the leaderboard, redrawn on each event (stderr)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err_console,
        )
        self.task_id = self.progress.add_task("Searching", total=1.0)
        self.rows: list[dict[str, Any]] = []
        self.live = Live(self._render(), console=err_console, refresh_per_second=4, transient=False)

        self.started = False

    def __enter__(self) -> LiveTraining:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.live.update(self._render())
            self.live.__exit__(*exc)
            if not err_console.is_terminal:  # piped: end the last drawing with a line break
                err_console.line()

    def update(self, progress: float, message: str, leaderboard: list[dict[str, Any]]) -> None:
        """Draw the state; the display starts with the first one, so errors before it stay clean."""
        if leaderboard:
            self.rows = leaderboard
        self.progress.update(self.task_id, completed=progress, description=message)
        if not self.enabled:
            return
        if not self.started:
            self.started = True
            self.live.__enter__()
        self.live.update(self._render())

    def _render(self) -> Group:
        return Group(self.progress, self.table()) if self.rows else Group(self.progress)

    def table(self) -> Table:
        """The leaderboard as a Rich table."""
        table = Table(title="Leaderboard", title_justify="left")
        recall = any(row.get("recall") for row in self.rows)
        columns = ("model", "metric", "score", "trials", "fit s", "ONNX µs/row")
        for column in (*columns, *(("recall per class",) if recall else ()), "note"):
            left = column in ("model", "note", "recall per class")
            table.add_column(column, justify="left" if left else "right")
        for row in self.rows:
            latency = row.get("onnx_latency_us")
            cells = [
                row["model"],
                row["metric"],
                f"{row['score']:.4f}",
                str(row["trials"]),
                f"{row['fit_seconds']:.2f}",
                f"{latency:.0f}" if latency is not None else "—",
            ]
            if recall:
                cells.append(_recall(row.get("recall")))
            table.add_row(*cells, row.get("note", ""))
        return table


def _recall(recall: dict[str, float] | None) -> str:
    """Per-class recall, e.g. "ham 0.99, spam 0.95" (the first 6 classes)."""
    if not recall:
        return "—"
    shown = ", ".join(f"{label} {value:.2f}" for label, value in list(recall.items())[:6])
    return shown + (", ..." if len(recall) > 6 else "")
