"""smartnoise-synth's side of the privacy benchmark: MST and AIM at a given epsilon.

Runs in its own venv (``venv.sh smartnoise``); each step is its own process. One step fits and
samples (the synthesizers are not saved between processes). Categorical columns are given as
such; every other column is continuous, binned by smartnoise's own table transformer, whose
bounds are estimated with ``preprocessor_eps`` (the ``statistics_share`` of epsilon that
duck_synth spends on its statistics; smartnoise subtracts it from the training budget, so the
whole fit spends epsilon).
Columns with NULLs are declared nullable.
"""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from step_io import Stopwatch, main, package_versions

PACKAGES = ["smartnoise-synth", "opendp", "pandas", "numpy", "pyarrow"]


def fit_sample(args: dict) -> dict:
    from snsynth import Synthesizer

    train = pd.read_parquet(args["train"])
    categorical = [c for c in args["categorical"] if c in train.columns]
    continuous = [c for c in train.columns if c not in categorical]
    for column in categorical:  # smartnoise wants strings for its categories
        train[column] = train[column].astype("string").astype(object)
    epsilon = float(args["epsilon"])
    synthesizer = Synthesizer.create(
        args["method"], epsilon=epsilon, delta=float(args.get("delta", 1e-5))
    )
    with Stopwatch() as fitting:
        synthesizer.fit(
            train,
            categorical_columns=categorical,
            continuous_columns=continuous,
            preprocessor_eps=float(args["statistics_share"]) * epsilon,
            nullable=bool(train.isna().any().any()),
        )
    rows = pq.read_metadata(args["like"]).num_rows
    with Stopwatch() as sampling:
        frame = synthesizer.sample(rows)
    frame = pd.DataFrame(frame, columns=train.columns)
    real = pd.read_parquet(args["like"])
    for column, dtype in real.dtypes.items():  # back to the train split's types
        if pd.api.types.is_integer_dtype(dtype):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
        elif pd.api.types.is_float_dtype(dtype):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        else:
            frame[column] = frame[column].astype("string")
    frame.to_parquet(args["output"], index=False)
    return {
        "seconds": fitting.seconds,
        "rows": len(frame),
        "sample_seconds": sampling.seconds,
        "rows_per_second": len(frame) / sampling.seconds,
        "epsilon": epsilon,
    }


if __name__ == "__main__":
    main({"fit_sample": fit_sample, "versions": package_versions(PACKAGES)})
