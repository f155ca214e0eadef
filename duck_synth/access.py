"""What a caller may run, decided on DuckDB's parse of the statement, never by binding it
(binding runs duck_synth's UDFs: a training, a generation).

A read-only caller may run queries that read the database's tables and views and call the
functions that read or generate (generate, evaluate, describe_model...). It may not write,
attach, set, load, or reach a file or the network by any path: a table function not on the list
below, a file named as a table (``FROM 'x.csv'``, a replacement scan), or one of duck_synth's
writing functions. The same rule checks the statement a client sends and, inside the UDFs, each
query string that statement carries (a ``source``, ``seed_rows``, ``filter``...), with the
caller's rights read from caller.py, so a string computed at run time or bound as a parameter
is checked as it is run.
"""

from __future__ import annotations

import json
import os
import re

import duckdb

from . import caller, sqltext, surface
from .errors import SynthError

# DuckDB table functions that read neither files nor the network, nor change anything.
SAFE_TABLE_FUNCTIONS = {
    "range",
    "generate_series",
    "unnest",
    "repeat",
    "repeat_row",
    "json_each",
    "json_tree",
    "test_all_types",
    "duckdb_columns",
    "duckdb_constraints",
    "duckdb_databases",
    "duckdb_dependencies",
    "duckdb_functions",
    "duckdb_indexes",
    "duckdb_keywords",
    "duckdb_schemas",
    "duckdb_sequences",
    "duckdb_tables",
    "duckdb_types",
    "duckdb_views",
    "pragma_table_info",
    "pragma_show",
    "pragma_version",
    "pragma_collations",
    "pragma_platform",
}
# Scalar functions a read-only caller may not call: they change state, or run SQL text.
DENIED_SCALARS = {"query", "query_table", "nextval", "setval", "getenv", "write_log"}
# duck_synth's own scalar UDFs a caller may call directly (the keyed transforms, score()'s).
SAFE_UDFS = {*surface.TRANSFORM_UDFS, surface.SCORE_UDF}
_EXPLAIN = re.compile(r"^\s*explain\s+(analy[sz]e\s+)?", re.I)


class Refused(SynthError):
    """A statement the caller may not run (one line, naming the culprit)."""


def check_statement(con: duckdb.DuckDBPyConnection, sql: str, rights: caller.Rights) -> None:
    """Raise Refused when a client with ``rights`` may not run the statement(s) ``sql``."""
    if not rights.read_only:
        return
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise Refused(
            f"read-only token: cannot read the statement: {sqltext.first_line(error)}"
        ) from None
    for statement in statements:
        _check_read_only(con, statement.query, statement.type, rights.deployments)


def check_query(con: duckdb.DuckDBPyConnection, query: str, what: str) -> None:
    """Raise Refused when the caller running this thread may not run the one query ``query``
    (a string argument of a duck_synth function)."""
    rights = caller.rights()
    if not rights.read_only:
        return
    try:
        _check_read_only(con, query, duckdb.StatementType.SELECT, rights.deployments)
    except Refused as refused:
        raise Refused(f"{what}: {refused}") from None


def check_path(path: str, what: str, write: bool = False) -> str:
    """``path`` made absolute when the caller may read (or write) it; Refused otherwise."""
    rights = caller.rights()
    if not isinstance(path, str) or not path:
        raise SynthError(f"{what}: give a file path, got {path!r}")
    full = os.path.realpath(path)
    if rights.read_only:
        raise Refused(f"read-only token: {what} may not {'write' if write else 'read'} files")
    if rights.folders is None:
        return full
    for folder in rights.folders:
        root = os.path.realpath(folder)
        if full == root or full.startswith(root.rstrip(os.sep) + os.sep):
            return full
    raise Refused(f"{what}: '{path}' is outside the folders this server allows (--allow-files)")


def _check_read_only(con, statement: str, kind, deployments: tuple[str, ...] | None) -> None:
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _EXPLAIN.sub("", statement, count=1)
        inner_statements = con.extract_statements(inner)
        if len(inner_statements) != 1:
            raise Refused("read-only token: EXPLAIN of one query only")
        statement, kind = inner_statements[0].query, inner_statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = getattr(kind, "name", str(kind))
        raise Refused(f"read-only token: only queries may run here, not {name} statements")
    parsed = json.loads(
        con.execute("SELECT json_serialize_sql(?::VARCHAR)", [statement]).fetchone()[0]
    )
    if parsed.get("error"):
        raise Refused(
            f"read-only token: only queries may run here ({parsed.get('error_message', '')})"
        )
    found = _Found()
    _walk(parsed.get("statements", []), frozenset(), found)
    if deployments is not None:
        _check_deployment(con, found, deployments)
    workflows = _workflow_names(con)
    # duck_synth's own functions: as the SQL surface declares them (reads or writes)
    reading, writing = surface.reading(), surface.writing()
    for name in sorted(found.table_functions):
        if name in writing:
            raise Refused(f"read-only token: {name}() is not allowed (it writes)")
        if name not in reading | SAFE_TABLE_FUNCTIONS | workflows:
            raise Refused(
                f"read-only token: table function {name}() is not allowed (it may read files "
                "or change the database)"
            )
    for name in sorted(found.functions):
        if name in DENIED_SCALARS or name in writing:
            raise Refused(f"read-only token: {name}() is not allowed")
        if name.startswith("synth_") and name not in SAFE_UDFS:
            raise Refused(f"read-only token: {name}() is duck_synth's own; call its macro")
    unknown = _unknown_relations(con, found.tables)
    if unknown:
        raise Refused(
            f"read-only token: '{unknown[0]}' is not a table or view of the database (files "
            "and other sources are not readable with this token)"
        )


def _check_deployment(con, found: _Found, deployments: tuple[str, ...]) -> None:
    """A deployment token calls infer() on its pipelines, named by a literal, and reads
    nothing else: no table, no other table function, no macro (a macro may read a table; its
    input rows are given inline, infer() refuses a query or a table name)."""
    allowed = ", ".join(deployments) or "none"
    only = f"deployment token: only infer() on its pipelines ({allowed}), not"
    for name in sorted(found.table_functions - {"infer"}):
        raise Refused(f"{only} {name}()")
    for catalog, schema, name in sorted(found.tables):
        raise Refused(f"{only} '{'.'.join(p for p in (catalog, schema, name) if p)}'")
    macros = _macros(con) & found.functions
    if macros:
        raise Refused(f"{only} {sorted(macros)[0]}()")
    for called in found.inferred:
        if not isinstance(called, str):
            raise Refused("deployment token: name the pipeline infer() calls by a string literal")
        if called not in deployments:
            raise Refused(f"deployment token: infer() on '{called}' is not allowed ({allowed})")


def _macros(con) -> set[str]:
    """The scalar macros the database holds (duck_synth's and users'): a macro's body may read
    what its caller could not name."""
    rows = con.execute(
        "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
        "WHERE function_type = 'macro' AND NOT internal"
    ).fetchall()
    return {r[0] for r in rows}


class _Found:
    def __init__(self):
        self.functions: set[str] = set()
        self.table_functions: set[str] = set()
        self.tables: set[tuple[str, str, str]] = set()
        self.inferred: list[object] = []  # the first argument of each infer() call


def _walk(node, ctes: frozenset, found: _Found) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, found)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        names = {entry.get("key", "").lower() for entry in cte_map.get("map", [])}
        ctes = ctes | names
    kind = node.get("type")
    if kind == "BASE_TABLE":
        catalog, schema = node.get("catalog_name") or "", node.get("schema_name") or ""
        name = node.get("table_name") or ""
        if catalog or schema or name.lower() not in ctes:
            found.tables.add((catalog, schema, name))
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        found.table_functions.add(name)
        if name == "infer":
            found.inferred.append(_literal(function.get("children") or [None]))
        _walk(function.get("children", []), ctes, found)
        for key, value in node.items():
            if key != "function":
                _walk(value, ctes, found)
        return
    elif kind == "SHOW_REF" and node.get("query") is None:
        shown = (node.get("table_name") or "").strip('"').lower()
        if shown not in ("tables", "databases", "schemas", "__show_tables_expanded"):
            found.tables.add(("", "", node.get("table_name") or ""))
    name = node.get("function_name")
    if isinstance(name, str) and node.get("class") in ("FUNCTION", "WINDOW", "AGGREGATE", None):
        found.functions.add(name.lower())
    for value in node.values():
        _walk(value, ctes, found)


def _literal(arguments: list) -> object:
    """A constant string first argument, else the node (which no pipeline name equals)."""
    first = arguments[0] if arguments else None
    if isinstance(first, dict) and first.get("class") == "CONSTANT" and not first.get("alias"):
        value = first.get("value") or {}
        if (value.get("type") or {}).get("id") == "VARCHAR" and not value.get("is_null"):
            return value.get("value")
    return first


def _unknown_relations(con, tables: set[tuple[str, str, str]]) -> list[str]:
    if not tables:
        return []
    known = con.execute(
        "SELECT lower(database_name), lower(schema_name), lower(table_name) FROM duckdb_tables() "
        "UNION ALL SELECT lower(database_name), lower(schema_name), lower(view_name) "
        "FROM duckdb_views()"
    ).fetchall()
    unknown = []
    for catalog, schema, name in sorted(tables):
        c, s, n = catalog.lower(), schema.lower(), name.lower()
        if not any(
            kn == n
            and (
                (not c and not s)
                or (not c and (ks == s or (kc == s and ks == "main")))
                or (c and kc == c and (not s or ks == s))
            )
            for kc, ks, kn in known
        ):
            unknown.append(".".join(p for p in (catalog, schema, name) if p))
    return unknown


def _workflow_names(con) -> set[str]:
    try:
        return {r[0].lower() for r in con.execute("SELECT name FROM synth.workflows").fetchall()}
    except duckdb.Error:
        return set()
