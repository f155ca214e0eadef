"""SDV's steps for the benchmarks: GaussianCopula, CTGAN and PAR, and SDMetrics as a judge.

Runs in the SDV venv (``venv.sh sdv``), never in the project's Python; each step is its own
process. A dataset's categorical columns arrive in the step's arguments; every other column is
numerical, but for session data's key (``session_key``: an id, the sequence key of PAR).
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from step_io import (
    Stopwatch,
    conform_sessions,
    main,
    naive_utc,
    package_versions,
    rate,
    restore_times,
)

TABLE = "data"
PACKAGES = ["sdv", "sdmetrics", "ctgan", "copulas", "rdt", "torch", "pandas", "numpy"]


def read_frame(
    path: str, categorical: list[str], key: str | None = None, exclude: list[str] = ()
) -> pd.DataFrame:
    """Categoricals as strings (NULL kept as NaN), numbers as floats, timestamps as naive UTC
    datetimes; ``key`` left as it is, ``exclude`` left out."""
    frame = pd.read_parquet(path).drop(columns=list(exclude))
    for column in frame.columns:
        if column == key:
            continue
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            # one unit for every set: SDMetrics compares the integers (TabularARGN's table
            # samples are in nanoseconds, the train split in microseconds: time_hour scored 0)
            frame[column] = naive_utc(frame[column]).astype("datetime64[us]")
        elif column in categorical:
            frame[column] = frame[column].map(lambda v: np.nan if pd.isna(v) else str(v))
        else:
            frame[column] = frame[column].astype(float)
    return frame


def sdtype_of(frame: pd.DataFrame, column: str, categorical: list[str]) -> str:
    if column in categorical:
        return "categorical"
    return "datetime" if pd.api.types.is_datetime64_any_dtype(frame[column]) else "numerical"


def sdv_metadata(frame: pd.DataFrame, categorical: list[str], args: dict | None = None):
    """One table's metadata; with ``session_key`` and ``order_by`` in ``args``, a sequence."""
    from sdv.metadata import Metadata

    args = args or {}
    metadata = Metadata.detect_from_dataframes({TABLE: frame})
    for column in frame.columns:
        sdtype = sdtype_of(frame, column, categorical)
        if column == args.get("session_key"):
            sdtype = "id"
        metadata.update_column(column, sdtype=sdtype, table_name=TABLE)
    if args.get("session_key"):
        metadata.set_sequence_key(args["session_key"], table_name=TABLE)
        metadata.set_sequence_index(args["order_by"], table_name=TABLE)
    return metadata


def _synthesizer(method: str, metadata, epochs: int | None = None, context: list | None = None):
    from sdv.sequential import PARSynthesizer
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    if method == "gaussian_copula":
        return GaussianCopulaSynthesizer(metadata)
    if method == "par":
        return PARSynthesizer(metadata, context_columns=context, epochs=epochs)
    return CTGANSynthesizer(metadata, epochs=epochs)


def some_sessions(frame: pd.DataFrame, key: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` of the frame's sessions drawn with ``seed`` (all when it has no more), rows kept in
    their order."""
    keys = np.sort(frame[key].unique())
    if n >= len(keys):
        return frame
    chosen = np.random.default_rng(seed).choice(keys, size=n, replace=False)
    return frame[frame[key].isin(chosen)].reset_index(drop=True)


def fit(args: dict) -> dict:
    """Fit one SDV synthesizer on the train split and pickle it.

    GaussianCopula has no budget (it takes seconds). CTGAN and PAR only take epochs: after a
    1-epoch warm-up fit (imports, torch's first calls), throwaway fits of 1 and 3 epochs give the
    seconds per epoch and the fixed cost (preprocessing); then as many epochs as fill the budget
    (at least 1) are fitted, and that fit alone is timed. Given ``epochs``, exactly those. PAR
    (session data: ``session_key``, ``order_by``) is given the per-session constant columns
    ``context`` as its context columns; with ``sessions``, it fits that many of the train
    split's sessions (drawn with ``seed``), all of them when it has no more: its epochs grow
    with the square of the sessions.
    """
    train = read_frame(args["train"], args["categorical"], args.get("session_key"))
    if args.get("sessions"):
        train = some_sessions(train, args["session_key"], args["sessions"], args["seed"])
    metadata = sdv_metadata(train, args["categorical"], args)
    context = args.get("context")
    figures: dict = {"rows": len(train)}
    if args.get("session_key"):
        figures["sessions"] = int(train[args["session_key"]].nunique())
    epochs = args.get("epochs")  # given: equal epochs with another method, no probing
    if args["method"] in ("ctgan", "par") and epochs is None:
        probes = {}
        for probe_epochs in (0, 1, 3):  # 0: a 1-epoch warm-up (imports, torch's first calls)
            np.random.seed(args["seed"])
            with Stopwatch() as probe:
                probe_fit = _synthesizer(args["method"], metadata, max(probe_epochs, 1), context)
                probe_fit.fit({TABLE: train})
            probes[probe_epochs] = probe.seconds
        # The two probes' difference is two epochs; on a noisy machine it can come out near 0,
        # so an epoch is taken to be at least a sixth of the 3-epoch probe (overhead ≤ half).
        per_epoch = max((probes[3] - probes[1]) / 2, probes[3] / 6)
        overhead = max(probes[1] - per_epoch, 0.0)
        epochs = max(1, int((args["budget"] - overhead) // per_epoch))
        print(
            f"{args['method']} probes {probes}: {per_epoch:.2f} s per epoch, {epochs} epochs",
            flush=True,
        )
        figures |= {"probe_seconds": probes, "epoch_seconds": per_epoch, "epochs": epochs}
    if epochs is not None:
        figures["epochs"] = epochs
    np.random.seed(args["seed"])
    synthesizer = _synthesizer(args["method"], metadata, epochs, context)
    with Stopwatch() as watch:
        synthesizer.fit({TABLE: train})  # SDV 2.0 takes {table: frame}
    with open(args["model"], "wb") as file:
        pickle.dump(synthesizer, file)
    return figures | {"seconds": watch.seconds}


def sample(args: dict) -> dict:
    """``rows`` rows sampled, timed (default: as many as the train split has).

    The first as many as the train split has are written to Parquet, to be judged. With
    ``session_key`` (PAR): as many sessions as the train split has (at most ``sessions``: as
    many as PAR fitted when it fitted a subset), conformed to its types.
    """
    with open(args["model"], "rb") as file:
        synthesizer = pickle.load(file)
    key = args.get("session_key")
    like = pd.read_parquet(args["like"], columns=[key]) if key else None
    rows = pq.read_metadata(args["like"]).num_rows
    np.random.seed(args["seed"])
    with Stopwatch() as watch:
        if key:
            sessions = like[key].nunique()
            sessions = min(sessions, args.get("sessions") or sessions)
            sampled = synthesizer.sample_sequences(num_sequences=sessions)
        else:
            sampled = synthesizer.sample(num_rows=args.get("rows", rows))
    frame = sampled[TABLE] if isinstance(sampled, dict) else sampled  # SDV 2.0: {table: frame}
    if key:
        frame = restore_times(conform_sessions(frame, args["like"], key), args["like"])
        frame.to_parquet(args["output"], index=False)
        return rate(len(frame), watch.seconds) | {"sessions": int(frame[key].nunique())}
    frame.head(rows).to_parquet(args["output"], index=False)
    return rate(len(frame), watch.seconds)


def _quality_report(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: dict):
    from sdmetrics.reports import QualityReport

    report = QualityReport()
    report.generate({TABLE: real}, {TABLE: synthetic}, {"tables": {TABLE: metadata}}, verbose=False)
    return report


def _pairs_on_real_bins(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: dict) -> float:
    """Column Pair Trends with the synthetic set binned on the real set's edges.

    SDMetrics 0.32.0 bins each set's numbers on that set's own range, so a synthetic set without
    the real maximum (value protection) has every bin shifted; its maintainers described the
    real set's edges as the method (sdv-dev/SDMetrics PR #368). A diagnostic beside the stock
    score, never instead of it.
    """
    from sdmetrics.reports.single_table._properties.column_pair_trends import ColumnPairTrends

    stock, edges = ColumnPairTrends._get_processed_data, {}

    def on_real_edges(self, data, metadata):
        processed, discrete = stock(self, data, metadata)
        for column in discrete.columns:
            if column not in edges:  # the real set is processed first
                edges[column] = np.histogram_bin_edges(processed[column].dropna())
            discrete[column] = np.digitize(processed[column], bins=edges[column])
        return processed, discrete

    ColumnPairTrends._get_processed_data = on_real_edges
    try:
        report = _quality_report(real, synthetic, metadata)
    finally:
        ColumnPairTrends._get_processed_data = stock
    return float(report.get_properties().set_index("Property")["Score"]["Column Pair Trends"])


def quality(args: dict) -> dict:
    """SDMetrics QualityReport of ``synthetic`` against ``real`` (the train split), and its pair
    trends again on the real set's bins (``pairs_on_real_bins``).

    ``exclude``: columns left out of both (a session key: synthetic keys are fresh numbers).
    """
    categorical, exclude = args["categorical"], args.get("exclude", [])
    real = read_frame(args["real"], categorical, exclude=exclude)
    synthetic = read_frame(args["synthetic"], categorical, exclude=exclude)[list(real.columns)]
    metadata = {"columns": {c: {"sdtype": sdtype_of(real, c, categorical)} for c in real.columns}}
    with Stopwatch() as watch:
        report = _quality_report(real, synthetic, metadata)
    properties = report.get_properties()
    scores = dict(zip(properties["Property"], properties["Score"].astype(float), strict=True))
    pair_details = report.get_details("Column Pair Trends")
    pairs = pair_details["Score"].astype(float)
    shapes = report.get_details("Column Shapes")
    worst = pair_details.assign(Score=pairs).nsmallest(8, "Score")
    return {
        # where a set loses: every column's shape score, the lowest-scoring pairs
        "shapes_by_column": dict(zip(shapes["Column"], shapes["Score"].astype(float), strict=True)),
        "worst_pairs": {
            f"{a}, {b}": score
            for a, b, score in zip(
                worst["Column 1"], worst["Column 2"], worst["Score"], strict=True
            )
        },
        "pair_trends_scored": int(pairs.notna().sum()),
        "pair_trends_nanmean": float(pairs.mean()) if pairs.notna().any() else None,
        "real_rows": len(real),
        "synthetic_rows": len(synthetic),
        "overall": float(report.get_score()),
        "column_shapes": scores["Column Shapes"],
        "column_pair_trends": scores["Column Pair Trends"],
        "pairs_on_real_bins": _pairs_on_real_bins(real, synthetic, metadata),
        "seconds": watch.seconds,
    }


if __name__ == "__main__":
    main({"fit": fit, "sample": sample, "quality": quality, "versions": package_versions(PACKAGES)})
