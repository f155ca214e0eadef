"""The one place where text becomes SQL.

Values become SQL only through ``quote_identifier``, ``quote_literal`` and ``sql_literal``;
type names read from a model file or the catalog only through ``duck_type`` (parsed by DuckDB's
own type grammar and written back by it, never pasted). A string a user passes as a query
(``source``, ``seed_rows``...) goes through ``query``: DuckDB's parser must find exactly one
statement, a query, which is then checked against the caller's rights (access.py) and nested
as that query. A predicate (``filter``, ``condition``, ``constraints``) goes through
``predicate``: parsed as one expression by sqlglot and written back from its tree.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from .errors import SynthError

# Resolved at import: sqlglot loads a dialect lazily, which cost the first statement about 0.2 s.
DUCKDB = Dialect.get_or_raise("duckdb")


def quote_identifier(name: str) -> str:
    if not isinstance(name, str):
        raise SynthError(f"a name must be text, got {type(name).__name__}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def sql_literal(value) -> str:
    """A Python value as a DuckDB literal (lists as lists, dicts as structs)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"'{value}'::DOUBLE"
        return repr(value)
    if isinstance(value, str):
        return quote_literal(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{quote_literal(k)}: {sql_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise SynthError(f"cannot pass {type(value).__name__} as a SQL argument")


_types_lock = threading.Lock()
_types_con: duckdb.DuckDBPyConnection | None = None
MAX_TYPE_LENGTH = 100_000  # an ENUM of many values is long; a type longer than this is not


def duck_type(text: str, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """``text`` as DuckDB writes the type it parses to; SynthError when it is not one type.
    With ``con``, the types that database defines (``CREATE TYPE``) are known too.

    >>> duck_type("decimal(10, 2)")
    'DECIMAL(10,2)'
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TYPE_LENGTH:
        raise SynthError(f"not a DuckDB type: {_shown(text)}")
    if con is None:
        return _builtin_type(text)
    try:
        return str(con.type(text))
    except (duckdb.Error, TypeError, ValueError):
        raise SynthError(f"not a DuckDB type: {_shown(text)}") from None


@functools.lru_cache(maxsize=4096)
def _builtin_type(text: str) -> str:
    global _types_con
    with _types_lock:
        if _types_con is None:
            _types_con = duckdb.connect()
        try:
            return str(_types_con.type(text))
        except (duckdb.Error, TypeError, ValueError):
            raise SynthError(f"not a DuckDB type: {_shown(text)}") from None


def cast(expression: str, type_text: str) -> str:
    """``CAST(expression AS type)`` with the type validated by ``duck_type``."""
    return f"CAST({expression} AS {duck_type(type_text)})"


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_statement(con: duckdb.DuckDBPyConnection, text: str, what: str):
    """DuckDB's parse of ``text``, which must be exactly one statement."""
    if not isinstance(text, str) or not text.strip():
        raise SynthError(f"{what}: give a query, got {_shown(text)}")
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as error:
        raise SynthError(f"{what}: {first_line(error)}") from None
    if len(statements) != 1:
        raise SynthError(
            f"{what}: give exactly one query, got {len(statements)} statements"
            if statements
            else f"{what}: give a query, got none"
        )
    return statements[0]


def query(con: duckdb.DuckDBPyConnection, text: str, what: str) -> str:
    """``text`` as one query checked against the caller's rights, ready to nest: ``FROM ({q})``.

    The statement's own text (as DuckDB's parser cut it) ends with a newline, so a trailing
    line comment cannot swallow what follows it.
    """
    from . import access

    statement = one_statement(con, text, what)
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name if hasattr(statement.type, "name") else str(statement.type)
        raise SynthError(f"{what}: must be a query (SELECT / FROM ...), not a {kind} statement")
    body = statement.query.strip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    access.check_query(con, body, what)
    return body + "\n"


def predicate(con: duckdb.DuckDBPyConnection | None, text: str, what: str) -> exp.Expression:
    """``text`` parsed as one boolean expression (sqlglot), checked against the caller's rights
    as the query ``SELECT 1 WHERE <it>``; write it back with ``.sql(DUCKDB)``."""
    from . import access

    if not isinstance(text, str) or not text.strip():
        raise SynthError(f"{what}: give a SQL predicate, got {_shown(text)}")
    try:
        tree = exp.maybe_parse(text, dialect=DUCKDB, into=exp.Condition)
    except sqlglot.errors.SqlglotError as error:
        raise SynthError(
            f"{what} {_shown(text)} is not a valid SQL predicate: {first_line(error)}"
        ) from None
    if con is not None:
        access.check_query(con, f"SELECT 1 WHERE ({tree.sql(DUCKDB)})", what)
    return tree


def name_parts(text: str) -> tuple[str | None, str | None, str] | None:
    """(database, schema, name) of a dotted name, as bound parameters for a catalog lookup;
    None when it has more than three parts."""
    parts = [part.strip('"') for part in text.strip().split(".")]
    if len(parts) > 3:
        return None
    database, schema, name = [None] * (3 - len(parts)) + parts
    return database, schema, name


@contextlib.contextmanager
def quiet_sqlglot():
    """sqlglot without its warnings: DuckDB syntax it does not know is passed through as is."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
