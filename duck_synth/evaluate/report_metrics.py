"""The report's metric table: evaluate()'s rows when it works, else small shape scores of its own.

The fallback keeps the report independent of evaluate(): per-column KS complement (numbers,
dates) and TV complement (categories), computed in SQL, plus their mean.
"""

from __future__ import annotations

import json

import duckdb

from ..sqltext import quote_identifier
from .report_data import Column

PRIVACY_METRICS = ("dcr", "exact_copy", "nndr", "distance", "membership", "inference")


def metric_rows(
    con: duckdb.DuckDBPyConnection,
    real: str,
    synthetic: str,
    holdout: str | None,
    sqls: tuple[str, str],
    columns: list[Column],
    sensitive: str | None = None,
    sessions: tuple[str, str] | None = None,
) -> tuple[list[dict], str]:
    """(rows with metric, columns, value, detail; where they came from). ``sessions``:
    (session_key, order_by), for evaluate()'s session metrics."""
    names = [c.name for c in columns]
    reason = ""
    # With a holdout first; if the privacy part fails, fidelity alone is still worth showing.
    for given in [holdout, None] if holdout else [None]:
        try:
            from . import evaluate  # type: ignore[attr-defined]

            options = {"holdout": given, "columns": names}
            if given is not None and sensitive is not None:
                options["sensitive"] = sensitive
            if sessions is not None:
                options["session_key"], options["order_by"] = sessions
            options = json.dumps(options)
            rows = list(evaluate(con, real, synthetic, options))
        except ImportError:
            reason = "evaluate() is not available"
            break
        except Exception as error:  # any failure of evaluate() must not cost the whole report
            reason = f"evaluate() failed: {' '.join(str(error).split())[:200]}"
            continue
        if rows and all({"metric", "value"} <= set(r) for r in rows):
            return rows, "evaluate()" + (f" (without the holdout: {reason})" if reason else "")
        reason = "evaluate() returned no rows"
    return fallback_shape_scores(con, *sqls, columns), f"{reason}; the report's own shape scores"


def is_privacy(row: dict) -> bool:
    return any(key in str(row.get("metric", "")).lower() for key in PRIVACY_METRICS)


def fallback_shape_scores(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, columns: list[Column]
) -> list[dict]:
    rows = []
    for column in columns:
        if column.kind == "categorical":
            metric, value = (
                "shape_tv_complement",
                _tv_complement(con, real_sql, synthetic_sql, column),
            )
        else:
            metric, value = (
                "shape_ks_complement",
                _ks_complement(con, real_sql, synthetic_sql, column),
            )
        rows.append({"metric": metric, "columns": column.name, "value": value, "detail": None})
    scored = [r["value"] for r in rows if r["value"] is not None]
    mean = sum(scored) / len(scored) if scored else None
    detail = "mean of the per-column shape scores (NULLs left out)"
    return [{"metric": "column_shapes", "columns": "*", "value": mean, "detail": detail}, *rows]


def _ks_complement(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, column: Column
) -> float | None:
    """1 − max |ECDF_real − ECDF_synthetic|: rows weigh +1/n_real and −1/n_synthetic, and the
    running sum over the sorted values is the ECDF difference."""
    value = column.number
    row = con.execute(
        f"""
        WITH r AS (SELECT {value} AS v FROM ({real_sql}) WHERE {value} IS NOT NULL),
        s AS (SELECT {value} AS v FROM ({synthetic_sql}) WHERE {value} IS NOT NULL),
        weighted AS (SELECT v, 1.0 / (SELECT count(*) FROM r) AS w FROM r
                     UNION ALL SELECT v, -1.0 / (SELECT count(*) FROM s) FROM s),
        steps AS (SELECT v, sum(w) AS w FROM weighted GROUP BY v)
        SELECT 1 - max(abs(d)) FROM (SELECT sum(w) OVER (ORDER BY v) AS d FROM steps)
        """
    ).fetchone()
    return row[0]


def _tv_complement(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, column: Column
) -> float | None:
    """1 − ½ Σ |p_real − p_synthetic| over the non-NULL categories."""
    q = f"CAST({quote_identifier(column.name)} AS VARCHAR)"
    row = con.execute(
        f"""
        WITH r AS (SELECT {q} AS v, count(*) / sum(count(*)) OVER () AS p FROM ({real_sql})
                   WHERE {q} IS NOT NULL GROUP BY v),
        s AS (SELECT {q} AS v, count(*) / sum(count(*)) OVER () AS p FROM ({synthetic_sql})
              WHERE {q} IS NOT NULL GROUP BY v)
        SELECT 1 - 0.5 * sum(abs(coalesce(r.p, 0) - coalesce(s.p, 0)))
        FROM r FULL OUTER JOIN s USING (v)
        """
    ).fetchone()
    return row[0]
