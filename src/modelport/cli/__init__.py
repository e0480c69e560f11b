"""The `modelport` command: one module per command group, errors printed without tracebacks."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from ..errors import ModelportError
from . import jobs, models, predict, serve, train, zoo
from ._console import err_console

app = typer.Typer(
    help="Train or import a model once; run it online and offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("train")(train.train)
app.command("import")(train.import_model)
app.command("predict")(predict.predict)
app.command("export")(models.export)
app.command("serve")(serve.serve)
app.command("deploy")(serve.deploy)
app.command("usage")(serve.usage)
app.command("pull")(serve.pull)
app.add_typer(models.app, name="models")
app.add_typer(serve.keys_app, name="keys")
app.add_typer(jobs.app, name="jobs")
app.add_typer(zoo.app, name="zoo")


def main() -> None:
    """Entry point: user errors print one paragraph and exit 1, never a traceback."""
    try:
        app()
    except ModelportError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a path that cannot be read or written: not a bug, so no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] {exc.strerror or exc}{where}. Check that the path exists and is "
            "writable (the store lives in MODELPORT_HOME, default ~/.modelport).",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except ValidationError as exc:  # a MODELPORT_* setting with a value of the wrong kind
        problems = "; ".join(
            f"MODELPORT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']} (got {e['input']!r})"
            for e in exc.errors()
        )
        err_console.print(
            f"[bold red]error:[/] A setting is not valid: {problems}. Fix the environment "
            "variable or the .env file (docs/settings.md lists them).",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
