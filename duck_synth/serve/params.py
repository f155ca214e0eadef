"""Bound parameters of a Flight SQL statement, written into its text as SQL literals.

The values become literals (never spliced text) so that the rewrite sees them: a bound value in
WHERE is pushed into generate() as if it had been typed. Placeholders are found with DuckDB's
own tokenizer, so a ``?`` inside a string, a quoted name or a comment is left alone, and they
are numbered as a client numbers them: ``?`` by its position in the text, ``$n`` by ``n``.
"""

from __future__ import annotations

import datetime
import decimal
import re

import duckdb

from .. import sqltext

_NUMBERED = re.compile(r"\$(\d+)")


def bind(query: str, parameter_rows: list[dict]) -> str:
    """``query`` with its ``?`` / ``$n`` placeholders replaced by the bound values.

    >>> bind("SELECT carat, cut FROM t WHERE cut = ? LIMIT ?", [{"0": "Fair", "1": 2}])
    "SELECT carat, cut FROM t WHERE cut = 'Fair' LIMIT 2"
    """
    if not parameter_rows:
        return query
    if len(parameter_rows) > 1:
        raise ValueError(
            f"a query takes one row of parameters, got {len(parameter_rows)} "
            "(use executemany for updates)"
        )
    values = list(parameter_rows[0].values())
    pieces, end, position = [], 0, 0
    for start, length, number in placeholders(query):
        if number is None:
            index, position = position, position + 1
        else:
            index = number - 1
        if not 0 <= index < len(values):
            raise ValueError(f"the query has more placeholders than the {len(values)} bound values")
        pieces += [query[end:start], _spaced(query, start, length, literal(values[index]))]
        end = start + length
    return "".join([*pieces, query[end:]])


def placeholders(query: str) -> list[tuple[int, int, int | None]]:
    """(start, length, n) of each placeholder in text order; n is None for ``?``."""
    try:
        tokens = duckdb.tokenize(query)
    except (duckdb.Error, RuntimeError) as error:
        raise ValueError(f"cannot bind parameters: {str(error).splitlines()[0]}") from None
    found = []
    for start, kind in tokens:
        if kind != duckdb.token_type.operator:
            continue
        if query.startswith("?", start):
            found.append((start, 1, None))
        elif numbered := _NUMBERED.match(query, start):
            found.append((start, len(numbered.group(0)), int(numbered.group(1))))
    return found


def _spaced(query: str, start: int, length: int, text: str) -> str:
    """``text`` with a space where it would run into its neighbours (``x -?`` with -1 must not
    become the comment ``x --1``; ``?AND`` must not become ``2AND``)."""
    before = query[start - 1] if start > 0 else " "
    after = query[start + length] if start + length < len(query) else " "
    if not (before.isspace() or before in "(,="):
        text = " " + text
    if not (after.isspace() or after in "),;"):
        text = text + " "
    return text


def literal(value) -> str:
    """A bound Python value as a DuckDB literal of its type."""
    if isinstance(value, datetime.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, datetime.time):
        return f"TIME '{value.isoformat()}'"
    if isinstance(value, decimal.Decimal):
        return f"{value}::DECIMAL"
    if isinstance(value, bytes):
        return "'" + "".join(f"\\x{b:02x}" for b in value) + "'::BLOB"
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return f"({sqltext.sql_literal(value)})"  # never a ``--`` comment after a minus
    return sqltext.sql_literal(value)
