"""`modelport serve`, `modelport deploy`, `modelport keys ...` and `modelport usage`."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import Settings
from ..errors import InvalidParameter
from ..local_token import is_loopback
from ._console import console, open_store, print_json

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "lines": {"format": "%(message)s"},  # access lines: JSON that carries its own time
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
        "access": {"class": "logging.StreamHandler", "formatter": "lines"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO"},
        "modelport": {"handlers": ["stderr"], "level": "INFO"},
        "modelport.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [MODELPORT_HOST, 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on [MODELPORT_PORT, 8000].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes [MODELPORT_WORKERS, 1].")
    ] = None,
    allow_anonymous: Annotated[
        bool | None,
        typer.Option(
            help="Serve without API keys on a non-loopback address [MODELPORT_ALLOW_ANONYMOUS]."
        ),
    ] = None,
    load: Annotated[
        str | None, typer.Option(help="lazy or eager model loading [MODELPORT_LOAD, lazy].")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Where training jobs run: local or ray (MODELPORT_TRAIN_BACKEND)."),
    ] = None,
) -> None:
    """Serve every model in the store over OIP v2, TF-Serving REST and simple JSON; run jobs.

    A flag wins over its MODELPORT_* setting; without the flag the setting (environment or .env)
    decides.
    """
    if load is not None and load not in ("lazy", "eager"):
        raise InvalidParameter(f"--load must be 'lazy' or 'eager', not '{load}'.")
    # NOTE: worker processes read their settings from the environment, so given flags go there.
    flags = {
        "MODELPORT_HOST": host,
        "MODELPORT_PORT": port,
        "MODELPORT_WORKERS": workers,
        "MODELPORT_ALLOW_ANONYMOUS": None if allow_anonymous is None else int(allow_anonymous),
        "MODELPORT_LOAD": load,
        "MODELPORT_TRAIN_BACKEND": backend,
    }
    os.environ.update({name: str(value) for name, value in flags.items() if value is not None})
    settings = Settings()
    if settings.load not in ("lazy", "eager"):
        raise InvalidParameter(f"MODELPORT_LOAD must be 'lazy' or 'eager', not '{settings.load}'.")
    check_port_free(settings.host, settings.port)  # before seconds of imports
    import uvicorn

    from ..serve.keys import KeyStore
    from ..signing import SigningKey

    SigningKey.load_or_create(settings.home)  # here, not in N workers racing to create it
    # as the server decides: keys stay required once any was created, even if all were revoked
    has_keys = KeyStore(open_store().engine).any()
    if not is_loopback(settings.host) and not has_keys and not settings.allow_anonymous:
        raise InvalidParameter(
            f"Refusing to serve on {settings.host} without API keys: anyone who can reach it "
            "could use every model. Create a key (`modelport keys create NAME`), listen on "
            "127.0.0.1, or pass --allow-anonymous if the network in front does the access control."
        )
    anonymous = settings.allow_anonymous or not has_keys
    console.print(
        f"Serving the store in {settings.home} on http://{settings.host}:{settings.port} "
        f"({'no API keys; admin calls need the local token' if anonymous else 'API keys required'}"
        "); API docs at /docs."
    )
    uvicorn.run(
        "modelport.serve.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=LOG_CONFIG,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def check_port_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's bare "address already in use" after start-up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InvalidParameter(
            f"Cannot listen on '{host}': the address does not resolve ({exc.strerror}). Use an IP "
            "address such as 127.0.0.1 or 0.0.0.0 (--host or MODELPORT_HOST)."
        ) from None
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # as uvicorn does: a port left in TIME_WAIT is free to use
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidParameter(
                    f"Port {port} on {host} is already in use by another program. Pick another "
                    f"port with --port {port + 1} or MODELPORT_PORT={port + 1}, or stop that "
                    "program (is `make run` or another `modelport serve` already running? It "
                    "serves the same store, so you may not need a second server)."
                ) from None
            raise InvalidParameter(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another address or port "
                "(--host and --port, or MODELPORT_HOST and MODELPORT_PORT); ports below 1024 "
                "need administrator rights."
            ) from None


def deploy(
    ref: Annotated[str, typer.Argument(help="The version to serve, e.g. credit:3")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "production",
) -> None:
    """Point an alias (default: production) at a version; running servers switch within a second."""
    manifest = open_store().set_alias(ref, alias)
    console.print(
        f"{manifest.name}@{alias} → version {manifest.version}. Running servers pick it up at "
        "their next poll, with no failed requests."
    )


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    scope: Annotated[
        str,
        typer.Option(help="predict, train (datasets and jobs), metrics (/metrics only) or admin."),
    ] = "predict",
    rate: Annotated[str | None, typer.Option(help="Rate limit, e.g. 10/s or 600/min.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models it may use.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; its secret is printed once and never stored."""
    from ..serve.keys import KeyStore, parse_rate

    info, secret = KeyStore(open_store().engine).create(
        name, scope, parse_rate(rate), models.split(",") if models else None
    )
    if json_output:
        print_json({"id": info.id, "name": info.name, "scope": info.scope, "key": secret})
        return
    console.print(
        f"Created key {info.id} ({info.name}, scope {info.scope}). Its secret, shown once:"
    )
    print(secret)


@keys_app.command("list")
def list_keys(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every key (never the secrets)."""
    from ..serve.keys import KeyStore

    keys = KeyStore(open_store().engine).list()
    if json_output:
        print_json([k.__dict__ for k in keys])
        return
    table = Table("id", "name", "scope", "rate/s", "models", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.scope,
            f"{k.rate:g}" if k.rate else "—",
            ", ".join(k.models) if k.models else "all",
            k.created.strftime("%Y-%m-%d %H:%M"),
            k.revoked.strftime("%Y-%m-%d %H:%M") if k.revoked else "",
        )
    console.print(table)


@keys_app.command("signing")
def signing_key(
    rotate: Annotated[bool, typer.Option(help="Replace the key with a new one.")] = False,
) -> None:
    """Create (first time), show or rotate the key that signs every model the server hands out."""
    from ..signing import SigningKey

    key = SigningKey.load_or_create(Settings().home, rotate=rotate)
    if rotate:
        console.print(
            "Rotated. Devices that pinned the old public key reject new downloads until they get "
            "this one (their cached models keep working):"
        )
    print(key.public_key)


@keys_app.command("rotate-master")
def rotate_master_key() -> None:
    """Rewrap every model's encryption key under a new master key (crash-safe; see
    MODELPORT_MASTER_KEY for a key kept outside the home directory)."""
    from ..store.master_key import finish_rotation, rotation

    store = open_store()
    master, pending = rotation(store.settings)
    changed = store.rewrap_keys(master)
    if pending is not None:
        finish_rotation(pending)
    where = "MODELPORT_MASTER_KEY" if pending is None else str(store.settings.home / "master.key")
    console.print(
        f"Rewrapped {changed} model key{'s' if changed != 1 else ''} under the master key in "
        f"{where}. Running servers read it when they next need a model key."
    )


@keys_app.command("revoke")
def revoke_key(key: Annotated[str, typer.Argument(help="Key id (or unique name).")]) -> None:
    """Revoke a key; running servers refuse it within a second."""
    from ..serve.keys import KeyStore

    info = KeyStore(open_store().engine).revoke(key)
    console.print(f"Revoked key {info.id} ({info.name}).")


def usage(
    key: Annotated[str | None, typer.Option(help="Only this key (id or name).")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date, e.g. 2026-11-01.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Requests, rows, errors, compute time and cost per key and model."""
    from ..serve.metering import parse_since, usage_totals

    start = parse_since(since)
    price = Settings().price_per_1000
    totals = usage_totals(open_store().engine, price, key, start)
    if json_output:
        print_json({"price_per_1000": price, "usage": [t.__dict__ for t in totals]})
        return
    table = Table("key", "model", "requests", "rows", "errors", "compute s", "cost")
    for t in totals:
        table.add_row(
            t.key_name or t.key_id or "anonymous",
            t.model,
            f"{t.requests:,}",
            f"{t.rows:,}",
            f"{t.errors:,}",
            f"{t.compute_seconds:.3f}",
            f"{t.cost:.4f}",
        )
    console.print(table)
    console.print(f"Price: {price:g} per 1,000 requests (MODELPORT_PRICE_PER_1000).")


def pull(
    ref: Annotated[str, typer.Argument(help="name, name:VERSION or name@ALIAS")],
    server: Annotated[str, typer.Option(help="The modelport server, e.g. http://127.0.0.1:8000")],
    to: Annotated[Path, typer.Option(help="Directory to keep the model in (an app's assets).")],
    api_key: Annotated[str | None, typer.Option(envvar="MODELPORT_API_KEY")] = None,
    public_key: Annotated[str | None, typer.Option(help="Pin this signing key.")] = None,
) -> None:
    """Download a verified model into a directory, as an app bundles it (same layout as the SDK)."""
    from ..client import Client

    with Client(server, api_key=api_key, cache_dir=to, public_key=public_key) as client:
        model = client.model(ref, mode="local_only", update="local")
        version = model.sync()
    console.print(f"{ref}: version {version} verified and stored in {to}.")
