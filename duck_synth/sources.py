"""Where rows come from: a table or view name, a data file, or a query."""

from __future__ import annotations

import re

import duckdb

from .errors import SynthError

QUERY_START = re.compile(
    r"^\s*(\(|select\b|from\b|with\b|values\b|table\b|summarize\b|pivot\b|unpivot\b)", re.I
)
# a file DuckDB reads by its name alone (FROM 'x.parquet'), globs included
DATA_FILE = re.compile(r"\.(parquet|csv|tsv|json|jsonl|ndjson)(\.gz|\.zst)?$", re.I)


def read_source(con: duckdb.DuckDBPyConnection, text: str, what: str = "source") -> str:
    """SQL for a relation: a query, a data file DuckDB reads by name (Parquet, CSV, JSON; globs
    too), or the name of an existing table or view."""
    if not isinstance(text, str) or not text.strip():
        raise SynthError(f"{what} must be a table name or a query, got {text!r}")
    if QUERY_START.match(text):
        return text.strip().rstrip(";")
    if DATA_FILE.search(text.strip()):
        return "SELECT * FROM '" + text.strip().replace("'", "''") + "'"
    parts = [p.strip('"') for p in text.strip().split(".")]
    where = {
        1: "table_name = ?",
        2: "schema_name = ? AND table_name = ?",
        3: "database_name = ? AND schema_name = ? AND table_name = ?",
    }.get(len(parts))
    found = (
        where
        and con.execute(
            f"SELECT count(*) FROM (SELECT database_name, schema_name, table_name FROM duckdb_tables() "
            f"UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()) WHERE {where}",
            parts,
        ).fetchone()[0]
    )
    if not found:
        raise SynthError(f"{what}: unknown table or view '{text}'")
    return "SELECT * FROM " + ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def describe(
    con: duckdb.DuckDBPyConnection, relation_sql: str, what: str = "source"
) -> list[tuple[str, str]]:
    try:
        rows = con.execute(f"DESCRIBE {relation_sql}").fetchall()
    except duckdb.Error as error:
        raise SynthError(f"{what}: {str(error).splitlines()[0]}") from None
    return [(r[0], r[1]) for r in rows]
