"""The inference log: one row per pipeline run by a call (``synth.inference_logs``), read with
logs(). Its size is bounded: a call keeps at most ``rows_per_call`` input and output rows, and a
pipeline's rows older than ``keep_days`` or beyond its newest ``keep_rows`` are removed (every
``TRIM_EVERY`` calls a process makes to it, and when it is deployed)."""

from __future__ import annotations

import collections
import contextlib
import json
import threading
from datetime import datetime

import duckdb
import pyarrow as pa

from .. import spool
from ..errors import SynthError
from ..options import DeployOptions, LoggedRowsOptions, LogsOptions
from .runner import ROW, ArmRun

TRIM_EVERY = 1_000
_calls: collections.Counter = collections.Counter()
_lock = threading.Lock()


def _rows_json(table: pa.Table | None, limit: int) -> str | None:
    if table is None:
        return None
    kept = table.drop_columns([ROW]) if ROW in table.column_names else table
    return json.dumps(kept.slice(0, limit).to_pylist(), default=str)


def write(
    con: duckdb.DuckDBPyConnection,
    pipeline: str,
    version: int,
    call_id: str,
    time: datetime,
    runs: list[ArmRun],
    error: str | None,
    options: dict,
) -> None:
    """Log a call: a row per arm it ran, or one row when it failed before any ran. Written on
    a cursor of its own, which the call's time-out (an interrupt of the call's) never reaches."""
    limit = int(options.get("rows_per_call", DeployOptions.rows_per_call))
    rows = [
        [
            call_id,
            pipeline,
            version,
            run.arm,
            run.shadow,
            time,
            run.seconds,
            run.status,
            run.error,
            run.rows.num_rows,
            run.output.num_rows if run.output is not None else None,
            sum(1 for names in run.failures if names),
            json.dumps(run.failure_counts()),
            json.dumps(run.alerts),
            _rows_json(run.rows, limit),
            _rows_json(run.output, limit),
        ]
        for run in runs
    ]
    if not rows:
        rows = [[call_id, pipeline, version, None, False, time, 0.0, "error", error]]
        rows[0] += [None] * 7
    cursor = con.cursor()
    try:
        cursor.executemany(
            "INSERT INTO synth.inference_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        with _lock:
            _calls[pipeline] += 1
            due = _calls[pipeline] % TRIM_EVERY == 1
        if due:
            trim(cursor, pipeline, options)
    finally:
        cursor.close()


def trim(con: duckdb.DuckDBPyConnection, pipeline: str, options: dict) -> None:
    """Remove the pipeline's log rows past its limits (a concurrent writer's conflict leaves
    them to the next trim)."""
    days = int(options.get("keep_days", DeployOptions.keep_days))
    kept = int(options.get("keep_rows", DeployOptions.keep_rows))
    with contextlib.suppress(duckdb.TransactionException):
        con.execute(
            "DELETE FROM synth.inference_logs WHERE pipeline = $1 AND ("
            "time < timezone('UTC', now()) - to_days(CAST($2 AS INTEGER)) OR time < ("
            "SELECT min(time) FROM (SELECT time FROM synth.inference_logs WHERE pipeline = $1 "
            "ORDER BY time DESC LIMIT $3)))",
            [pipeline, days, kept],
        )


def read(con: duckdb.DuckDBPyConnection, pipeline: str, given: LogsOptions) -> str:
    """The newest ``limit`` log rows of ``pipeline`` in the window, oldest first."""
    table = con.execute(
        "SELECT * FROM (SELECT time, call_id, version, arm, shadow, status, error, seconds, "
        'input_rows, output_rows, check_failures, failures, alerts, inputs AS "in", '
        'outputs AS "out" FROM synth.inference_logs WHERE pipeline = $1 '
        "AND ($2::TIMESTAMP IS NULL OR time >= $2::TIMESTAMP) "
        "AND ($3::TIMESTAMP IS NULL OR time < $3::TIMESTAMP) "
        "AND (NOT $4 OR status <> 'ok' OR check_failures > 0) "
        "ORDER BY time DESC, shadow LIMIT $5) ORDER BY time, shadow",
        [pipeline, given.start, given.until, given.failures_only, given.max_rows],
    ).to_arrow_table()
    types = {"failures": "JSON", "alerts": "JSON", "in": "JSON", "out": "JSON"}
    return spool.write_rows("logs", table, types)


def rows(con: duckdb.DuckDBPyConnection, pipeline: str, given: LoggedRowsOptions) -> str:
    """The rows the log kept (each call's first ``rows_per_call``) as a table, one row per logged
    row, with its call: what evaluate() compares arms on. Types are read back from the JSON."""
    logged = con.execute(
        "SELECT call_id, arm, time, CASE WHEN $2 = 'in' THEN inputs ELSE outputs END "
        "FROM synth.inference_logs WHERE pipeline = $1 AND ($3::VARCHAR IS NULL OR arm = $3) "
        "AND ($4::TIMESTAMP IS NULL OR time >= $4::TIMESTAMP) "
        "AND ($5::TIMESTAMP IS NULL OR time < $5::TIMESTAMP) "
        "ORDER BY time DESC, shadow LIMIT $6",
        [pipeline, given.side, given.arm, given.start, given.until, given.max_rows],
    ).fetchall()
    records = []
    for call_id, arm, at, text in reversed(logged):
        for row in json.loads(text or "[]"):
            records.append({"call_id": call_id, "arm": arm, "time": at, **row})
    if not records:
        raise SynthError(f"logged_rows('{pipeline}'): no logged {given.side}put rows match")
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise SynthError(f"logged_rows('{pipeline}'): {str(error).splitlines()[0]}") from None
    return spool.write_rows("logged_rows", table)
