"""mostlyai-engine's side of the benchmarks: TabularARGN through the engine's stage API.

Runs in its own venv (``venv.sh mostly``); each step is its own process. The fit is the four
stages (split, analyze, encode, train) with ``max_training_time`` set to the budget, so the
engine stops itself (or earlier, by its own early stopping or its default 100 epochs). The
engine keeps a fifth of the train split for its own validation, as it always does.

Session data (``session_key``, ``order_by``, the per-session constant columns ``context``) is
the engine's two-table set-up: a subject table (one row per session: its key and ``context``)
and the linked table of steps (the other columns, ``session_key`` as the context key, rows in
``order_by`` order). The engine's sequential model generates steps for given subjects only, so
a flat TabularARGN learns the subjects too (a fifth of the budget; the sequential model gets
the rest): sampling draws synthetic subjects, then their sessions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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

PACKAGES = ["mostlyai-engine", "torch", "pandas", "numpy", "pyarrow"]
SUBJECTS_SHARE = 0.2  # of a session fit's budget, for the subject model


def naive_utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps with a time zone as naive UTC datetimes, which the engine reads as datetimes."""
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = naive_utc(frame[column])
    return frame


def _fit_stages(engine, workspace: Path, budget: float, privacy: dict | None = None, **data):
    """split, analyze, encode, train (``budget`` seconds at most) in ``workspace``; train's s.

    ``privacy``: the engine's DifferentialPrivacyConfig for analyze (value protection) and
    train (DP-SGD)."""
    engine.split(workspace_dir=workspace, model_type="TABULAR", **data)
    engine.analyze(workspace_dir=workspace, differential_privacy=privacy)
    engine.encode(workspace_dir=workspace)
    with Stopwatch() as training:
        engine.train(
            workspace_dir=workspace,
            max_training_time=budget / 60,
            device="cpu",
            differential_privacy=privacy,
        )
    return training.seconds


def _privacy(epsilon: float | None, share: float | None):
    """The whole epsilon split as duck_synth splits its own: ``share`` for the statistics (the
    engine's value protection), the rest for DP-SGD (the engine's max_epsilon)."""
    if not epsilon:
        return None
    from mostlyai.engine.domain import DifferentialPrivacyConfig

    return DifferentialPrivacyConfig(
        max_epsilon=(1 - share) * epsilon, value_protection_epsilon=share * epsilon, delta=1e-5
    )


def fit(args: dict) -> dict:
    from mostlyai import engine

    workspace = Path(args["workspace"])
    shutil.rmtree(workspace, ignore_errors=True)
    train = pd.read_parquet(args["train"])
    engine.init_logging()
    engine.set_random_state(args["seed"])
    key = args.get("session_key")
    if not key:
        with Stopwatch() as watch:
            train_seconds = _fit_stages(
                engine,
                workspace,
                args["budget"],
                _privacy(args.get("epsilon"), args.get("statistics_share")),
                tgt_data=train,
            )
        return {"rows": len(train), "seconds": watch.seconds, "train_seconds": train_seconds}
    context = args["context"]
    train = naive_utc_frame(train)
    steps = train.sort_values([key, args["order_by"]], kind="stable").drop(columns=context)
    subjects = train[[key, *context]].drop_duplicates(key).reset_index(drop=True)
    budget = args["budget"]
    with Stopwatch() as watch:
        subject_seconds = _fit_stages(
            engine,
            workspace / "subjects",
            SUBJECTS_SHARE * budget,
            tgt_data=subjects,
            tgt_primary_key=key,
        )
        session_seconds = _fit_stages(
            engine,
            workspace / "sessions",
            (1 - SUBJECTS_SHARE) * budget,
            tgt_data=steps,
            ctx_data=subjects,
            ctx_primary_key=key,
            tgt_context_key=key,
        )
    return {
        "rows": len(train),
        "sessions": len(subjects),
        "seconds": watch.seconds,
        "train_seconds": subject_seconds + session_seconds,
        "subject_train_seconds": subject_seconds,
        "session_train_seconds": session_seconds,
    }


def _generated(engine, workspace: Path, **options) -> pd.DataFrame:
    shutil.rmtree(workspace / "SyntheticData", ignore_errors=True)
    engine.generate(workspace_dir=workspace, device="cpu", **options)
    return pd.read_parquet(workspace / "SyntheticData")


def sample(args: dict) -> dict:
    """As many rows as the train split (``like``) has, or ``rows``; for sessions, as many
    sessions (or ``sessions``)."""
    from mostlyai import engine

    workspace = Path(args["workspace"])
    key = args.get("session_key")
    engine.set_random_state(args["seed"])
    if not key:
        rows = args.get("rows") or pq.read_metadata(args["like"]).num_rows
        with Stopwatch() as watch:
            frame = _generated(engine, workspace, sample_size=rows)
        frame.to_parquet(args["output"], index=False)
        return rate(len(frame), watch.seconds)
    sessions = args.get("sessions") or pd.read_parquet(args["like"], columns=[key])[key].nunique()
    with Stopwatch() as watch:
        subjects = _generated(engine, workspace / "subjects", sample_size=sessions)
        steps = _generated(engine, workspace / "sessions", ctx_data=subjects)
    frame = steps.merge(subjects, on=key, how="left")
    frame = restore_times(conform_sessions(frame, args["like"], key), args["like"])
    frame.to_parquet(args["output"], index=False)
    return rate(len(frame), watch.seconds) | {"sessions": int(frame[key].nunique())}


if __name__ == "__main__":
    main({"fit": fit, "sample": sample, "versions": package_versions(PACKAGES)})
