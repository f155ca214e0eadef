"""Free-text columns: judged by their texts, not as categories.

A VARCHAR column of the real data that looks like free text (mostly distinct values that are
sentences or long: the rule train() uses, encoding/text.py) gets three rows instead of a
category shape, where a category's TVComplement would say nothing (every value is new):

- text_length: KSComplement of the texts' lengths (NULLs left out);
- text_trigrams: TVComplement of the character 3-gram frequencies;
- exact_copies: the share of synthetic texts that are some real text verbatim.

With a holdout, each row's detail also has the holdout's own figure against the real data: the
ceiling for the first two, and the overlap that unseen real texts have for the third.
"""

from __future__ import annotations

import contextlib

import duckdb

from ..encoding.text import looks_like_text
from .columns import Column, prepare
from .fidelity import metric_row

_SHAPE_SQL = """
SELECT count({c}), count(DISTINCT {c}), coalesce(avg(length({c})), 0),
    coalesce(avg(CASE WHEN regexp_matches({c}, '\\s') THEN 1 ELSE 0 END), 0)
FROM {table}
"""
_LENGTH_SQL = """
WITH lengths AS (
    SELECT 0 AS side, length({c}) AS v FROM {real} WHERE {c} IS NOT NULL
    UNION ALL SELECT 1, length({c}) FROM {other} WHERE {c} IS NOT NULL
), counts AS (
    SELECT v, count(*) FILTER (WHERE side = 0) AS nr, count(*) FILTER (WHERE side = 1) AS ns
    FROM lengths GROUP BY v
), cdf AS (
    SELECT sum(nr) OVER running / sum(nr) OVER () AS fr, sum(ns) OVER running / sum(ns) OVER () AS fs
    FROM counts WINDOW running AS (ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT 1 - max(abs(fr - fs)) FROM cdf
"""
_TRIGRAM_SQL = """
WITH grams AS (
    SELECT side, substr(t, i, 3) AS g FROM (
        SELECT 0 AS side, {c} AS t, unnest(range(1, length({c}) - 1)) AS i FROM {real}
        UNION ALL
        SELECT 1, {c}, unnest(range(1, length({c}) - 1)) FROM {other}
    )
), counts AS (
    SELECT g, count(*) FILTER (WHERE side = 0) AS nr, count(*) FILTER (WHERE side = 1) AS ns
    FROM grams GROUP BY g
)
SELECT 1 - 0.5 * sum(abs(nr / (SELECT sum(nr) FROM counts) - ns / (SELECT sum(ns) FROM counts)))
FROM counts
"""
_COPIES_SQL = """
SELECT avg(CASE WHEN o.{c} IN (SELECT {c} FROM {real}) THEN 1.0 ELSE 0.0 END)
FROM {other} AS o WHERE o.{c} IS NOT NULL
"""
METRICS = (
    ("text_length", _LENGTH_SQL),
    ("text_trigrams", _TRIGRAM_SQL),
    ("exact_copies", _COPIES_SQL),
)


def text_columns(con: duckdb.DuckDBPyConnection, real: str, columns: list[Column]) -> list[Column]:
    """The VARCHAR columns of the prepared real table that are free text."""
    found = []
    for column in columns:
        if column.kind == "categorical" and column.duck_type == "VARCHAR":
            shape = con.execute(_SHAPE_SQL.format(c=column.slot, table=real)).fetchone()
            if looks_like_text(*shape):
                found.append(column)
    return found


def text_rows(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    texts: list[Column],
    holdout_sql: str | None,
    sample: int | None,
    seed: int,
) -> list[dict]:
    """The text rows of each text column (prepared tables ``real`` and ``synthetic``)."""
    if not texts:
        return []
    holdout = prepare(con, holdout_sql, texts, "holdout", sample, seed) if holdout_sql else None
    rows = []
    try:
        for column in texts:
            for metric, sql in METRICS:
                query = sql.format(c=column.slot, real=real, other=synthetic)
                value = con.execute(query).fetchone()[0]
                detail = {"kind": "text"}
                if holdout is not None:
                    query = sql.format(c=column.slot, real=real, other=holdout)
                    detail["holdout"] = con.execute(query).fetchone()[0]
                rows.append(metric_row(metric, column.name, value, detail))
    finally:
        if holdout is not None:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {holdout}")
    return rows
