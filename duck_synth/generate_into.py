"""generate_into(): generation appended to a table batch by batch, resumable.

Each batch is one transaction: its rows and the run's progress (batch number, counts, the
generator's state) are committed together, so a run stopped at any moment (Ctrl-C, a killed
process) leaves whole batches and the progress that matches them. Calling again with the same
arguments resumes at the next batch; every batch draws from its own seed, so the rows are the
ones an uninterrupted run writes: no duplicate, no gap. This append is the one exception to
all-or-nothing: the batches committed before an interruption stay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict

import duckdb

from . import catalog, spool, sqltext
from .errors import SynthError
from .generate import GenerationProgress, batches, local_draws, prepare, target_units
from .options import GenerateIntoOptions, parse
from .parts import Parts
from .shapes.base import SCHEMA_BATCH
from .sources import read_source

BATCH_VIEW = "__duck_synth_batch"
# where the rows are drawn: not part of what a resumed run must match
RUN_INDEPENDENT = ("seed", "engine", "workers")


def _table_sql(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str, bool]:
    """(quoted name, whether it exists) of a table name, optionally schema-qualified."""
    parts = [p.strip('"') for p in name.strip().split(".")]
    if not name.strip() or len(parts) > 3 or not all(parts):
        raise SynthError(f"generate_into(): '{name}' is not a table name")
    quoted = ".".join(sqltext.quote_identifier(p) for p in parts)
    try:
        read_source(con, name, what="generate_into()")
        return quoted, True
    except SynthError:
        return quoted, False


def generate_into(con: duckdb.DuckDBPyConnection, table: str, spec: str, options_json: str) -> dict:
    """Append generated rows to ``table`` (created with the model's column types if missing).

    >>> FROM generate_into('big', 'diamonds', target => 50000000)
    -- table | model | version | target | rows | batches | resumed_from | seconds | rows_per_second
    """
    started = time.monotonic()
    given = parse(GenerateIntoOptions, "generate_into", options_json)
    if given.seed_rows is not None:
        raise SynthError(
            "generate_into(): seed_rows is not supported; use INSERT INTO ... generate()"
        )
    quoted, exists = _table_sql(con, table)
    parts = Parts.at(given.path) if given.path is not None else None
    name, version = catalog.resolve_version(con, spec)
    # the rows do not depend on where they are drawn: a run may resume on another engine
    arguments = {
        k: v for k, v in asdict(given).items() if v is not None and k not in RUN_INDEPENDENT
    }
    run, abandoned = _unfinished(con, quoted, exists, (name, version, arguments), given.seed)
    generator = prepare(con, f"{name}@{version}", given, seed=run[3] if run else None)
    types = generator.loaded.column_types()
    if exists:
        _check_columns(con, quoted, types)
        if parts is not None and run is None:
            raise SynthError(f"generate_into(): {quoted} exists; path => writes a new view")
    if parts is not None and run is None:
        parts.check_empty()
    if run is None:
        target, progress = _start(con, (quoted, exists, parts), generator, arguments, abandoned)
        resumed_from = 0
    else:
        target = run[4]
        generator.set_target(target)
        state = json.loads(run[5])
        progress = GenerationProgress(**{k: v for k, v in state.items() if k != "generator"})
        generator.restore(state["generator"])
        if parts is not None:  # the view must read only committed batches' parts
            parts.remove(first=progress.batch)
        _remember_unique(con, quoted, generator)
        resumed_from = progress.returned
    draws = _draws(given, generator, target, progress)
    try:
        _append(con, (quoted, parts), types, generator, (target, spec), progress, draws)
    except SynthError:
        if progress.returned == 0:  # nothing written: leave the database as it was
            _undo(con, quoted, exists, parts)
        raise
    finally:
        draws.close()  # batches drawn ahead (Ray tasks) are cancelled
    if target == 0:
        with catalog.transaction(con):
            if parts is not None and not exists:  # no batch: an empty part makes the view
                empty = generator.draw(1, SCHEMA_BATCH).slice(0, 0)
                _write_batch(con, (quoted, parts), types, empty, 0)
            con.execute(
                "UPDATE synth.batch_runs SET status = 'done' WHERE table_name = ?", [quoted]
            )
    seconds = time.monotonic() - started
    catalog.log_generation(
        con,
        name,
        version,
        {**arguments, "into": quoted},
        generator.seed,
        progress.drawn,
        progress.returned,
        seconds,
        progress.passed,
    )
    return _summary(quoted, name, version, target, progress, resumed_from, seconds)


def _start(con, into: tuple, generator, arguments: dict, abandoned) -> tuple:
    """A new run: its target, the table (unless it exists or parts are written) and its
    batch_runs row, in one transaction; (target, progress)."""
    quoted, exists, parts = into
    record = generator.loaded.record
    target = target_units(con, generator, generator.options)
    generator.set_target(target)
    progress = GenerationProgress()
    with catalog.transaction(con):
        if abandoned is not None:
            _log_abandoned(con, quoted, abandoned)
        if not exists and parts is None:
            columns = ", ".join(
                f"{sqltext.quote_identifier(n)} {sqltext.duck_type(t)}"
                for n, t in generator.loaded.column_types()
            )
            con.execute(f"CREATE TABLE {quoted} ({columns})")
        con.execute("DELETE FROM synth.batch_runs WHERE table_name = ?", [quoted])
        con.execute(
            "INSERT INTO synth.batch_runs VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            [
                quoted,
                record.name,
                record.version,
                json.dumps(arguments),
                generator.seed,
                target,
                json.dumps(_state(generator, progress)),
                catalog.utc_now(),
                catalog.utc_now(),
            ],
        )
    return target, progress


def _undo(con, quoted: str, exists: bool, parts: Parts | None) -> None:
    """A run that wrote nothing: its batch_runs row, and the table (view, parts) it made."""
    with catalog.transaction(con):
        con.execute("DELETE FROM synth.batch_runs WHERE table_name = ?", [quoted])
        if not exists and parts is None:
            con.execute(f"DROP TABLE {quoted}")
        elif not exists:
            con.execute(f"DROP VIEW IF EXISTS {quoted}")
            parts.remove()


def _unfinished(
    con, quoted: str, exists: bool, call: tuple[str, int, dict], seed: int | None
) -> tuple[tuple | None, tuple | None]:
    """(the unfinished run to resume, an unfinished run whose table was dropped); refuses a
    call whose (model, version, arguments) or seed differ from the unfinished run's."""
    run = con.execute(
        "SELECT model, version, arguments, seed, target, state, epoch(updated - started) "
        "FROM synth.batch_runs WHERE table_name = ? AND status = 'running'",
        [quoted],
    ).fetchone()
    if run is not None and not exists:  # its table was dropped: nothing is left to resume
        return None, run
    if run is not None:
        same = (run[0], run[1], json.loads(run[2])) == call
        if not same or (seed is not None and seed != run[3]):
            raise SynthError(
                f"generate_into(): table {quoted} has an unfinished run of {run[0]}@{run[1]} with "
                f"other arguments ({run[2]}, seed {run[3]}); call it with those to resume, or "
                "DROP the table"
            )
    return run, None


def _summary(
    quoted: str, name: str, version: int, target: int, progress, resumed_from: int, seconds: float
) -> dict:
    written = progress.returned - resumed_from
    return {
        "table": quoted,
        "model": name,
        "version": version,
        "target": target,
        "rows": written,
        "batches": progress.batch,
        "resumed_from": resumed_from,
        "seconds": seconds,
        "rows_per_second": written / seconds if seconds > 0 else None,
    }


def _draws(given: GenerateIntoOptions, generator, target: int, progress) -> Iterator:
    """Each batch's units and screened rows, in batch order, by the plan both engines share."""
    if given.engine == "ray":
        from .distributed.generation import ray_draws

        return ray_draws(generator, target, progress, given.workers)
    return local_draws(generator, target, progress, planned=True)


def _append(con, into: tuple, types, generator, asked: tuple, progress, draws) -> None:
    """Each batch's rows (into the table, or a Parquet part) and the run's progress,
    committed together."""
    (quoted, parts), (target, spec) = into, asked
    for rows in batches(generator, target, spec, progress, draws):
        try:
            with catalog.transaction(con):
                _write_batch(con, (quoted, parts), types, rows, progress.batch - 1)
                con.execute(
                    "UPDATE synth.batch_runs SET state = ?, status = ?, updated = ? "
                    "WHERE table_name = ?",
                    [
                        json.dumps(_state(generator, progress)),
                        "done" if progress.returned >= target else "running",
                        catalog.utc_now(),
                        quoted,
                    ],
                )
        except BaseException:
            if parts is not None:  # its batch was not committed: neither is its part
                parts.remove(first=progress.batch - 1)
            raise


def _write_batch(con, into: tuple, types, rows, batch: int) -> None:
    """One batch's rows into the table, or as its Parquet part (typed as the table would be;
    the view, made with the first part, reads the parts committed)."""
    quoted, parts = into
    select = spool.cast_sql(BATCH_VIEW, types)
    con.register(BATCH_VIEW, rows)
    try:
        if parts is None:
            con.execute(f"INSERT INTO {quoted} {select}")
            return
        parts.write(batch, con.execute(select).to_arrow_table())
        if batch == 0:
            con.execute(f"CREATE OR REPLACE VIEW {quoted} AS {parts.view_sql(types)}")
    finally:
        con.unregister(BATCH_VIEW)


def _log_abandoned(con, quoted: str, run: tuple) -> None:
    """An unfinished run whose table was dropped stays in the generation log (its batch_runs
    row, one per table, goes to the new run)."""
    model, version, arguments, seed, _, state, seconds = run
    progress = json.loads(state)
    catalog.log_generation(
        con,
        model,
        version,
        {**json.loads(arguments), "into": quoted, "abandoned": "the table was dropped"},
        seed,
        progress["drawn"],
        progress["returned"],
        float(seconds),
        progress.get("passed", progress["returned"]),
    )


def _state(generator, progress: GenerationProgress) -> dict:
    return {**asdict(progress), "generator": generator.state()}


def _check_columns(con, quoted: str, types: list[tuple[str, str]]) -> None:
    have = [r[0] for r in con.execute(f"DESCRIBE {quoted}").fetchall()]
    want = [n for n, _ in types]
    if have != want:
        raise SynthError(
            f"generate_into(): table {quoted} has columns ({', '.join(have)}), the model "
            f"generates ({', '.join(want)})"
        )


def _remember_unique(con, quoted: str, generator) -> None:
    """A resumed run's unique columns start from the values already written."""
    for column in generator.unique.columns:
        q = sqltext.quote_identifier(column)
        rows = con.execute(f"SELECT DISTINCT {q} FROM {quoted} WHERE {q} IS NOT NULL").fetchall()
        generator.unique.seen[column] = {r[0] for r in rows}
