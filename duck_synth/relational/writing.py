"""generate_tables(): a database model's generated tables written in one transaction, with
their keys declared (PRIMARY KEY, REFERENCES) so DuckDB checks every foreign key too."""

from __future__ import annotations

import duckdb

from .. import catalog
from ..errors import SynthError
from ..options import GenerateTablesOptions
from ..sqltext import quote_identifier
from .generation import Database, generate_tables


def write_tables(
    con: duckdb.DuckDBPyConnection, spec: str, options: GenerateTablesOptions
) -> list[dict]:
    """generate_tables(): the tables written (prefix + name) in one transaction, with their
    keys declared (PRIMARY KEY, REFERENCES), so DuckDB checks every foreign key too."""
    database = Database.load(con, spec)
    tables = generate_tables(con, spec, options)
    targets = {t: options.prefix + t for t in tables}
    existing = _existing(con, list(targets.values()))
    if existing and not options.replace:
        raise SynthError(
            f"generate_tables(): table '{existing[0]}' exists; drop it, choose another prefix, "
            "or pass replace => true"
        )
    summary = []
    with catalog.transaction(con):
        for table in reversed(list(tables)):  # children first: they reference their parents
            if targets[table] in existing:
                con.execute(f"DROP TABLE {quote_identifier(targets[table])}")
        for table, rows in tables.items():
            described = database.table(table)
            con.execute(_create_sql(database, described, targets))
            name = f"__duck_synth_rows_{table}"
            con.register(name, rows)
            try:
                columns = ", ".join(quote_identifier(c) for c, _, _ in described["columns"])
                con.execute(
                    f"INSERT INTO {quote_identifier(targets[table])} ({columns}) "
                    f"SELECT {columns} FROM {quote_identifier(name)}"
                )
            finally:
                con.unregister(name)
            summary.append({"table": targets[table], "source": table, "rows": rows.num_rows})
    return summary


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
