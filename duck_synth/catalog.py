"""The catalog in the database: schema ``synth`` with models, training runs and the generation log.

DDL lives in sql/migrations (applied in order, the version kept in ``synth.meta``); the table
macros in sql/macros.sql. Model versions are never reused: a new version is one more than any
version a model or a run of that name ever had.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import duckdb

from . import spool, sqltext, surface
from .errors import SynthError

FORMAT_VERSION = 1
UTC_NOW = "timezone('UTC', now())"  # catalog times are UTC TIMESTAMPs
MODEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _sql_file(*parts: str) -> str:
    return resources.files("duck_synth.sql").joinpath(*parts).read_text()


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("duck_synth.sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'synth' AND table_name = 'meta' "
        "AND database_name = current_database()"
    ).fetchone()[0]
    if not exists:
        return 0
    row = con.execute("SELECT value FROM synth.meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """One transaction: committed when the block ends, rolled back if it raises (anything,
    KeyboardInterrupt included)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def install(con: duckdb.DuckDBPyConnection, read_only: bool = False) -> int:
    """Create or migrate the catalog and (re)create the table macros. Returns the schema version."""
    current = schema_version(con)
    known = migrations()
    latest = known[-1][0] if known else 0
    if current > latest:  # its tables may have changed in ways this code would misread
        raise SynthError(
            f"this database's catalog is version {current}; this duck_synth knows up to "
            f"{latest}: upgrade duck_synth"
        )
    pending = [(v, sql) for v, sql in known if v > current]
    if read_only:
        return current
    if pending:
        with transaction(con):
            for version, sql in pending:
                con.execute(sql)
                con.execute(
                    "INSERT OR REPLACE INTO synth.meta VALUES ('schema_version', ?)", [str(version)]
                )
        current = pending[-1][0]
    con.execute(surface.macros_sql())
    mark_interrupted_runs(con)
    con.execute(EXPIRE_CHECKPOINTS)
    return current


# checkpoints of runs never resumed are kept a week (drop_checkpoints() removes them sooner)
EXPIRE_CHECKPOINTS = (
    "DELETE FROM synth.checkpoints WHERE created < timezone('UTC', now()) - INTERVAL 7 DAY"
)


def mark_interrupted_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Runs left 'running' by a process that no longer exists were interrupted (e.g. SIGKILL)."""
    rows = con.execute("SELECT run_id, pid FROM synth.runs WHERE status = 'running'").fetchall()
    dead = [run_id for run_id, pid in rows if pid is None or not process_alive(pid)]
    for run_id in dead:
        con.execute(
            f"UPDATE synth.runs SET status = 'interrupted', finished = {UTC_NOW}, "
            "error = 'the training process ended before the run finished' WHERE run_id = ?",
            [run_id],
        )


def process_alive(pid: int) -> bool:
    return pid == os.getpid() or spool.process_alive(pid)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- models --------------------------------------------------------------------------------------
@dataclass
class ModelRecord:
    name: str
    version: int
    method: str
    source: str
    created: datetime | str
    options: dict
    columns: list[dict]
    statistics: dict
    metrics: dict
    weights: bytes
    training_rows: int
    format_version: int


def parse_model_spec(spec: str) -> tuple[str, int | None]:
    """'name' -> (name, None: latest); 'name@3' -> (name, 3)."""
    if not isinstance(spec, str) or not spec:
        raise SynthError(f"model must be a name like 'diamonds' or 'diamonds@2', got {spec!r}")
    name, _, version = spec.partition("@")
    if version:
        if not version.isdigit():
            raise SynthError(f"model '{spec}': version after '@' must be a number")
        return name, int(version)
    return name, None


def resolve_version(con: duckdb.DuckDBPyConnection, spec: str) -> tuple[str, int]:
    name, version = parse_model_spec(spec)
    versions = [
        r[0]
        for r in con.execute(
            "SELECT version FROM synth.models WHERE name = ? ORDER BY version", [name]
        ).fetchall()
    ]
    return name, chosen_version("model", name, version, versions, "models()")


def chosen_version(
    kind: str, name: str, version: int | None, versions: list[int], listing: str
) -> int:
    """``version`` of ``name`` among its ``versions`` (None: the latest), or a one-line refusal
    naming the culprit (a model, a user model, a pipeline: ``kind``)."""
    if not versions:
        raise SynthError(f"unknown {kind} '{name}' (see FROM {listing})")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise SynthError(
            f"{kind} '{name}' has no version {version} (versions: {', '.join(map(str, versions))})"
        )
    return version


MODEL_COLUMNS = (
    "name, version, method, source, created, options, columns, statistics, metrics, "
    "weights, training_rows, format_version"
)


def load_model(con: duckdb.DuckDBPyConnection, spec: str, with_weights: bool = True) -> ModelRecord:
    """The stored model, checked (model_schema.py): a row of synth.models is untrusted data, as
    anyone who can write the table may have crafted it."""
    from .model_schema import check_model  # it imports the models, which need torch

    name, version = resolve_version(con, spec)
    row = con.execute(
        "SELECT name, version, method, source, created::VARCHAR, options, columns, statistics, "
        "metrics, CASE WHEN ? THEN weights ELSE ''::BLOB END, training_rows, format_version "
        "FROM synth.models WHERE name = ? AND version = ?",
        [with_weights, name, version],
    ).fetchone()
    where = f"model '{name}@{version}'"
    fields = {}
    for i, field in enumerate(("options", "columns", "statistics", "metrics"), start=5):
        try:
            fields[field] = json.loads(row[i])
        except (TypeError, ValueError):
            raise SynthError(f"{where}: {field}: not JSON") from None
    record = ModelRecord(
        name=row[0],
        version=row[1],
        method=row[2],
        source=row[3],
        created=row[4],
        weights=bytes(row[9] or b""),
        training_rows=row[10],
        format_version=row[11],
        **fields,
    )
    check_model(record, where, tensors=with_weights)
    return record


def next_version(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return con.execute(
        "SELECT coalesce(max(v), 0) + 1 FROM (SELECT max(version) v FROM synth.models WHERE name = ? "
        "UNION ALL SELECT max(version) FROM synth.runs WHERE model = ?)",
        [name, name],
    ).fetchone()[0]


def insert_model(
    con: duckdb.DuckDBPyConnection,
    record: ModelRecord,
    run_id: int | None,
    before_commit: Callable[[int], None] | None = None,
) -> int:
    """Add the model in one transaction with its run's success; returns the version.
    ``before_commit(version)``: what else the statement needs (e.g. its result spooled), done
    inside the transaction, so if it fails no model is added."""
    return insert_models(con, [record], run_id, before_commit=before_commit)[0]


def insert_models(
    con: duckdb.DuckDBPyConnection,
    records: list[ModelRecord],
    run_id: int | None,
    versioned: Callable[[list[int]], None] | None = None,
    before_commit: Callable[[int], None] | None = None,
) -> list[int]:
    """Add models in one transaction (all or none), the run's model being the last; returns
    their versions. ``versioned(versions)`` may complete the records once their versions are
    known (a database names its tables' models)."""
    with transaction(con):
        versions = [next_version(con, record.name) for record in records]
        if versioned is not None:
            versioned(versions)
        for record, version in zip(records, versions, strict=True):
            con.execute(
                f"INSERT INTO synth.models ({MODEL_COLUMNS}, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    record.name,
                    version,
                    record.method,
                    record.source,
                    record.created,
                    json.dumps(record.options),
                    json.dumps(record.columns),
                    json.dumps(record.statistics),
                    json.dumps(record.metrics),
                    record.weights,
                    record.training_rows,
                    record.format_version,
                    run_id,
                ],
            )
        if run_id is not None:
            con.execute(
                f"UPDATE synth.runs SET status = 'succeeded', version = ?, progress = 1.0, "
                f"finished = {UTC_NOW} WHERE run_id = ?",
                [versions[-1], run_id],
            )
        if before_commit is not None:
            before_commit(versions[-1])
    return versions


def drop_model(
    con: duckdb.DuckDBPyConnection, spec: str, version: int | None
) -> list[tuple[str, int]]:
    name, spec_version = parse_model_spec(spec)
    version = version if version is not None else spec_version
    resolve_version(con, name if version is None else f"{name}@{version}")
    params = [name, version, version]
    dropped = con.execute(
        "SELECT name, version FROM synth.models WHERE name = ? AND (? IS NULL OR version = ?) "
        "ORDER BY version",
        params,
    ).fetchall()
    con.execute("DELETE FROM synth.models WHERE name = ? AND (? IS NULL OR version = ?)", params)
    # a database's table models go with it (their options name it: component_of 'name@version')
    con.execute(
        "DELETE FROM synth.models WHERE list_contains(?, options->>'component_of')",
        [[f"{n}@{v}" for n, v in dropped]],
    )
    return dropped


# -- runs --------------------------------------------------------------------------------------
def start_run(con: duckdb.DuckDBPyConnection, model: str, method: str, source: str) -> int:
    return con.execute(
        "INSERT INTO synth.runs (run_id, model, method, source, status, progress, started, pid) "
        f"VALUES (nextval('synth.run_id_seq'), ?, ?, ?, 'running', 0.0, {UTC_NOW}, ?) RETURNING run_id",
        [model, method, source, os.getpid()],
    ).fetchone()[0]


def update_run(
    con: duckdb.DuckDBPyConnection, run_id: int, progress: float, epochs: int, losses: list
) -> None:
    con.execute(
        f"UPDATE synth.runs SET progress = ?, epochs = ?, losses = ?, seconds = epoch({UTC_NOW} - started) "
        "WHERE run_id = ?",
        [progress, epochs, json.dumps(losses), run_id],
    )


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: int, status: str, error: str | None = None
) -> None:
    con.execute(
        f"UPDATE synth.runs SET status = ?, error = ?, finished = {UTC_NOW}, seconds = epoch({UTC_NOW} - started) "
        "WHERE run_id = ?",
        [status, error, run_id],
    )


# -- generation log --------------------------------------------------------------------------
def read_only(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database is open read-only (nothing can be logged in it)."""
    row = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0])


def log_generation(
    con,
    model: str,
    version: int,
    arguments: dict,
    seed: int,
    drawn: int,
    returned: int,
    seconds: float,
    passed: int | None = None,
) -> None:
    """``passed``: units that survived every step (``returned`` may stop short of them when the
    last batch brought more than target needed); None: all that were returned. A database open
    read-only keeps no log."""
    if read_only(con):
        return
    con.execute(
        "INSERT INTO synth.generations (generation_id, model, version, arguments, seed, "
        "rows_drawn, rows_returned, seconds, created, rows_passed) "
        "VALUES (nextval('synth.generation_id_seq'), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            model,
            version,
            json.dumps(arguments),
            seed,
            drawn,
            returned,
            seconds,
            utc_now(),
            returned if passed is None else passed,
        ],
    )


def column_lookups(con: duckdb.DuckDBPyConnection):
    """(columns of a model, columns of a table or view, a view's SQL, a model's training rows):
    what the rewrite needs to know."""

    def columns_of_model(spec: str) -> list[str] | None:
        try:
            record = load_model(con, spec, with_weights=False)
        except SynthError:
            return None
        if record.method == "database":  # its columns are its tables': checked when it runs
            return None
        return [c["name"] for c in record.columns]

    def named(query: str, name: str) -> list[tuple] | None:
        """``query`` (a catalog listing, ending in WHERE ... AND) for the relation ``name``
        names, its parts bound as values: never binding the relation (a view over generate()
        would generate) and never pasting the name."""
        parts = sqltext.name_parts(name)
        if parts is None:
            return None
        database, schema, relation = parts
        return con.execute(
            f"{query} lower(?) AND (? IS NULL OR lower(schema_name) = lower(?)) "
            "AND (? IS NULL OR lower(database_name) = lower(?))",
            [relation, schema, schema, database, database],
        ).fetchall()

    def columns_of_table(name: str) -> list[str] | None:
        rows = named(
            "SELECT database_name, schema_name, column_name, column_index FROM duckdb_columns() "
            "WHERE lower(table_name) =",
            name,
        )
        if not rows or len({(r[0], r[1]) for r in rows}) != 1:
            return None  # unknown, or ambiguous without a schema
        return [r[2] for r in sorted(rows, key=lambda r: r[3])]

    def view_sql(name: str) -> str | None:
        # the SQL as stored, never the view bound (which would generate)
        rows = named(
            "SELECT sql FROM duckdb_views() WHERE NOT internal AND lower(view_name) =", name
        )
        return rows[0][0] if rows and len(rows) == 1 else None

    def rows_of_model(spec: str) -> int | None:
        try:
            return load_model(con, spec, with_weights=False).training_rows
        except SynthError:
            return None

    return columns_of_model, columns_of_table, view_sql, rows_of_model
