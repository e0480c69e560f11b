"""`modelport zoo list|pull`: ready-made models, registered in the store like trained ones."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import zoo
from ._console import console, err_console, open_store, print_json

app = typer.Typer(help="Ready-made models (image labelling, ...).", no_args_is_help=True)


@app.command("list")
def list_zoo(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The ready-made models `modelport zoo pull` can register."""
    models = [{"name": m.name, "task": m.task, "summary": m.summary} for m in zoo.CATALOG.values()]
    if json_output:
        print_json(models)
        return
    table = Table("name", "task", "what it does")
    for model in models:
        table.add_row(model["name"], model["task"], model["summary"])
    console.print(table)


EXAMPLE_INPUTS = {"text": "--text 'I love this phone!'", "audio": "command.wav"}
"""What `zoo pull` suggests predicting on, by the model's input layout (images: photo.jpg)."""


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="A name from `modelport zoo list`.")],
    as_name: Annotated[
        str | None, typer.Option("--as", help="Register under this name instead.")
    ] = None,
    alias: Annotated[
        list[str] | None, typer.Option("--alias", help="Point this alias at the new version.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the manifest as JSON.")
    ] = False,
) -> None:
    """Register a ready-made model in the store (built once from packaged weights, then cached)."""
    store = open_store()
    cache = store.settings.resolved_zoo_cache
    if not zoo.cache_path(name, cache).exists():  # an unknown name fails here
        err_console.print(f"Building {name} from its packaged weights (once per machine)...")
    artifact = zoo.load(name, cache)
    manifest = store.register(artifact, name=as_name or name, aliases=tuple(alias or ()))
    if json_output:
        print_json(manifest.to_dict())
        return
    example = EXAMPLE_INPUTS.get(manifest.input_layout, "photo.jpg")
    console.print(
        f"Registered {manifest.name}:{manifest.version} ({manifest.size_bytes / 1e6:.1f} MB). "
        f"Try it: modelport predict {manifest.name} {example}"
    )
