"""Both sides discretised once, as integer codes, so that every histogram and contingency table
is a fast integer group-by.

For each evaluated column ``c<i>`` of a prepared table (see columns.py), the codes table has:

- ``m<i>``: the column's category: for continuous columns one of 10 equal-width bins over the
  real range (1..10; 0 below it, 11 above it, so synthetic mass where the real data has none
  counts), for the others a 64-bit hash of the value. NULL stays NULL.
- ``p<i>`` (continuous columns only): SDMetrics' own discretisation for contingency pair trends.
"""

from __future__ import annotations

import itertools
import math

import duckdb
import numpy as np

from ..errors import SynthError
from .columns import Column, SideStats

HISTOGRAM_BINS = 10
_table_ids = itertools.count()


def double_sql(value: float) -> str:
    """A DOUBLE literal that round-trips exactly (repr) and never forms a comment (``- -1``)."""
    return f"({float(value)!r}::DOUBLE)"


def finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def category_code_sql(slot: str) -> str:
    """A 64-bit hash of the value (the same on both sides); NULL stays NULL."""
    return f"CASE WHEN {slot} IS NULL THEN NULL ELSE hash({slot}) END"


def histogram_code_sql(slot: str, low: float | None, high: float | None) -> str:
    """The bin of a continuous value among 10 equal-width bins over [low, high] (the real range)."""
    if not finite(low, high):
        return category_code_sql(slot)
    width = (high - low) / HISTOGRAM_BINS
    inside = (
        "1"
        if width == 0
        else f"1 + least(floor(({slot} - {double_sql(low)}) / {double_sql(width)}), "
        f"{HISTOGRAM_BINS - 1})"
    )
    return (
        f"CAST(CASE WHEN {slot} IS NULL THEN NULL WHEN {slot} < {double_sql(low)} THEN 0 "
        f"WHEN {slot} > {double_sql(high)} THEN {HISTOGRAM_BINS + 1} ELSE {inside} END AS UBIGINT)"
    )


def sdmetrics_code_sql(slot: str, low: float | None, high: float | None) -> str:
    """SDMetrics' discretisation of a continuous column paired with a categorical one.

    ``np.digitize(x, np.histogram_bin_edges(x.dropna()))``: 10 equal-width bins over that side's
    own range; the maximum lands past the last edge (11), and so does NaN. The edges come from
    numpy itself so that boundary values fall exactly as there. NULL when it cannot bin (a side
    with no value: SDMetrics' discretisation fails there too).
    """
    if not finite(low, high):
        return "CAST(NULL AS UBIGINT)"
    edges = np.histogram_bin_edges(np.array([low, high], dtype=float))
    above = " + ".join(f"({slot} >= {double_sql(e)})::INTEGER" for e in edges)
    return f"CAST(CASE WHEN {slot} IS NULL THEN {len(edges)} ELSE {above} END AS UBIGINT)"


def prepare_codes(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[Column],
    real_stats: SideStats,
    own_stats: SideStats,
) -> str:
    """The codes table of one prepared side; returns its name."""
    items = []
    # SDMetrics' bins serve only pairs of a continuous and a categorical column
    mixed = any(c.continuous for c in columns) and not all(c.continuous for c in columns)
    for c in columns:
        if c.continuous:
            low, high = real_stats.low[c.slot], real_stats.high[c.slot]
            items.append(f"{histogram_code_sql(c.slot, low, high)} AS {c.code}")
            own_low, own_high = own_stats.low[c.slot], own_stats.high[c.slot]
            if mixed:
                items.append(f"{sdmetrics_code_sql(c.slot, own_low, own_high)} AS {c.pair_code}")
        else:
            items.append(f"{category_code_sql(c.slot)} AS {c.code}")
    codes = f"{table}_codes{next(_table_ids)}"
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {codes} AS SELECT {', '.join(items)} FROM {table}"
        )
    except duckdb.Error as error:
        raise SynthError(f"evaluate(): {str(error).splitlines()[0]}") from None
    return codes
