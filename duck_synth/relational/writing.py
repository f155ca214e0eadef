"""generate_tables(): a database model's generated tables written with their keys declared
(PRIMARY KEY, REFERENCES) so DuckDB checks every foreign key too: the parents in one
transaction, each leaf child chunk by chunk, resumable."""

from __future__ import annotations

import json
from dataclasses import asdict

import duckdb

from .. import catalog
from ..errors import SynthError
from ..options import GenerateTablesOptions
from ..sqltext import quote_identifier
from .generation import Database, Run


def write_tables(
    con: duckdb.DuckDBPyConnection, spec: str, options: GenerateTablesOptions
) -> list[dict]:
    """generate_tables(): the tables ``prefix || name``. The parents are written in one
    transaction; each leaf child (a table nothing references: usually the largest) is then
    appended chunk by chunk (batch_size rows), each chunk one transaction with its progress in
    synth.batch_runs, so a stopped run called again with the same arguments resumes at the next
    chunk, with the rows an uninterrupted run writes (the same seed draws the same parents)."""
    database = Database.load(con, spec)
    database.check(options)
    name, version = catalog.resolve_version(con, spec)
    targets = {t["name"]: options.prefix + t["name"] for t in database.tables}
    referenced = {r.parent for r in database.relations}
    streamed = {
        t["name"]
        for t in database.tables
        if database.context(t["name"]) is not None and t["name"] not in referenced
    }
    arguments = {k: v for k, v in asdict(options).items() if v is not None}
    arguments = {k: v for k, v in arguments.items() if k not in ("seed", "replace")}
    runs = _unfinished(con, [quote_identifier(targets[t]) for t in sorted(streamed)])
    existing = _existing(con, list(targets.values()))
    resumed = (
        bool(runs)
        and len(runs) == len(streamed)
        and len(existing) == len(targets)
        and all(r[1:4] == (name, version, arguments) for r in runs.values())
    )
    if runs and not resumed and not options.replace:
        other = next(iter(runs.values()))
        raise SynthError(
            f"generate_tables(): the tables of prefix '{options.prefix}' have an unfinished run "
            f"of {other[1]}@{other[2]} with other arguments ({json.dumps(other[3])}, seed "
            f"{other[4]}); call it with those to resume, or pass replace => true"
        )
    if existing and not resumed and not options.replace:
        raise SynthError(
            f"generate_tables(): table '{existing[0]}' exists; drop it, choose another prefix, "
            "or pass replace => true"
        )
    seed = next(iter(runs.values()))[4] if resumed else None
    run = Run.start(con, spec, options, seed)
    for index, described in enumerate(database.tables):
        if described["name"] not in streamed:
            run.table(index, described)
    if not resumed:
        _write_parents(con, run, targets, existing, streamed, (name, version, arguments))
    for index, described in enumerate(database.tables):
        if described["name"] in streamed:
            quoted = quote_identifier(targets[described["name"]])
            state = json.loads(runs[quoted][5]) if resumed else {"chunk": 0, "rows": 0}
            _append_chunks(con, run, index, described, quoted, state)
    return [
        {
            "table": targets[t["name"]],
            "source": t["name"],
            "rows": con.execute(
                f"SELECT count(*) FROM {quote_identifier(targets[t['name']])}"
            ).fetchone()[0],
            "resumed": resumed and t["name"] in streamed,
        }
        for t in database.tables
    ]


def _unfinished(con, quoted: list[str]) -> dict[str, tuple]:
    """The running chunked runs of these tables: table -> (table, model, version, arguments,
    seed, state)."""
    rows = con.execute(
        "SELECT table_name, model, version, arguments, seed, state FROM synth.batch_runs "
        "WHERE list_contains(?, table_name) AND status = 'running'",
        [quoted],
    ).fetchall()
    return {r[0]: (r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows}


def _write_parents(con, run: Run, targets, existing, streamed, identity) -> None:
    """One transaction: the old tables dropped (replace), every table created with its keys,
    the parents' rows inserted, a chunked run recorded per leaf child."""
    database, (name, version, arguments) = run.database, identity
    with catalog.transaction(con):
        for described in reversed(database.tables):  # children first: they reference parents
            if targets[described["name"]] in existing:
                con.execute(f"DROP TABLE {quote_identifier(targets[described['name']])}")
        for described in database.tables:
            table = described["name"]
            con.execute(_create_sql(database, described, targets))
            if table not in streamed:
                _insert(con, quote_identifier(targets[table]), described, run.out[table])
                continue
            quoted = quote_identifier(targets[table])
            con.execute("DELETE FROM synth.batch_runs WHERE table_name = ?", [quoted])
            con.execute(
                "INSERT INTO synth.batch_runs VALUES (?, ?, ?, ?, ?, 0, ?, 'running', "
                "now(), now())",
                [quoted, name, version, json.dumps(arguments), run.seed, '{"chunk": 0, "rows": 0}'],
            )


def _append_chunks(con, run: Run, index: int, described: dict, quoted: str, state: dict) -> None:
    """A leaf child's chunks from where its run stands, each with its progress."""
    chunk = state["chunk"]
    for _, output in run.chunks(index, described, state["chunk"], state["rows"]):
        with catalog.transaction(con):
            _insert(con, quoted, described, output)
            chunk, state = chunk + 1, {"chunk": chunk + 1, "rows": state["rows"] + len(output)}
            con.execute(
                "UPDATE synth.batch_runs SET state = ?, target = ?, updated = now() "
                "WHERE table_name = ?",
                [json.dumps(state), state["rows"], quoted],
            )
    con.execute("UPDATE synth.batch_runs SET status = 'done' WHERE table_name = ?", [quoted])


def _insert(con, quoted: str, described: dict, rows) -> None:
    name = "__duck_synth_rows"
    con.register(name, rows)
    try:
        columns = ", ".join(quote_identifier(c) for c, _, _ in described["columns"])
        con.execute(f"INSERT INTO {quoted} ({columns}) SELECT {columns} FROM {name}")
    finally:
        con.unregister(name)


def _existing(con, names: list[str]) -> list[str]:
    found = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND list_contains(?, table_name)",
        [names],
    ).fetchall()
    return [n for n in names if (n,) in found]


def _create_sql(database: Database, described: dict, targets: dict[str, str]) -> str:
    """CREATE TABLE with the trained types, the keys children reference as PRIMARY KEY (or
    UNIQUE) and each foreign key as REFERENCES."""
    from ..sqltext import duck_type

    table = described["name"]
    items = [f"{quote_identifier(c)} {duck_type(t)}" for c, t, _ in described["columns"]]
    referenced = list(dict.fromkeys(r.parent_key for r in database.relations if r.parent == table))
    for i, key in enumerate(referenced):
        kind = "PRIMARY KEY" if i == 0 else "UNIQUE"
        items.append(f"{kind} ({', '.join(map(quote_identifier, key))})")
    for relation in database.relations:
        if relation.child == table:
            items.append(
                f"FOREIGN KEY ({', '.join(map(quote_identifier, relation.key))}) REFERENCES "
                f"{quote_identifier(targets[relation.parent])} "
                f"({', '.join(map(quote_identifier, relation.parent_key))})"
            )
    return f"CREATE TABLE {quote_identifier(targets[table])} ({', '.join(items)})"
