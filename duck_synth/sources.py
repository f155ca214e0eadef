"""Where rows come from: a table or view name, a data file, a query, or (in the caller's own
process) a DataFrame or Arrow table.

Every form ends as one query checked against the caller's rights (sqltext.query): a query
string must be exactly one statement, a file is read by name only where the caller may read
files, and a name must be an existing table or view (quoted, never pasted), or a Python object
of a local session's caller (``python_objects``), never reachable from a server's clients.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import duckdb

from . import sqltext
from .errors import SynthError

QUERY_START = re.compile(
    r"^\s*(\(|select\b|from\b|with\b|values\b|table\b|summarize\b|pivot\b|unpivot\b|describe\b)",
    re.I,
)
# a file DuckDB reads by its name alone (FROM 'x.parquet'), globs included
DATA_FILE = re.compile(r"\.(parquet|csv|tsv|json|jsonl|ndjson)(\.gz|\.zst)?$", re.I)

_scope = threading.local()
_names = itertools.count(1)


class PythonScope:
    """The Python objects a statement of a local session may read by name: those the session
    registered, then those of the caller's frames (innermost first, locals then globals, as
    DuckDB's own replacement scan looks). The UDFs run deep inside DuckDB, under frames of
    duck_synth, which are skipped: a name never finds duck_synth's own variables."""

    def __init__(self, registered: dict[str, object], frame: FrameType | None):
        self.registered = registered
        self.frame = frame

    def find(self, name: str) -> object | None:
        if name in self.registered:
            return self.registered[name]
        frame = self.frame
        while frame is not None:
            for namespace in (frame.f_locals, frame.f_globals):
                found = namespace.get(name)
                if found is not None and readable_object(found):
                    return found
            frame = frame.f_back
        return None


def caller_frame() -> FrameType | None:
    """The innermost frame outside duck_synth: the code that called the session."""
    frame = sys._getframe(1)
    while frame is not None and _ours(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
    return frame


def _ours(module: str) -> bool:
    return module == "duck_synth" or module.startswith("duck_synth.")


@contextlib.contextmanager
def python_objects(scope: PythonScope | None) -> Iterator[None]:
    """Let the statements run in the block read ``scope``'s objects by name (None: none, as
    on a server). The UDFs run on the thread that runs the statement, so a thread-local
    reaches them."""
    previous = getattr(_scope, "current", None)
    _scope.current = scope
    try:
        yield
    finally:
        _scope.current = previous


def readable_object(value: object) -> bool:
    """A pandas or polars DataFrame or an Arrow table (each can be read more than once)."""
    module = type(value).__module__.split(".")[0]
    kind = type(value).__name__
    return (module, kind) in {("pandas", "DataFrame"), ("polars", "DataFrame")} or (
        module == "pyarrow" and kind in {"Table", "RecordBatch"}
    )


def _python_object(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """SQL reading the Python object ``name`` of the running statement's scope, registered on
    ``con`` (the UDF's own cursor) under a fresh name; None when there is no such object."""
    scope = getattr(_scope, "current", None)
    found = scope.find(name) if scope is not None else None
    if found is None:
        return None
    if type(found).__module__.split(".")[0] == "polars":
        found = found.to_arrow()  # DuckDB scans Arrow without copying
    view = f"duck_synth_python_{next(_names)}"
    con.register(view, found)
    return "SELECT * FROM " + sqltext.quote_identifier(view)


def read_source(con: duckdb.DuckDBPyConnection, text: str, what: str = "source") -> str:
    """SQL for a relation: a query, a data file DuckDB reads by name (Parquet, CSV, JSON; globs
    too), or the name of an existing table or view."""
    if not isinstance(text, str) or not text.strip():
        raise SynthError(f"{what} must be a table name or a query, got {text!r}")
    if QUERY_START.match(text):
        return sqltext.query(con, text, what)
    if DATA_FILE.search(text.strip()):
        return sqltext.query(con, "SELECT * FROM " + sqltext.quote_literal(text.strip()), what)
    parts = sqltext.name_parts(text)
    if parts is None:
        raise SynthError(f"{what}: unknown table or view '{text}'")
    database, schema, table = parts
    found = con.execute(
        "SELECT count(*) FROM (SELECT database_name, schema_name, table_name FROM duckdb_tables() "
        "UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()) "
        "WHERE table_name = ? AND (? IS NULL OR schema_name = ?) "
        "AND (? IS NULL OR database_name = ?)",
        [table, schema, schema, database, database],
    ).fetchone()[0]
    if not found:
        python = _python_object(con, table) if database is None and schema is None else None
        if python is not None:
            return python
        raise SynthError(f"{what}: unknown table or view '{text}'")
    relation = "SELECT * FROM " + ".".join(
        sqltext.quote_identifier(p) for p in parts if p is not None
    )
    return sqltext.query(con, relation, what)  # checked as the caller may read it


def describe(
    con: duckdb.DuckDBPyConnection, relation_sql: str, what: str = "source"
) -> list[tuple[str, str]]:
    """The (name, type) of each column of a relation made by ``read_source``."""
    try:
        rows = con.execute(f"DESCRIBE ({relation_sql})").fetchall()
    except duckdb.Error as error:
        raise SynthError(f"{what}: {sqltext.first_line(error)}") from None
    return [(r[0], r[1]) for r in rows]


def listed_names(text: str) -> list[str] | None:
    """The table names of a list argument (``['planes', 'flights']`` reaches a UDF as the JSON
    '["planes","flights"]', see surface/render.py), or None for any other source."""
    if not isinstance(text, str) or not text.lstrip().startswith("["):
        return None
    try:
        names = json.loads(text)
    except ValueError:
        raise SynthError(f"a list of table names is written ['a', 'b'], got {text!r}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SynthError(f"a list of table names must hold names, got {text!r}")
    return names
