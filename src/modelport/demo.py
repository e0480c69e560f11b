"""`make run`: a demo model from data scikit-learn ships, trained once into the user's store.

The store is the one every command uses (``MODELPORT_HOME``, default ``~/.modelport``), so what a
user trains in another terminal is served by the same running server within a poll.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .cli._console import console, err_console
from .config import Settings
from .errors import ModelNotFound, ModelportError
from .store import Store

DEMO_NAME = "breast-cancer"


def prepare(home: Path, time_budget: float = 15.0) -> Path:
    """Write the dataset as CSV under ``home/demo`` and train the demo model unless it exists."""
    from sklearn.datasets import load_breast_cancer

    data_dir = home / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.assign(target=bunch.target_names[bunch.target])
    csv = data_dir / "breast_cancer.csv"
    frame.to_csv(csv, index=False)
    rows = frame.drop(columns="target").head(5)
    rows.to_csv(data_dir / "rows.csv", index=False)
    instances = rows.to_json(orient="records")
    (data_dir / "instances.json").write_text(f'{{"instances": {instances}}}')
    store = Store(Settings(home=home))
    try:
        manifest = store.manifest(DEMO_NAME)
        console.print(f"Demo model {DEMO_NAME}:{manifest.version} is already in {home}.")
    except ModelNotFound:
        from .train import TabularAutoML  # seconds of imports: only when there is training to do

        console.print(f"Training the demo model on {csv} ({time_budget:.0f} s budget) ...")
        automl = TabularAutoML(time_budget=time_budget).fit(
            frame.drop(columns="target"), frame["target"]
        )
        artifact = automl.to_artifact(DEMO_NAME, description="Breast cancer (scikit-learn)")
        manifest = store.register(artifact, aliases=("production",))
        console.print(f"Registered {DEMO_NAME}:{manifest.version}: {manifest.metrics}")
    return data_dir


def main() -> None:
    from .cli.serve import check_port_free

    settings = Settings()
    try:
        check_port_free(settings.host, settings.port)  # before training, not after it
        data_dir = prepare(settings.home)
    except ModelportError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    shown = settings.host if settings.host not in ("0.0.0.0", "::", "127.0.0.1") else "localhost"
    address = f"{shown}:{settings.port}"
    print(
        f"\nThe store in {settings.home} is ready; the server starts next (Ctrl-C stops it) and "
        "serves every model in it, including the ones you train while it runs. In another shell:\n"
        f"  curl -s {address}/v2/models/{DEMO_NAME}\n"
        f"  curl -s -X POST {address}/v1/models/{DEMO_NAME}:predict "
        f"-H 'Content-Type: application/json' -d @{data_dir / 'instances.json'}\n"
        "  source .venv/bin/activate   # puts `modelport` on the PATH\n"
        # another shell must name the same store
        + (f"  export MODELPORT_HOME={settings.home}\n" if "MODELPORT_HOME" in os.environ else "")
        + "  modelport models list\n"
        f"  modelport predict {DEMO_NAME} {data_dir / 'rows.csv'}\n"
        f"  modelport train {data_dir / 'breast_cancer.csv'} --target target --name mine "
        "--time-budget 20\n"
        f"API docs: http://{address}/docs\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
