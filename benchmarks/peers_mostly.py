"""mostlyai-engine's side of the peers benchmark: TabularARGN through the engine's stage API.

Runs in its own venv (``venv.sh mostly``); each step is its own process. The fit is the four
stages (split, analyze, encode, train) with ``max_training_time`` set to the budget, so the
engine stops itself (or earlier, by its own early stopping or its default 100 epochs). The
engine keeps a fifth of the train split for its own validation, as it always does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from step_io import Stopwatch, main, package_versions, rate

PACKAGES = ["mostlyai-engine", "torch", "pandas", "numpy", "pyarrow"]


def fit(args: dict) -> dict:
    from mostlyai import engine

    workspace = Path(args["workspace"])
    shutil.rmtree(workspace, ignore_errors=True)
    train = pd.read_parquet(args["train"])
    engine.init_logging()
    engine.set_random_state(args["seed"])
    with Stopwatch() as watch:
        engine.split(workspace_dir=workspace, tgt_data=train, model_type="TABULAR")
        engine.analyze(workspace_dir=workspace)
        engine.encode(workspace_dir=workspace)
        with Stopwatch() as training:
            engine.train(
                workspace_dir=workspace, max_training_time=args["budget"] / 60, device="cpu"
            )
    return {"rows": len(train), "seconds": watch.seconds, "train_seconds": training.seconds}


def sample(args: dict) -> dict:
    from mostlyai import engine

    workspace = Path(args["workspace"])
    shutil.rmtree(workspace / "SyntheticData", ignore_errors=True)
    rows = pq.read_metadata(args["like"]).num_rows
    engine.set_random_state(args["seed"])
    with Stopwatch() as watch:
        engine.generate(workspace_dir=workspace, sample_size=rows, device="cpu")
        frame = pd.read_parquet(workspace / "SyntheticData")
    frame.to_parquet(args["output"], index=False)
    return rate(len(frame), watch.seconds)


if __name__ == "__main__":
    main({"fit": fit, "sample": sample, "versions": package_versions(PACKAGES)})
