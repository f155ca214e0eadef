"""How the orchestrator and a step process talk: arguments in, figures out, peak memory added.

A step runs as ``python STEP_SCRIPT NAME ARGS.json RESULT.json``. It reads its arguments, does one
measured thing, and writes its figures plus the process's peak resident memory. Standard library
only: the same module serves the project's Python and the peers' virtual environments.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

Step = Callable[[dict], dict]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(steps: dict[str, Step]) -> None:
    """Run the step named on the command line and write its figures as JSON."""
    name, args_path, result_path = sys.argv[1:4]
    if name not in steps:
        raise SystemExit(f"unknown step {name!r}; known: {', '.join(steps)}")
    args = json.loads(Path(args_path).read_text())
    started = time.perf_counter()
    figures = steps[name](args)
    figures["process_seconds"] = time.perf_counter() - started
    figures["peak_rss_mib"] = peak_rss_mib()
    Path(result_path).write_text(json.dumps(figures, indent=2, default=str))


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def rate(rows: int, seconds: float) -> dict:
    """A sampling step's common figures: how many rows, in how many seconds, rows per second."""
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


def conform_sessions(frame, like: str, session_key: str):
    """A peer's sampled sessions as the train split (the Parquet file ``like``) has them.

    Its columns in the train split's order and dtypes (booleans back from the strings a peer
    was given, integers rounded, numbers as numbers), the session key renumbered 1..n in order
    of appearance, as duck_synth numbers its sessions. Imports pandas, which the venvs have.
    """
    import pandas as pd

    real = pd.read_parquet(like)
    frame = frame[list(real.columns)].copy()
    frame[session_key] = pd.factorize(frame[session_key])[0] + 1
    for column, dtype in real.dtypes.items():
        values = frame[column]
        if column == session_key:
            continue
        if pd.api.types.is_bool_dtype(dtype):
            values = values.map(lambda v: None if pd.isna(v) else str(v) == "True")
            frame[column] = values.astype("boolean")
        elif pd.api.types.is_integer_dtype(dtype):
            frame[column] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
        elif pd.api.types.is_float_dtype(dtype):
            frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    return frame


def package_versions(packages: list[str]) -> Step:
    """A ``versions`` step: each package's installed version, "absent" when it is not there."""

    def versions(args: dict) -> dict:
        found = {}
        for name in packages:
            try:
                found[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                found[name] = "absent"
        return found

    return versions


def naive_utc(values):
    """Timestamps with a time zone as naive UTC ones (what the peers read as datetimes)."""
    return values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz else values


def restore_times(frame, like: str):
    """The naive UTC timestamps given back in the time zones of the train split's (``like``).
    Imports pandas and pyarrow, which the venvs have."""
    import pandas as pd
    import pyarrow.parquet as pq

    for field in pq.read_schema(like):
        if field.name in frame.columns and getattr(field.type, "tz", None):
            values = pd.to_datetime(frame[field.name])
            values = values if values.dt.tz else values.dt.tz_localize("UTC")
            frame[field.name] = values.dt.tz_convert(field.type.tz)
    return frame
