"""One infer() call: the deployment's version run on the input rows within the call's time-out,
logged whether it succeeded or not, and its result: per output row the call's ``time``, the
``arm`` that made it, its input row (``in.*``), the row (``out.*``) and ``check_failures``.

    FROM infer('testdata', input => 'SELECT 0.5 AS carat', timeout => 5)
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .. import caller, catalog, spool, sqltext
from ..access import Refused
from ..errors import Cancelled, SynthError
from ..options import InferOptions, parse
from ..sources import read_source
from . import logs, runner, steps, versions


def infer(con: duckdb.DuckDBPyConnection, name: str, options_json: str) -> str:
    if steps.inside_pipeline():  # a step calling a pipeline would call itself, or loop
        raise SynthError(f"infer('{name}'): a pipeline's step cannot call infer()")
    given = parse(InferOptions, "infer", options_json)
    allowed = caller.rights().deployments
    if allowed is not None and name not in allowed:  # access.py refused the statement already
        raise Refused(f"deployment token: infer() on {name!r} is not allowed")
    version, log_options = versions.deployed(con, name)
    if catalog.read_only(con):
        raise SynthError(f"infer('{name}'): the database is open read-only; every call is logged")
    rows = _input(con, given.input)
    caller.refuse_rows(rows.num_rows, f"infer('{name}')")
    call_id, at = uuid.uuid4().hex, catalog.utc_now()
    runs, error, answer = [], None, None
    with _deadline(con, given.timeout) as deadline:
        try:
            runs = runner.run(con, version, rows)
        except SynthError as failed:  # before any arm ran (a split's key missing)
            error = str(failed)
    for run in runs:
        if run.status == "timeout" and not deadline.passed.is_set():
            run.status = "cancelled"  # the client's cancel or the server's statement limit
    failed = error or next((r for r in runs if r.status != "ok" and not r.shadow), None)
    if failed is None:
        try:
            answer = result(rows, runs, at)
        except (pa.ArrowException, SynthError) as broken:  # arms' rows that do not fit together
            failed = f"the arms' rows do not make one table: {sqltext.first_line(broken)}"
            for run in runs:
                if not run.shadow:
                    run.status, run.error = "error", failed
    logs.write(con, name, version.version, call_id, at, runs, error, log_options)
    if failed is None:
        return spool.write_rows("infer", answer)
    if isinstance(failed, str):
        raise SynthError(f"infer('{name}'): {failed}")
    if failed.status == "timeout":
        raise Cancelled(
            f"infer('{name}'): timed out after {deadline.seconds:g} s (arm {failed.arm} stopped)"
        )
    if failed.status == "cancelled":
        raise Cancelled(f"infer('{name}'): {failed.error}")
    raise SynthError(f"infer('{name}'): {failed.error}")


def _input(con, value: object) -> pa.Table:
    """The input rows: a query or a table (read with the caller's rights), or rows given inline
    as structs (one, or a list)."""
    rows = _rows(con, value)
    if runner.ROW in rows.column_names:
        raise SynthError(f"infer(): input column '{runner.ROW}' is the name the pipeline uses")
    return rows


def _rows(con, value: object) -> pa.Table:
    if value is None:
        raise SynthError("infer(): give input => 'query' | 'table' | [{'column': value, ..}]")
    if isinstance(value, str):
        if caller.rights().deployments is not None:
            raise Refused("deployment token: give infer() its input rows inline ([{..}, ..])")
        return con.execute(read_source(con, value, "infer(): input")).to_arrow_table()
    given = [value] if isinstance(value, dict) else value
    if not isinstance(given, list) or not all(isinstance(r, dict) for r in given):
        raise SynthError("infer(): input rows are structs: [{'carat': 0.5, 'cut': 'Ideal'}, ..]")
    try:
        return pa.Table.from_pylist(given)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise SynthError(f"infer(): input rows: {str(error).splitlines()[0]}") from None


@dataclass
class _Deadline:
    seconds: float  # the time the call has: its timeout, or less of the server's limit left
    passed: threading.Event


@contextlib.contextmanager
def _deadline(con: duckdb.DuckDBPyConnection, seconds: float):
    """Run the block as a call stopped after ``seconds``: Python loops stop at their next
    ``caller.check()`` (a generation's next batch), and a query running then is interrupted."""
    outer = caller.current()
    now = time.monotonic()
    limit = seconds
    if outer.timeout is not None:  # the server's statement limit still holds
        limit = min(limit, outer.timeout - (now - outer.started))
    call = caller.Call(rights=outer.rights, cancelled=outer.cancelled, timeout=limit, started=now)
    deadline = _Deadline(limit, threading.Event())

    def stop() -> None:
        deadline.passed.set()
        con.interrupt()

    timer = threading.Timer(max(limit, 0.0), stop)
    timer.daemon = True
    timer.start()
    try:
        with caller.running(call):
            yield deadline
    finally:
        timer.cancel()
    if time.monotonic() - now >= limit:
        deadline.passed.set()


def result(rows: pa.Table, runs: list[runner.ArmRun], at) -> pa.Table:
    """The returned arms' output rows in their input rows' order (drawn rows last)."""
    parts = []
    for run in runs:
        if run.shadow or run.output is None:
            continue
        out = run.output
        n = out.num_rows
        places = out.column(runner.ROW)
        given = rows.take(places)
        columns = {
            "time": pa.array([at] * n, pa.timestamp("us")),
            "arm": pa.array([run.arm] * n, pa.string()),
        }
        columns.update({f"in.{c}": given.column(c) for c in rows.column_names})
        columns.update({f"out.{c}": out.column(c) for c in out.column_names if c != runner.ROW})
        columns["check_failures"] = pa.array(run.failures, pa.list_(pa.string()))
        columns[runner.ROW] = places
        parts.append(pa.table(columns))
    if not parts:  # no input row, so no arm ran
        empty = {"time": pa.array([], pa.timestamp("us")), "arm": pa.array([], pa.string())}
        empty.update({f"in.{c}": rows.column(c).slice(0, 0) for c in rows.column_names})
        return pa.table({**empty, "check_failures": pa.array([], pa.list_(pa.string()))})
    table = pa.concat_tables(parts, promote_options="default")
    drawn_last = pc.fill_null(table.column(runner.ROW), 2**62)  # rows drawn anew have none
    return table.take(pc.sort_indices(drawn_last)).drop_columns([runner.ROW])
