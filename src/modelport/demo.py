"""`make run`: a demo model from data scikit-learn ships, trained once into the demo store."""

from __future__ import annotations

from pathlib import Path

from .cli._console import console
from .config import Settings
from .errors import ModelNotFound
from .store import Store

DEMO_NAME = "breast-cancer"


def prepare(home: Path, time_budget: float = 15.0) -> Path:
    """Write the dataset as CSV under ``home`` and train the demo model unless it exists."""
    from sklearn.datasets import load_breast_cancer

    from .train import TabularAutoML

    data_dir = home / "data"
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
        console.print(f"Training the demo model on {csv} ({time_budget:.0f} s budget) ...")
        automl = TabularAutoML(time_budget=time_budget).fit(
            frame.drop(columns="target"), frame["target"]
        )
        artifact = automl.to_artifact(DEMO_NAME, description="Breast cancer (scikit-learn)")
        manifest = store.register(artifact, aliases=("production",))
        console.print(f"Registered {DEMO_NAME}:{manifest.version}: {manifest.metrics}")
    return data_dir


def main() -> None:
    settings = Settings()
    data_dir = prepare(settings.home)
    print(
        "\nThe demo store is ready; the server starts next (Ctrl-C stops it). In another shell:\n"
        f"  curl -s localhost:{settings.port}/v2/models/{DEMO_NAME}\n"
        f"  curl -s -X POST localhost:{settings.port}/v1/models/{DEMO_NAME}:predict "
        f"-d @{data_dir / 'instances.json'}\n"
        f"  export MODELPORT_HOME={settings.home}\n"
        "  .venv/bin/modelport models list\n"
        f"  .venv/bin/modelport predict {DEMO_NAME} {data_dir / 'rows.csv'}\n"
        f"  .venv/bin/modelport train {data_dir / 'breast_cancer.csv'} --target target "
        "--name mine --time-budget 20\n"
        f"API docs: http://127.0.0.1:{settings.port}/docs\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
