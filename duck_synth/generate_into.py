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
from dataclasses import asdict

import duckdb

from . import catalog, spool, sqltext
from .errors import SynthError
from .generate import GenerationProgress, batches, prepare, target_units
from .options import GenerateOptions, parse
from .sources import read_source

BATCH_VIEW = "__duck_synth_batch"


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
    given = parse(GenerateOptions, "generate_into", options_json)
    if given.seed_rows is not None:
        raise SynthError(
            "generate_into(): seed_rows is not supported; use INSERT INTO ... generate()"
        )
    quoted, exists = _table_sql(con, table)
    name, version = catalog.resolve_version(con, spec)
    arguments = {k: v for k, v in asdict(given).items() if v is not None and k != "seed"}
    run, abandoned = _unfinished(con, quoted, exists, (name, version, arguments), given.seed)
    generator = prepare(con, f"{name}@{version}", given, seed=run[3] if run else None)
    types = generator.loaded.column_types()
    if exists:
        _check_columns(con, quoted, types)
    if run is None:
        target = target_units(con, generator, generator.options)
        generator.set_target(target)
        progress = GenerationProgress()
        with catalog.transaction(con):
            if abandoned is not None:
                _log_abandoned(con, quoted, abandoned)
            if not exists:
                columns = ", ".join(
                    f"{sqltext.quote_identifier(n)} {sqltext.duck_type(t)}" for n, t in types
                )
                con.execute(f"CREATE TABLE {quoted} ({columns})")
            con.execute("DELETE FROM synth.batch_runs WHERE table_name = ?", [quoted])
            con.execute(
                "INSERT INTO synth.batch_runs VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                [
                    quoted,
                    name,
                    version,
                    json.dumps(arguments),
                    generator.seed,
                    target,
                    json.dumps(_state(generator, progress)),
                    catalog.utc_now(),
                    catalog.utc_now(),
                ],
            )
        resumed_from = 0
    else:
        target = run[4]
        generator.set_target(target)
        state = json.loads(run[5])
        progress = GenerationProgress(**{k: v for k, v in state.items() if k != "generator"})
        generator.restore(state["generator"])
        _remember_unique(con, quoted, generator)
        resumed_from = progress.returned
    try:
        _append(con, quoted, types, generator, target, spec, progress)
    except SynthError:
        if progress.returned == 0:  # nothing written: leave the database as it was
            with catalog.transaction(con):
                con.execute("DELETE FROM synth.batch_runs WHERE table_name = ?", [quoted])
                if not exists:
                    con.execute(f"DROP TABLE {quoted}")
        raise
    if target == 0:
        con.execute("UPDATE synth.batch_runs SET status = 'done' WHERE table_name = ?", [quoted])
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


def _append(con, quoted: str, types, generator, target: int, spec: str, progress) -> None:
    """Each batch's rows and the run's progress, committed together."""
    select = spool.cast_sql(BATCH_VIEW, types)
    for rows in batches(generator, target, spec, progress):
        with catalog.transaction(con):
            con.register(BATCH_VIEW, rows)
            try:
                con.execute(f"INSERT INTO {quoted} {select}")
            finally:
                con.unregister(BATCH_VIEW)
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
