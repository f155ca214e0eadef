"""The columns an evaluation compares: their kinds, and both sides materialised once.

Each side (real, synthetic) becomes a temporary table with one column per evaluated column,
``c0, c1, ...``: DOUBLE for numeric and date/time columns (date/times as epoch microseconds, so
order and distance are kept), VARCHAR for categorical and boolean ones. Every metric then reads
these small typed tables instead of re-running the user's query.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import duckdb
import numpy as np

from ..errors import SynthError
from ..sources import describe
from ..spool import quote_identifier

NUMERIC_TYPES = re.compile(
    r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|DECIMAL(\(.*\))?)$"
)
DATETIME_TYPES = re.compile(r"^(DATE|TIMESTAMP.*|TIME|TIME WITH TIME ZONE)$")
CATEGORICAL_TYPES = re.compile(r"^(VARCHAR|ENUM\(.*\)|UUID)$", re.S)

_table_ids = itertools.count()


@dataclass(frozen=True)
class Column:
    name: str
    duck_type: str
    kind: str  # 'numeric' | 'datetime' | 'boolean' | 'categorical'
    slot: str  # its name in the prepared tables: c0, c1, ...

    @property
    def continuous(self) -> bool:
        """Numeric and date/time columns: KS for shapes, correlation for pairs (as SDMetrics)."""
        return self.kind in ("numeric", "datetime")


def kind_of(duck_type: str) -> str | None:
    """The evaluation kind of a DuckDB type; None for types that are not compared."""
    if NUMERIC_TYPES.match(duck_type):
        return "numeric"
    if DATETIME_TYPES.match(duck_type):
        return "datetime"
    if duck_type == "BOOLEAN":
        return "boolean"
    if CATEGORICAL_TYPES.match(duck_type):
        return "categorical"
    return None


def choose_columns(
    con: duckdb.DuckDBPyConnection,
    real_sql: str,
    synthetic_sql: str,
    requested: list[str] | None,
) -> tuple[list[Column], list[str]]:
    """The evaluated columns (kinds from the real table's types) and the names skipped."""
    real_types = dict(describe(con, real_sql, what="evaluate(): real"))
    synthetic_names = {
        name for name, _ in describe(con, synthetic_sql, what="evaluate(): synthetic")
    }
    if requested is not None:
        for name in requested:
            if name not in real_types:
                raise SynthError(
                    f"evaluate(): unknown column '{name}' in the real data "
                    f"(columns: {', '.join(real_types)})"
                )
    names = requested if requested is not None else list(real_types)
    columns, skipped = [], []
    for name in names:
        kind = kind_of(real_types[name])
        if kind is None:
            if requested is not None:
                raise SynthError(
                    f"evaluate(): column '{name}' has type {real_types[name]}, which is not compared"
                )
            skipped.append(name)
            continue
        if name not in synthetic_names:
            raise SynthError(f"evaluate(): the synthetic data has no column '{name}'")
        columns.append(Column(name, real_types[name], kind, f"c{len(columns)}"))
    if not columns:
        raise SynthError("evaluate(): no column to compare")
    return columns, skipped


def value_sql(column: Column) -> str:
    """The comparable value of a column: DOUBLE for continuous kinds, VARCHAR otherwise."""
    name = quote_identifier(column.name)
    if column.kind == "numeric":
        # NaN is missing, as in pandas/SDMetrics (DuckDB would sort it above every number)
        return f"nullif(CAST({name} AS DOUBLE), 'NaN'::DOUBLE)"
    if column.kind == "datetime":
        if column.duck_type.startswith("TIME") and not column.duck_type.startswith("TIMESTAMP"):
            return f"epoch(CAST({name} AS {column.duck_type})) * 1e6"
        return f"CAST(epoch_us(CAST({name} AS {column.duck_type})) AS DOUBLE)"
    return f"CAST({name} AS VARCHAR)"


def prepare(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    columns: list[Column],
    what: str,
    sample: int | None,
    seed: int,
) -> str:
    """Materialise one side as a temporary table of comparable values; returns its name.

    With ``sample``, keeps a seeded uniform sample of that many rows: rows are ranked by a hash
    of their position and the seed (deterministic, unlike a threaded reservoir sample).
    """
    table = f"duck_synth_evaluate_{next(_table_ids)}_{what}"
    items = ", ".join(f"{value_sql(c)} AS {c.slot}" for c in columns)
    query = f"SELECT {items} FROM ({source_sql}) AS source"
    try:
        if sample is None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_all AS {query}")
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS FROM {table}_all "
                f"ORDER BY hash(rowid, {int(seed)}) LIMIT {int(sample)}"
            )
            con.execute(f"DROP TABLE {table}_all")
    except duckdb.Error as error:
        raise SynthError(f"evaluate(): {what} data: {str(error).splitlines()[0]}") from None
    return table


@dataclass(frozen=True)
class SideStats:
    rows: int
    present: dict[str, int]  # slot -> non-NULL values
    low: dict[str, float]  # slot -> min (continuous columns)
    high: dict[str, float]  # slot -> max (continuous columns)


def side_stats(con: duckdb.DuckDBPyConnection, table: str, columns: list[Column]) -> SideStats:
    """Row count, non-NULL counts and the range of every continuous column, in one scan."""
    items = ["count(*)"]
    for c in columns:
        items.append(f"count({c.slot})")
        if c.continuous:
            items += [f"min({c.slot})", f"max({c.slot})"]
    values = list(con.execute(f"SELECT {', '.join(items)} FROM {table}").fetchone())
    rows = values.pop(0)
    present, low, high = {}, {}, {}
    for c in columns:
        present[c.slot] = values.pop(0)
        if c.continuous:
            low[c.slot], high[c.slot] = values.pop(0), values.pop(0)
    return SideStats(rows, present, low, high)


HISTOGRAM_BINS = 10


def double_sql(value: float) -> str:
    """A DOUBLE literal that round-trips exactly (repr) and never forms a comment (``- -1``)."""
    return f"({float(value)!r}::DOUBLE)"


def histogram_bin_sql(slot: str, low: float | None, high: float | None) -> str:
    """A continuous value's bin among 10 equal-width bins over the real range, as VARCHAR.

    Synthetic values outside the real range get their own 'below' / 'above' bins, so mass put
    where the real data has none counts against the score.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"CAST({slot} AS VARCHAR)"
    width = (high - low) / HISTOGRAM_BINS
    inside = (
        "'0'"
        if width == 0
        else f"CAST(least(floor(({slot} - {double_sql(low)}) / {double_sql(width)}), "
        f"{HISTOGRAM_BINS - 1}) AS BIGINT)::VARCHAR"
    )
    return (
        f"CASE WHEN {slot} < {double_sql(low)} THEN 'below' "
        f"WHEN {slot} > {double_sql(high)} THEN 'above' "
        f"ELSE {inside} END"
    )


def sdmetrics_bin_sql(slot: str, low: float | None, high: float | None) -> str | None:
    """SDMetrics' discretisation of a continuous column paired with a categorical one.

    ``np.digitize(x, np.histogram_bin_edges(x.dropna()))``: 10 equal-width bins over that side's
    own range; the maximum lands past the last edge (bin 11) and so does NaN. The edges come
    from numpy itself so boundary values fall exactly as there. None when it cannot bin.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    edges = np.histogram_bin_edges(np.array([low, high], dtype=float))
    above = " + ".join(f"({slot} >= {double_sql(e)})::INTEGER" for e in edges)
    return f"CASE WHEN {slot} IS NULL THEN '{len(edges)}' ELSE CAST({above} AS VARCHAR) END"
