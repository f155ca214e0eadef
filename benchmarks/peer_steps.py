"""The peers' side of the foundation benchmark: SDV GaussianCopula, and SDMetrics as the judge.

Runs in the peers' own virtual environment (see peers_env.sh), never in the project's; each step
is its own process.
"""

from __future__ import annotations

import importlib.metadata
import pickle

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from step_io import Stopwatch, main

TABLE = "diamonds"
CATEGORICAL = ["cut", "color", "clarity"]
PACKAGES = ["sdv", "sdmetrics", "copulas", "rdt", "torch", "pandas", "numpy"]


def read_frame(path: str) -> pd.DataFrame:
    """A Parquet file as plain columns: categoricals as strings, numbers as floats."""
    frame = pd.read_parquet(path)
    for column in frame.columns:
        kind = str if column in CATEGORICAL else float
        frame[column] = frame[column].astype(kind)
    return frame


def sdmetrics_metadata(frame: pd.DataFrame) -> dict:
    """SDMetrics' unified metadata for the one table: categorical or numerical columns."""
    columns = {
        c: {"sdtype": "categorical" if c in CATEGORICAL else "numerical"} for c in frame.columns
    }
    return {"tables": {TABLE: {"columns": columns}}}


def gc_fit(args: dict) -> dict:
    """Fit GaussianCopula on the train split (SDV's defaults) and pickle it."""
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    train = read_frame(args["train"])
    metadata = Metadata.detect_from_dataframes({TABLE: train})
    for column in CATEGORICAL:
        metadata.update_column(column, sdtype="categorical", table_name=TABLE)
    np.random.seed(args["seed"])
    synthesizer = GaussianCopulaSynthesizer(metadata)
    with Stopwatch() as watch:
        synthesizer.fit({TABLE: train})  # SDV 2.0 takes {table: frame}
    with open(args["model"], "wb") as file:
        pickle.dump(synthesizer, file)
    return {"rows": len(train), "seconds": watch.seconds}


def gc_sample(args: dict) -> dict:
    """Sample the fitted GaussianCopula, timed; its first rows feed the quality report."""
    with open(args["model"], "rb") as file:
        synthesizer = pickle.load(file)
    np.random.seed(args["seed"])
    with Stopwatch() as watch:
        sampled = synthesizer.sample(num_rows=args["rows"])
    frame = sampled[TABLE] if isinstance(sampled, dict) else sampled  # SDV 2.0: {table: frame}
    quality_rows = pq.read_metadata(args["like"]).num_rows  # as many as the train split
    frame.head(quality_rows).to_parquet(args["output"], index=False)
    return {
        "rows": len(frame),
        "seconds": watch.seconds,
        "rows_per_second": len(frame) / watch.seconds,
    }


def quality(args: dict) -> dict:
    """SDMetrics QualityReport of ``synthetic`` against ``real``."""
    from sdmetrics.reports import QualityReport

    real, synthetic = read_frame(args["real"]), read_frame(args["synthetic"])
    report = QualityReport()
    with Stopwatch() as watch:
        report.generate({TABLE: real}, {TABLE: synthetic}, sdmetrics_metadata(real), verbose=False)
    properties = report.get_properties()
    scores = dict(zip(properties["Property"], properties["Score"].astype(float), strict=True))
    return {
        "real_rows": len(real),
        "synthetic_rows": len(synthetic),
        "overall": float(report.get_score()),
        "column_shapes": scores["Column Shapes"],
        "column_pair_trends": scores["Column Pair Trends"],
        "seconds": watch.seconds,
    }


def versions(args: dict) -> dict:
    """The peers' versions, as installed in their virtual environment."""
    return {name: importlib.metadata.version(name) for name in PACKAGES}


if __name__ == "__main__":
    main({"gc_fit": gc_fit, "gc_sample": gc_sample, "quality": quality, "versions": versions})
