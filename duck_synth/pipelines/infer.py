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

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .. import caller, catalog, spool
from ..access import Refused
from ..errors import Cancelled, SynthError
from ..options import InferOptions, parse
from ..sources import read_source
from . import logs, runner, versions


def infer(con: duckdb.DuckDBPyConnection, name: str, options_json: str) -> str:
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
    runs, error = [], None
    with _deadline(con, given.timeout) as timed_out:
        try:
            runs = runner.run(con, version, rows)
        except SynthError as failed:  # before any arm ran (a split's key missing)
            error = str(failed)
    for run in runs:
        if run.status == "timeout" and not timed_out.is_set():
            run.status = "cancelled"  # the client's cancel or the server's statement limit
    logs.write(con, name, version.version, call_id, at, runs, error, log_options)
    failed = error or next((r for r in runs if r.status != "ok" and not r.shadow), None)
    if failed is None:
        return spool.write_rows("infer", result(rows, runs, at))
    if isinstance(failed, str):
        raise SynthError(f"infer('{name}'): {failed}")
    if failed.status == "timeout":
        raise Cancelled(
            f"infer('{name}'): timed out after {given.timeout:g} s (arm {failed.arm} stopped)"
        )
    if failed.status == "cancelled":
        raise Cancelled(f"infer('{name}'): {failed.error}")
    raise SynthError(f"infer('{name}'): {failed.error}")


def _input(con, value: object) -> pa.Table:
    """The input rows: a query or a table (read with the caller's rights), or rows given inline
    as structs (one, or a list)."""
    if value is None:
        raise SynthError("infer(): give input => 'query' | 'table' | [{'column': value, ..}]")
    if isinstance(value, str):
        return con.execute(read_source(con, value, "infer(): input")).to_arrow_table()
    given = [value] if isinstance(value, dict) else value
    if not isinstance(given, list) or not all(isinstance(r, dict) for r in given):
        raise SynthError("infer(): input rows are structs: [{'carat': 0.5, 'cut': 'Ideal'}, ..]")
    try:
        return pa.Table.from_pylist(given)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise SynthError(f"infer(): input rows: {str(error).splitlines()[0]}") from None


@contextlib.contextmanager
def _deadline(con: duckdb.DuckDBPyConnection, seconds: float):
    """Run the block as a call stopped after ``seconds``: Python loops stop at their next
    ``caller.check()`` (a generation's next batch), and a query running then is interrupted.
    Yields the event set when the time ran out."""
    outer = caller.current()
    now = time.monotonic()
    limit = seconds
    if outer.timeout is not None:  # the server's statement limit still holds
        limit = min(limit, outer.timeout - (now - outer.started))
    call = caller.Call(rights=outer.rights, cancelled=outer.cancelled, timeout=limit, started=now)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(max(limit, 0.0), stop)
    timer.daemon = True
    timer.start()
    try:
        with caller.running(call):
            yield timed_out
    finally:
        timer.cancel()
    if time.monotonic() - now >= limit:
        timed_out.set()


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
        columns = {"time": pa.array([at] * n, pa.timestamp("us")), "arm": pa.array([run.arm] * n)}
        columns.update({f"in.{c}": given.column(c) for c in rows.column_names})
        columns.update({f"out.{c}": out.column(c) for c in out.column_names if c != runner.ROW})
        columns["check_failures"] = pa.array(run.failures, pa.list_(pa.string()))
        columns[runner.ROW] = places
        parts.append(pa.table(columns))
    table = pa.concat_tables(parts, promote_options="default")
    drawn_last = pc.fill_null(table.column(runner.ROW), 2**62)  # rows drawn anew have none
    return table.take(pc.sort_indices(drawn_last)).drop_columns([runner.ROW])
