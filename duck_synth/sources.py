"""Where rows come from: a table or view name, a data file, or a query.

Every form ends as one query checked against the caller's rights (sqltext.query): a query
string must be exactly one statement, a file is read by name only where the caller may read
files, and a name must be an existing table or view (quoted, never pasted).
"""

from __future__ import annotations

import re

import duckdb

from . import sqltext
from .errors import SynthError

QUERY_START = re.compile(
    r"^\s*(\(|select\b|from\b|with\b|values\b|table\b|summarize\b|pivot\b|unpivot\b|describe\b)",
    re.I,
)
# a file DuckDB reads by its name alone (FROM 'x.parquet'), globs included
DATA_FILE = re.compile(r"\.(parquet|csv|tsv|json|jsonl|ndjson)(\.gz|\.zst)?$", re.I)


def read_source(con: duckdb.DuckDBPyConnection, text: str, what: str = "source") -> str:
    """SQL for a relation: a query, a data file DuckDB reads by name (Parquet, CSV, JSON; globs
    too), or the name of an existing table or view."""
    if not isinstance(text, str) or not text.strip():
        raise SynthError(f"{what} must be a table name or a query, got {text!r}")
    if QUERY_START.match(text):
        return sqltext.query(con, text, what)
    if DATA_FILE.search(text.strip()):
        return sqltext.query(con, "SELECT * FROM " + sqltext.quote_literal(text.strip()), what)
    parts = [p.strip('"') for p in text.strip().split(".")]
    if len(parts) > 3:
        raise SynthError(f"{what}: unknown table or view '{text}'")
    database, schema, table = [None] * (3 - len(parts)) + parts
    found = con.execute(
        "SELECT count(*) FROM (SELECT database_name, schema_name, table_name FROM duckdb_tables() "
        "UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()) "
        "WHERE table_name = ? AND (? IS NULL OR schema_name = ?) "
        "AND (? IS NULL OR database_name = ?)",
        [table, schema, schema, database, database],
    ).fetchone()[0]
    if not found:
        raise SynthError(f"{what}: unknown table or view '{text}'")
    return "SELECT * FROM " + ".".join(sqltext.quote_identifier(p) for p in parts)


def describe(
    con: duckdb.DuckDBPyConnection, relation_sql: str, what: str = "source"
) -> list[tuple[str, str]]:
    """The (name, type) of each column of a relation made by ``read_source``."""
    try:
        rows = con.execute(f"DESCRIBE ({relation_sql})").fetchall()
    except duckdb.Error as error:
        raise SynthError(f"{what}: {sqltext.first_line(error)}") from None
    return [(r[0], r[1]) for r in rows]
