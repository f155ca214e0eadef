"""What the report draws, aggregated in DuckDB SQL: histograms, category counts, associations.

Every query returns a handful of rows per column (bins, top categories, one value per pair), so
the report costs a few scans of each table, however many rows they have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb

from ..errors import SynthError
from ..sqltext import quote_identifier

NUMERIC_TYPE = re.compile(
    r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|REAL|DECIMAL.*|NUMERIC.*)$", re.I
)
TEMPORAL_TYPE = re.compile(r"^(DATE|TIME|TIMESTAMP.*|TIME WITH TIME ZONE)$", re.I)
# Nested and binary values have no one-dimensional distribution to draw.
SKIPPED_TYPE = re.compile(r"(\[\]|\[\d+\]$|^STRUCT|^MAP|^UNION|^BLOB|^BIT$|^INTERVAL|^JSON)", re.I)
TOP_CATEGORIES = 20
QUANTILE_BINS = 10  # numerics enter Cramér's V as deciles
TAIL = 0.005  # long tails of a histogram are cut at these percentiles of both tables
NULL_CODE = "∅"


@dataclass
class Column:
    name: str
    type: str
    kind: str  # "numeric", "temporal" or "categorical"

    @property
    def label(self) -> str:
        """The name and a short type for plot titles (an ENUM's values are on its axis)."""
        short = "enum" if self.type.upper().startswith("ENUM") else self.type.lower()
        return f"{self.name}  ({short[:30]})"

    @property
    def number(self) -> str:
        """SQL for the column as a DOUBLE (temporal values as epoch seconds)."""
        q = quote_identifier(self.name)
        return f"epoch({q})" if self.kind == "temporal" else f"CAST({q} AS DOUBLE)"


@dataclass
class Histogram:
    low: float
    high: float
    real: list[float]  # shares of the non-NULL rows, one per bin
    synthetic: list[float]
    null_share: dict[str, float] = field(default_factory=dict)


@dataclass
class Categories:
    labels: list[str]
    real: list[float]  # shares of all rows, one per label
    synthetic: list[float]


def shared_columns(
    real: list[tuple[str, str]], synthetic: list[tuple[str, str]], wanted: list[str] | None
) -> tuple[list[Column], list[str]]:
    """The real table's columns that the synthetic one also has, and those skipped (by name)."""
    synthetic_names = {name for name, _ in synthetic}
    if wanted:
        unknown = [w for w in wanted if w not in {name for name, _ in real}]
        if unknown:
            raise SynthError(f"report(): unknown column '{unknown[0]}' in columns")
    columns, skipped = [], []
    for name, duck_type in real:
        if (wanted and name not in wanted) or name not in synthetic_names:
            continue
        if SKIPPED_TYPE.search(duck_type):
            skipped.append(name)
        elif NUMERIC_TYPE.match(duck_type):
            columns.append(Column(name, duck_type, "numeric"))
        elif TEMPORAL_TYPE.match(duck_type):
            columns.append(Column(name, duck_type, "temporal"))
        else:
            columns.append(Column(name, duck_type, "categorical"))
    if not columns:
        raise SynthError("report(): the real and synthetic tables share no column to compare")
    return columns, skipped


def _both(real_sql: str, synthetic_sql: str, value: str) -> str:
    return (
        f"SELECT 'real' AS side, {value} AS v FROM ({real_sql}) "
        f"UNION ALL SELECT 'synthetic', {value} FROM ({synthetic_sql})"
    )


def histogram(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, column: Column, bins: int
) -> Histogram:
    """Equal-width bins over the range of both tables together, so the bars line up. A long
    tail (beyond the 0.5th or 99.5th percentile by more than 5% of the range between them) is
    cut there and counted in the edge bin: outliers would squeeze the plot into a few bins."""
    rows = con.execute(
        f"""
        WITH both_sides AS ({_both(real_sql, synthetic_sql, column.number)}),
        tails AS (SELECT min(v) AS mn, max(v) AS mx, quantile_cont(v, {TAIL}) AS q_lo,
                         quantile_cont(v, 1 - {TAIL}) AS q_hi FROM both_sides WHERE isfinite(v)),
        bounds AS (SELECT CASE WHEN q_lo - mn <= 0.05 * (q_hi - q_lo) THEN mn ELSE q_lo END AS lo,
                          CASE WHEN mx - q_hi <= 0.05 * (q_hi - q_lo) THEN mx ELSE q_hi END AS hi
                   FROM tails)
        SELECT side, any_value(lo), any_value(hi),
               CASE WHEN v IS NULL OR NOT isfinite(v) THEN -1
                    ELSE coalesce(greatest(least(CAST(floor((v - lo) / nullif(hi - lo, 0) * {bins})
                                                      AS INTEGER), {bins} - 1), 0), 0) END AS bin,
               count(*) AS n
        FROM both_sides, bounds GROUP BY side, bin
        """
    ).fetchall()
    low = next((r[1] for r in rows if r[1] is not None), 0.0)
    high = next((r[2] for r in rows if r[2] is not None), 0.0)
    counts = {side: [0] * bins for side in ("real", "synthetic")}
    nulls = {"real": 0, "synthetic": 0}
    for side, _, _, b, n in rows:
        if b < 0:
            nulls[side] += n
        else:
            counts[side][b] += n
    shares, null_share = {}, {}
    for side, values in counts.items():
        total = sum(values) + nulls[side]
        shares[side] = [v / max(sum(values), 1) for v in values]
        null_share[side] = nulls[side] / total if total else 0.0
    return Histogram(low, high, shares["real"], shares["synthetic"], null_share)


def categories(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, column: Column
) -> Categories:
    """The most frequent categories of both tables; the rest as '(other)', NULL as its own bar."""
    q = quote_identifier(column.name)
    order = f"enum_code({q})" if column.type.upper().startswith("ENUM") else "NULL"
    if column.type.upper() == "BOOLEAN":
        order = f"CAST({q} AS INTEGER)"
    rows = con.execute(
        f"""
        WITH both_sides AS ({_both(real_sql, synthetic_sql, f"CAST({q} AS VARCHAR)")}),
        orders AS (SELECT DISTINCT CAST({q} AS VARCHAR) AS v, {order} AS o FROM ({real_sql})),
        counts AS (SELECT side, v, count(*) AS n FROM both_sides GROUP BY side, v),
        totals AS (SELECT side, sum(n) AS total FROM counts GROUP BY side),
        ranked AS (SELECT v, row_number() OVER (ORDER BY sum(n) DESC, v) AS rank
                   FROM counts WHERE v IS NOT NULL GROUP BY v)
        SELECT side, label, min(position), sum(share) FROM (
            SELECT side,
                   CASE WHEN c.v IS NULL THEN '(NULL)'
                        WHEN rank <= {TOP_CATEGORIES} THEN c.v ELSE '(other)' END AS label,
                   CASE WHEN c.v IS NULL THEN 1e9 + 1 WHEN rank <= {TOP_CATEGORIES}
                        THEN coalesce(o.o, rank) ELSE 1e9 END AS position,
                   n / total AS share
            FROM counts c JOIN totals USING (side) LEFT JOIN ranked USING (v)
            LEFT JOIN orders o ON o.v = c.v)
        GROUP BY side, label
        """
    ).fetchall()
    positions: dict[str, float] = {}
    shares: dict[tuple[str, str], float] = {}
    for side, label, position, share in rows:
        positions[label] = min(position, positions.get(label, position))
        shares[(side, label)] = shares.get((side, label), 0.0) + share
    labels = sorted(positions, key=lambda label: (positions[label], label))
    return Categories(
        labels,
        [shares.get(("real", label), 0.0) for label in labels],
        [shares.get(("synthetic", label), 0.0) for label in labels],
    )


def associations(
    con: duckdb.DuckDBPyConnection, relation_sql: str, columns: list[Column]
) -> list[list[float | None]]:
    """Square matrix: Pearson r for pairs of numeric/temporal columns, Cramér's V (numerics as
    deciles, NULL as a category) for pairs with a categorical column; 1 on the diagonal."""
    k = len(columns)
    matrix: list[list[float | None]] = [
        [1.0 if i == j else None for j in range(k)] for i in range(k)
    ]
    numeric = [i for i, c in enumerate(columns) if c.kind != "categorical"]
    numeric_pairs = [(i, j) for i in numeric for j in numeric if i < j]
    if numeric_pairs:
        items = ", ".join(
            f"corr({columns[i].number}, {columns[j].number})" for i, j in numeric_pairs
        )
        values = con.execute(f"SELECT {items} FROM ({relation_sql})").fetchone()
        for (i, j), value in zip(numeric_pairs, values, strict=True):
            matrix[i][j] = matrix[j][i] = value
    numeric_set = set(numeric_pairs)
    mixed_pairs = [(i, j) for i in range(k) for j in range(i + 1, k) if (i, j) not in numeric_set]
    if mixed_pairs:
        for (i, j), value in _cramers_v(con, relation_sql, columns, mixed_pairs).items():
            matrix[i][j] = matrix[j][i] = value
    return matrix


def _code(column: Column, alias: str) -> str:
    """The column as a VARCHAR category code: itself, or its decile for numbers."""
    q = quote_identifier(column.name)
    if column.kind == "categorical":
        return f"coalesce(CAST({q} AS VARCHAR), '{NULL_CODE}') AS {alias}"
    return (
        f"CASE WHEN {q} IS NULL THEN '{NULL_CODE}' ELSE CAST(ntile({QUANTILE_BINS}) "
        f"OVER (PARTITION BY {q} IS NULL ORDER BY {q}) AS VARCHAR) END AS {alias}"
    )


def _cramers_v(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    columns: list[Column],
    pairs: list[tuple[int, int]],
) -> dict[tuple[int, int], float | None]:
    """All contingency tables in one scan (GROUPING SETS); chi² = N·(Σ O²/(rᵢ·cⱼ) − 1) needs
    only the non-empty cells."""
    k = len(columns)
    codes = [f"c{i}" for i in range(k)]
    coded = ", ".join(_code(c, codes[i]) for i, c in enumerate(columns))
    sets = ", ".join(f"({codes[i]}, {codes[j]})" for i, j in pairs)
    rows = con.execute(
        f"""
        WITH coded AS (SELECT {coded} FROM ({relation_sql})),
        cells AS (SELECT GROUPING({", ".join(codes)}) AS g,
                         list_filter([{", ".join(codes)}], x -> x IS NOT NULL) AS ab,
                         count(*) AS n
                  FROM coded GROUP BY GROUPING SETS ({sets})),
        margins AS (SELECT g, ab[1] AS a, ab[2] AS b, n,
                           sum(n) OVER (PARTITION BY g, ab[1]) AS ra,
                           sum(n) OVER (PARTITION BY g, ab[2]) AS cb,
                           sum(n) OVER (PARTITION BY g) AS total FROM cells)
        SELECT g, any_value(total) * (sum(n * n / (ra * cb)) - 1) AS chi2, any_value(total),
               least(count(DISTINCT a), count(DISTINCT b)) AS dof
        FROM margins GROUP BY g
        """
    ).fetchall()
    # GROUPING(c0..ck-1) has bit k-1-i set when c_i is not grouped: recover each set's pair.
    by_mask = {((1 << k) - 1) ^ (1 << (k - 1 - i)) ^ (1 << (k - 1 - j)): (i, j) for i, j in pairs}
    result: dict[tuple[int, int], float | None] = {}
    for g, chi2, total, dof in rows:
        pair = by_mask[g]
        result[pair] = (max(chi2, 0.0) / total / (dof - 1)) ** 0.5 if dof > 1 and total else None
    return result
