"""The columns an evaluation compares: their kinds, and both sides materialised once.

Each side (real, synthetic) becomes a temporary table with one column per evaluated column,
``c0, c1, ...``: DOUBLE for numeric and date/time columns (date/times as epoch microseconds, so
order and distance are kept), VARCHAR for categorical and boolean ones. Every metric then reads
these small typed tables instead of re-running the user's query.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from ..errors import SynthError
from ..sources import describe
from ..sqltext import quote_identifier

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
    def code(self) -> str:
        """Its discrete code in the codes tables (see codes.py): m0, m1, ..."""
        return "m" + self.slot[1:]

    @property
    def pair_code(self) -> str:
        """Its code in contingency pair trends: SDMetrics' bins (p0, ...) when continuous."""
        return "p" + self.slot[1:] if self.continuous else self.code

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
    names = list(dict.fromkeys(requested)) if requested is not None else list(real_types)
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


@contextlib.contextmanager
def materialized(
    con: duckdb.DuckDBPyConnection, sources: dict[str, str | None]
) -> Iterator[dict[str, str | None]]:
    """Each side's query run once into a temporary table, given by name for the block and
    dropped after: metrics that read a side many times (session profiles, steps, privacy) do
    not run its query (a generate() call) again, and all of them judge the same rows."""
    made: list[str] = []
    try:
        names = {}
        for what, sql in sources.items():
            if sql is None:
                names[what] = None
                continue
            table = f"duck_synth_evaluate_{next(_table_ids)}_{what}_source"
            try:
                con.execute(f"CREATE TEMP TABLE {table} AS FROM ({sql}) AS source")
            except duckdb.Error as error:
                raise SynthError(f"evaluate(): {what} data: {str(error).splitlines()[0]}") from None
            made.append(table)
            names[what] = f"SELECT * FROM {table}"
        yield names
    finally:
        for table in made:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {table}")


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
