"""Per-column fidelity in SQL: shapes (as SDMetrics' ColumnShapes), histograms, NULL shares.

Every score is a group-by over the prepared tables (see columns.py), so it scales with DuckDB:

- KSComplement (continuous columns): 1 - max |ECDF_real - ECDF_synthetic| over the union of
  values, NULLs left out (scipy's ks_2samp statistic).
- TVComplement (categorical, boolean): 1 - 0.5 * sum |p_real - p_synthetic| over the union of
  categories, NULLs left out.
- histogram similarity: TVComplement of the binned marginals (10 bins over the real range; see
  codes.py).
- NULL-share difference: |share_real - share_synthetic|.
"""

from __future__ import annotations

import duckdb

from .columns import Column, SideStats

# Both sides unpivoted into (side, col, v), then value counts per column and side.
_COUNTS_SQL = """
WITH side_values AS (
    SELECT 0 AS side, col, v FROM (UNPIVOT (SELECT {items} FROM {real}) ON {keys}
        INTO NAME col VALUE v)
    UNION ALL
    SELECT 1 AS side, col, v FROM (UNPIVOT (SELECT {items} FROM {synthetic}) ON {keys}
        INTO NAME col VALUE v)
), counts AS (
    SELECT col, v, count(*) FILTER (WHERE side = 0) AS nr, count(*) FILTER (WHERE side = 1) AS ns
    FROM side_values GROUP BY col, v
)
"""

_KS_SQL = (
    _COUNTS_SQL
    + """, cdf AS (
    SELECT col,
        sum(nr) OVER running / sum(nr) OVER whole AS fr,
        sum(ns) OVER running / sum(ns) OVER whole AS fs
    FROM counts
    WINDOW running AS (PARTITION BY col ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        whole AS (PARTITION BY col)
)
SELECT col, 1 - max(abs(fr - fs)) FROM cdf GROUP BY col
"""
)

_TV_SQL = (
    _COUNTS_SQL
    + """, shares AS (
    SELECT col,
        nr / sum(nr) OVER (PARTITION BY col) AS pr,
        ns / sum(ns) OVER (PARTITION BY col) AS ps
    FROM counts
)
SELECT col, 1 - 0.5 * sum(abs(pr - ps)) FROM shares GROUP BY col
"""
)


def _per_column(
    con: duckdb.DuckDBPyConnection, template: str, real: str, synthetic: str, exprs: dict[str, str]
) -> dict[str, float]:
    """Run a per-column template over ``{key: expression}``; returns {key: score}."""
    if not exprs:
        return {}
    items = ", ".join(f"{expr} AS {key}" for key, expr in exprs.items())
    sql = template.format(items=items, keys=", ".join(exprs), real=real, synthetic=synthetic)
    return {key: float(score) for key, score in con.execute(sql).fetchall()}


def ks_complements(con, real: str, synthetic: str, slots: list[str]) -> dict[str, float]:
    return _per_column(con, _KS_SQL, real, synthetic, {s: s for s in slots})


def tv_complements(con, real: str, synthetic: str, exprs: dict[str, str]) -> dict[str, float]:
    """``exprs``: {key: UBIGINT code column of the codes tables}."""
    return _per_column(con, _TV_SQL, real, synthetic, exprs)


def _both_present(column: Column, real: SideStats, synthetic: SideStats) -> bool:
    # SDMetrics gives NaN (left out of the mean) when a side has no value in the column
    return real.present[column.slot] > 0 and synthetic.present[column.slot] > 0


def column_rows(
    con: duckdb.DuckDBPyConnection,
    sides: tuple[str, str],
    codes: tuple[str, str],
    columns: list[Column],
    real_stats: SideStats,
    synthetic_stats: SideStats,
) -> list[dict]:
    """One column_shape, histogram_similarity and null_share_difference row per column.

    ``sides``: the prepared (real, synthetic) tables; ``codes``: their codes tables.
    """
    usable = [c for c in columns if _both_present(c, real_stats, synthetic_stats)]
    ks = ks_complements(con, *sides, [c.slot for c in usable if c.continuous])
    tv = tv_complements(con, *codes, {c.slot: c.code for c in usable if not c.continuous})
    histogram = tv_complements(con, *codes, {c.slot: c.code for c in usable if c.continuous})
    rows = []
    for c in columns:
        method = "KSComplement" if c.continuous else "TVComplement"
        shape = (ks if c.continuous else tv).get(c.slot)
        rows.append(metric_row("column_shape", c.name, shape, {"method": method, "kind": c.kind}))
    for c in columns:
        value = histogram.get(c.slot) if c.continuous else tv.get(c.slot)
        bins = "10 equal-width over the real range" if c.continuous else "categories"
        rows.append(metric_row("histogram_similarity", c.name, value, {"bins": bins}))
    for c in columns:
        share_real = 1 - real_stats.present[c.slot] / real_stats.rows
        share_synthetic = 1 - synthetic_stats.present[c.slot] / synthetic_stats.rows
        rows.append(
            metric_row(
                "null_share_difference",
                c.name,
                abs(share_real - share_synthetic),
                {"real": share_real, "synthetic": share_synthetic},
            )
        )
    return rows


def metric_row(metric: str, columns: str, value: float | None, detail: dict) -> dict:
    """One output row; NaN becomes NULL."""
    if value is not None and value != value:
        value = None
    return {"metric": metric, "columns": columns, "value": value, "detail": detail}


def mean(values: list[float | None]) -> float | None:
    """Mean of the known values (NULL/NaN left out, as pandas' mean); None when none is known."""
    known = [v for v in values if v is not None and v == v]
    return sum(known) / len(known) if known else None
