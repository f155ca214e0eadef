"""SDMetrics' QualityReport over Parquet files, run by tests/test_evaluate_fidelity.py in
SDMetrics' own virtual environment (tests/sdmetrics_requirements.txt), not in the project's.

    python sdmetrics_quality.py JOB.json

JOB.json: {"real": parquet path, "synthetic": [parquet paths], "sdtypes": {column: sdtype},
"thresholds": bool}. Prints one JSON list, a {"shapes", "pair_trends"} object per synthetic
table (pair_trends is NaN when no pair is related enough in the real data)."""

from __future__ import annotations

import json
import sys
import warnings

import pandas as pd
from sdmetrics.reports.single_table import QualityReport


def frame(path: str, sdtypes: dict[str, str]) -> pd.DataFrame:
    """As a CSV would load: numbers as floats, datetimes, the rest plain objects."""
    df = pd.read_parquet(path)
    for c, kind in sdtypes.items():
        if kind == "datetime":
            df[c] = pd.to_datetime(df[c])
        elif kind == "numerical":
            df[c] = df[c].astype(float)
        else:
            df[c] = df[c].astype(object)
    return df


def scores(real: pd.DataFrame, synthetic: pd.DataFrame, job: dict) -> dict[str, float]:
    metadata = {"columns": {c: {"sdtype": kind} for c, kind in job["sdtypes"].items()}}
    report = QualityReport()
    if not job["thresholds"]:
        report.real_correlation_threshold = report.real_association_threshold = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "shapes": float(properties["Column Shapes"]),
        "pair_trends": float(properties["Column Pair Trends"]),
    }


def main(job_path: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    real = frame(job["real"], job["sdtypes"])
    answers = [scores(real, frame(path, job["sdtypes"]), job) for path in job["synthetic"]]
    json.dump(answers, sys.stdout)  # NaN is written as NaN, which json.loads reads back


if __name__ == "__main__":
    main(sys.argv[1])
