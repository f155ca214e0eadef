"""Column-pair fidelity in SQL: pair trends (as SDMetrics' ColumnPairTrends) and mutual information.

- CorrelationSimilarity (two continuous columns): 1 - |pearson_real - pearson_synthetic| / 2.
- ContingencySimilarity (otherwise): 1 - TV distance of the joint distribution, NULL a category
  of its own, a continuous column discretised as SDMetrics does (see columns.sdmetrics_bin_sql).
- As in SDMetrics' QualityReport, only pairs that are related in the real data count towards the
  pair_trends score: |pearson| > 0.5, or Cramér's V > 0.3 for contingency pairs. Every pair still
  gets its row, with ``meets_threshold`` in the detail.
- mutual-information similarity: 1 - |NMI_real - NMI_synthetic| (NMI = 2 MI / (H_a + H_b)) on the
  columns discretised with the same 10 bins over the real range on both sides.
"""

from __future__ import annotations

import itertools
import math

import duckdb

from .. import caller
from .codes import finite
from .columns import Column, SideStats
from .fidelity import metric_row

CORRELATION_THRESHOLD = 0.5  # SDMetrics' DEFAULT_REAL_CORRELATION_THRESHOLD
ASSOCIATION_THRESHOLD = 0.3  # SDMetrics' DEFAULT_REAL_ASSOCIATION_THRESHOLD
PAIRS_PER_QUERY = 100

Pair = tuple[Column, Column]

# Per pair: TV distance of the joint shares, and the real table's sum of O^2 / (R_a C_b) and
# number of row/column categories (Cramér's V: chi2 = N (sum - 1)).
_CONTINGENCY_SQL = """
WITH cells AS (
    SELECT pair, a, b,
        coalesce(sum(n) FILTER (WHERE side = 0), 0) AS nr,
        coalesce(sum(n) FILTER (WHERE side = 1), 0) AS ns
    FROM ({cells}) GROUP BY pair, a, b
), margins AS (
    SELECT *, sum(nr) OVER (PARTITION BY pair, a) AS ra, sum(nr) OVER (PARTITION BY pair, b) AS cb
    FROM cells
)
SELECT pair,
    1 - 0.5 * sum(abs(nr / {real_rows} - ns / {synthetic_rows})) AS score,
    sum(CASE WHEN nr > 0 THEN nr::DOUBLE * nr / (ra::DOUBLE * cb) END) AS ratio_sum,
    count(DISTINCT [a]) FILTER (WHERE nr > 0) AS a_levels,
    count(DISTINCT [b]) FILTER (WHERE nr > 0) AS b_levels
FROM margins GROUP BY pair
"""

# Per side and pair: mutual information and both entropies (natural log).
_INFORMATION_SQL = """
WITH cells AS (SELECT side, pair, a, b, n::DOUBLE AS n FROM ({cells})),
parts AS (
    SELECT side, pair, n, sum(n) OVER (PARTITION BY side, pair) AS total,
        sum(n) OVER (PARTITION BY side, pair, a) AS ra,
        sum(n) OVER (PARTITION BY side, pair, b) AS cb
    FROM cells
)
SELECT side, pair,
    sum(n / total * ln(n * total / (ra * cb))) AS mi,
    -sum(n / total * ln(ra / total)) AS ha,
    -sum(n / total * ln(cb / total)) AS hb
FROM parts GROUP BY side, pair
"""


def _cells_sql(side: int, table: str, exprs: list[tuple[int, str, str]]) -> list[str]:
    """(side, pair, a, b, n) count queries, one per (pair id, a expression, b expression)."""
    return [
        f"SELECT {side} AS side, {pair} AS pair, {a} AS a, {b} AS b, count(*) AS n "
        f"FROM {table} GROUP BY ALL"
        for pair, a, b in exprs
    ]


def _batches(items: list, size: int = PAIRS_PER_QUERY):
    for start in range(0, len(items), size):
        caller.check()  # many pairs: a cancelled statement stops between their queries
        yield items[start : start + size]


def _correlations(
    con: duckdb.DuckDBPyConnection, table: str, pairs: list[Pair]
) -> list[float | None]:
    values: list[float | None] = []
    for batch in _batches(pairs, 500):
        items = ", ".join(f"corr({x.slot}, {y.slot})" for x, y in batch)
        values += list(con.execute(f"SELECT {items} FROM {table}").fetchone())
    return [None if v is None or math.isnan(v) else float(v) for v in values]


def _constant(column: Column, stats: SideStats) -> bool:
    # SDMetrics refuses a pair when either column has one distinct value (nunique() == 1)
    return stats.present[column.slot] > 0 and stats.low[column.slot] == stats.high[column.slot]


def correlation_rows(
    con, real: str, synthetic: str, pairs: list[Pair], real_stats: SideStats, syn_stats: SideStats
) -> list[dict]:
    real_corr = _correlations(con, real, pairs)
    syn_corr = _correlations(con, synthetic, pairs)
    rows = []
    for (x, y), r, s in zip(pairs, real_corr, syn_corr, strict=True):
        refused = any(_constant(c, st) for c in (x, y) for st in (real_stats, syn_stats))
        score = None if refused or r is None or s is None else 1 - abs(r - s) / 2
        meets = score is not None and abs(r) > CORRELATION_THRESHOLD
        detail = {
            "method": "CorrelationSimilarity",
            "real": r,
            "synthetic": s,
            "meets_threshold": meets,
        }
        rows.append(metric_row("pair_trend", f"{x.name}, {y.name}", score, detail))
    return rows


def _binnable(column: Column, stats: SideStats) -> bool:
    # SDMetrics cannot discretise a side with no value in a continuous column: NaN score there
    return not column.continuous or finite(stats.low[column.slot], stats.high[column.slot])


def contingency_rows(
    con, codes: tuple[str, str], pairs: list[Pair], real_stats: SideStats, syn_stats: SideStats
) -> list[dict]:
    real, synthetic = codes
    results: dict[int, tuple] = {}
    computable = [
        i
        for i, pair in enumerate(pairs)
        if all(_binnable(c, st) for c in pair for st in (real_stats, syn_stats))
    ]
    for batch in _batches(computable):
        triples = [(i, pairs[i][0].pair_code, pairs[i][1].pair_code) for i in batch]
        cells = _cells_sql(0, real, triples) + _cells_sql(1, synthetic, triples)
        sql = _CONTINGENCY_SQL.format(
            cells=" UNION ALL ".join(cells),
            real_rows=real_stats.rows,
            synthetic_rows=syn_stats.rows,
        )
        for pair, score, ratio_sum, a_levels, b_levels in con.execute(sql).fetchall():
            results[pair] = (score, ratio_sum, a_levels, b_levels)
    rows = []
    for i, (x, y) in enumerate(pairs):
        score, association = None, None
        if i in results:
            score, ratio_sum, a_levels, b_levels = results[i]
            levels = min(a_levels, b_levels)
            if levels < 2:
                score = None  # SDMetrics: association undefined, so no score
            else:
                association = math.sqrt(max(ratio_sum - 1, 0.0) / (levels - 1))
        meets = association is not None and association > ASSOCIATION_THRESHOLD
        detail = {
            "method": "ContingencySimilarity",
            "real_association": association,
            "meets_threshold": meets,
        }
        rows.append(metric_row("pair_trend", f"{x.name}, {y.name}", score, detail))
    return rows


def pair_trend_rows(
    con,
    sides: tuple[str, str],
    codes: tuple[str, str],
    columns: list[Column],
    real_stats,
    syn_stats,
) -> list[dict]:
    """One pair_trend row per column pair, in column order.

    ``sides``: the prepared (real, synthetic) tables; ``codes``: their codes tables.
    """
    pairs = list(itertools.combinations(columns, 2))
    continuous = [p for p in pairs if p[0].continuous and p[1].continuous]
    other = [p for p in pairs if not (p[0].continuous and p[1].continuous)]
    rows = correlation_rows(con, *sides, continuous, real_stats, syn_stats)
    rows += contingency_rows(con, codes, other, real_stats, syn_stats)
    by_pair = dict(zip(continuous + other, rows, strict=True))
    return [by_pair[p] for p in pairs]


def _normalised(mi: float, ha: float, hb: float) -> float:
    return min(max(2 * mi / (ha + hb), 0.0), 1.0) if ha + hb > 1e-12 else 0.0


def information_rows(con, codes: tuple[str, str], columns: list[Column]) -> list[dict]:
    """One mutual_information_similarity row per column pair (on the codes tables)."""
    real, synthetic = codes
    pairs = list(itertools.combinations(columns, 2))
    nmi: dict[tuple[int, int], float] = {}
    for batch in _batches(list(enumerate(pairs))):
        triples = [(i, x.code, y.code) for i, (x, y) in batch]
        cells = _cells_sql(0, real, triples) + _cells_sql(1, synthetic, triples)
        sql = _INFORMATION_SQL.format(cells=" UNION ALL ".join(cells))
        for side, pair, mi, ha, hb in con.execute(sql).fetchall():
            nmi[(side, pair)] = _normalised(mi, ha, hb)
    rows = []
    for i, (x, y) in enumerate(pairs):
        r, s = nmi.get((0, i)), nmi.get((1, i))
        value = None if r is None or s is None else 1 - abs(r - s)
        detail = {"real": r, "synthetic": s, "normalisation": "2 MI / (H_a + H_b)"}
        rows.append(
            metric_row("mutual_information_similarity", f"{x.name}, {y.name}", value, detail)
        )
    return rows
