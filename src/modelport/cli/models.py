"""`modelport models list|show|alias|unalias|delete|check` and `modelport export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .._fs import atomic_write
from ..artifact import Manifest
from ..errors import InvalidParameter
from ..store import ModelRef
from ._console import check_output, console, open_store, print_json

app = typer.Typer(help="List, inspect, alias and delete stored models.", no_args_is_help=True)


@app.command("list")
def list_models(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every model with its newest version and aliases."""
    summaries = open_store().list_models()
    if json_output:
        print_json([s.__dict__ for s in summaries])
        return
    if not summaries:
        console.print(
            "No models yet. Train one: modelport train DATA.csv --target COLUMN --name NAME"
        )
        return
    table = Table("name", "latest", "versions", "aliases", "task", "created")
    for s in summaries:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items()))
        table.add_row(
            s.name,
            str(s.latest_version),
            str(s.versions),
            aliases,
            s.task,
            s.created.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="name, name:VERSION or name@ALIAS")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the manifest as JSON.")
    ] = False,
) -> None:
    """The manifest of one version: schema, labels, metrics, provenance."""
    store = open_store()
    manifest = store.manifest(ref)
    if json_output:
        print_json(manifest.to_dict())
        return
    aliases = {a: v for a, v in store.aliases(manifest.name).items() if v == manifest.version}
    console.print(
        f"[bold]{manifest.name}:{manifest.version}[/]  {manifest.task}  "
        f"aliases: {', '.join(aliases) or '—'}"
    )
    console.print(
        f"created {manifest.created}, {manifest.size_bytes:,} bytes, sha256 {manifest.sha256}"
    )
    if manifest.source:
        console.print(
            f"source: {manifest.source.get('kind')} "
            f"{manifest.source.get('estimator', manifest.source.get('format', manifest.source.get('architecture', '')))}"
        )
    if manifest.metrics:
        console.print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in manifest.metrics.items()))
    if manifest.class_labels is not None:
        labels = list(map(str, manifest.class_labels))
        more = f" … ({len(labels)} in all; --json lists them)" if len(labels) > 20 else ""
        console.print(f"classes: {', '.join(labels[:20])}{more}")
    for line in _variant_lines(manifest):
        console.print(line, markup=False, soft_wrap=True)
    if manifest.is_image:
        spec = manifest.preprocessing["image"]
        console.print(
            f"input: a photo (JPEG, PNG, WebP, ...), turned upright, made RGB, its shorter side "
            f"resized to {round(spec['size'] / spec['crop_fraction'])} px and the centre "
            f"{spec['size']} x {spec['size']} kept"
        )
        return
    table = Table("input column", "type", "categories")
    for column in manifest.inputs:
        categories = ", ".join(column.categories[:8]) if column.categories else ""
        if column.categories and len(column.categories) > 8:
            categories += f" … ({len(column.categories)})"
        table.add_row(column.name, "category" if column.categorical else column.dtype, categories)
    console.print(table)


def _variant_lines(manifest: Manifest) -> list[str]:
    """Each smaller graph's size and score beside fp32's and which one devices get, or why it was
    not made."""
    lines = []
    for name, report in manifest.variants.items():
        lines.append(
            f"{name}: {report['size_bytes']:,} bytes, {report['metric']} {report['score']:.4f} "
            f"(fp32: {report['fp32_size_bytes']:,} bytes, {report['metric']} "
            f"{report['fp32_score']:.4f})"
        )
        if report.get("recommended"):
            lines.append(f"  devices get {name}")
        else:
            lines.append(f"  devices keep fp32: {report.get('reason', 'not recommended')}")
    lines += [f"{name}: not made: {why}" for name, why in manifest.skipped_variants.items()]
    return lines or ["variants: fp32 only"]


@app.command("alias")
def alias(
    ref: Annotated[str, typer.Argument(help="The version to point at, e.g. credit:3")],
    name: Annotated[str, typer.Argument(help="The alias, e.g. production")],
) -> None:
    """Point an alias at a version (moving it if it exists)."""
    manifest = open_store().set_alias(ref, name)
    console.print(f"{manifest.name}@{name} → version {manifest.version}")


@app.command("unalias")
def unalias(
    name: Annotated[str, typer.Argument(help="Model name")],
    alias_name: Annotated[str, typer.Argument(help="Alias to remove")],
) -> None:
    """Remove an alias (the version stays)."""
    open_store().remove_alias(name, alias_name)
    console.print(f"Removed {name}@{alias_name}")


@app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="name:VERSION, name@ALIAS, or name for all versions")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete one version, or a whole model with all its versions."""
    parsed = ModelRef.parse(ref)
    whole = parsed.version is None and parsed.alias is None
    if whole and not yes:
        typer.confirm(f"Delete model '{parsed.name}' and all its versions?", abort=True)
    versions = open_store().delete(ref)
    console.print(f"Deleted {parsed.name} version(s) {', '.join(map(str, versions))}")


@app.command("encrypt")
def encrypt(
    name: Annotated[str, typer.Argument(help="Model name")],
    off: Annotated[bool, typer.Option("--off", help="Stop encrypting new downloads.")] = False,
) -> None:
    """Keep this model encrypted at rest on devices (AES-256-GCM; keys fetched with an API key)."""
    open_store().set_encryption(name, enabled=not off)
    state = "no longer encrypted" if off else "encrypted at rest (AES-256-GCM)"
    console.print(f"Downloads of '{name}' are {state} on devices from their next sync.")


@app.command("check")
def check() -> None:
    """Verify every stored model file against its SHA-256; remove leftovers of crashed writes."""
    store = open_store()
    problems = store.check()
    removed = store.collect_garbage()
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}")
    console.print(f"{len(problems)} problem(s); {removed} unreferenced file(s) removed.")
    if problems:
        raise typer.Exit(1)


def export(
    ref: Annotated[str, typer.Argument(help="name, name:VERSION or name@ALIAS")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file.")],
    bundle: Annotated[
        bool, typer.Option("--bundle", help="Write the artifact zip (ONNX + manifest).")
    ] = False,
    variant: Annotated[str, typer.Option(help="fp32 (as trained) or int8.")] = "fp32",
    format: Annotated[str, typer.Option(help="onnx, or ort for ORT Mobile apps.")] = "onnx",
) -> None:
    """Write a stored model as plain ONNX (any runtime loads it), ORT format, or a bundle."""
    check_output(output)
    if format not in ("onnx", "ort"):
        raise InvalidParameter(f"--format must be 'onnx' or 'ort', not '{format}'.")
    if not bundle and format == "onnx" and output.suffix.lower() == ".zip":
        raise InvalidParameter(
            f"--output {output} ends in .zip, but without --bundle the file is plain ONNX. Add "
            "--bundle for the artifact zip, or name the file .onnx."
        )
    artifact = open_store().get(ref).variant(variant)
    if bundle:
        artifact.to_file(output)
    elif format == "ort":
        from ..export.ort_format import to_ort

        atomic_write(output, to_ort(artifact.onnx))
    else:
        atomic_write(output, artifact.onnx)
    kind = (
        "artifact bundle" if bundle else ("ORT-format model" if format == "ort" else "ONNX model")
    )
    console.print(
        f"Wrote {artifact.manifest.name}:{artifact.manifest.version} ({variant}, "
        f"{output.stat().st_size:,} bytes) as {kind} to {output}"
    )
