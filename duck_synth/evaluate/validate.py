"""Post-generation validation: does a synthetic table keep what the model learned?

Every check is a ``count(*) FILTER (WHERE ...)`` in one DuckDB aggregate over the synthetic
relation, so it scales with DuckDB, not Python. The facts checked against are the model's stored,
value-protected statistics (the same ones generation obeys), never the training rows.

Rules, one result row per (column, rule) checked:

- ``type``: the column has the model's DuckDB type. Another type is a warning (``passed``, and
  ``detail.severity = 'warning'``) when every value can be read as the column's kind (numbers as
  DOUBLE, dates as their date/time type, categories as text); values that cannot are violations
  (``severity = 'violation'``). ``detail.not_castable_to_expected`` counts the values a cast to
  the model's type would lose (an unknown ENUM label), which the value checks report.
- ``missing_column`` / ``extra_column``: a model column absent, or a column the model lacks
  (every row offends).
- ``range``: numeric and date/time values inside the protected range [low, high].
- ``category``: categorical values among the model's categories (plus ``'_RARE_'`` for VARCHAR).
- ``length``: a text column's values no longer than the texts the model writes.
- ``integer`` / ``decimals``: numeric values on the learned grid (whole numbers; the scale).
- ``unique_key``: key values unique (violations: rows beyond the first of each repeated value).
- ``null``: NULLs only where the model saw NULLs (a learned NULL share of 0 makes any NULL one).
- ``constant``: constant columns equal to the constant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from .. import catalog, sessions, sources, spool, sqltext
from ..encoding import read_type
from ..encoding.base import Encoder
from ..encoding.categorical import RARE_VALUE
from ..errors import SynthError

WHAT = "validate(): synthetic"
MAX_LISTED_CATEGORIES = 50
RESULT_SCHEMA = pa.schema(
    [
        ("column", pa.string()),
        ("rule", pa.string()),
        ("passed", pa.bool_()),
        ("violations", pa.int64()),
        ("rows", pa.int64()),
        ("share", pa.float64()),
        ("example", pa.string()),
        ("detail", pa.string()),
    ]
)


@dataclass
class Check:
    """One (column, rule): SQL aggregates counting the offending rows and showing one of them."""

    column: str
    rule: str
    count_sql: str | None = None  # None: a missing or extra column, every row offends
    example_sql: str | None = None
    detail: dict = field(default_factory=dict)
    detail_sql: dict[str, str] = field(default_factory=dict)  # detail entries computed in SQL


def validate(con: duckdb.DuckDBPyConnection, model_spec: str, synthetic: str) -> list[dict]:
    """Check ``synthetic`` (a table, view or query) against model ``model_spec``.

    >>> FROM validate('d', 'diamonds_synthetic') WHERE NOT passed
    -- column | rule  | passed | violations | rows  | share   | example  | detail
    -- price  | range | false  | 1          | 53940 | 1.85e-5 | 10000000 | {"low": 373.0, ...}

    Returns one dict per check with those keys (``detail`` a dict), in the model's column order.
    """
    record = catalog.load_model(con, model_spec, with_weights=False)
    relation = sources.read_source(con, synthetic, what=WHAT)
    found = {
        name.lower(): (name, duck_type) for name, duck_type in sources.describe(con, relation, WHAT)
    }
    checks: list[Check] = []
    for column, encoder in sessions.column_encoders(record.columns, record.statistics):
        present = found.pop(column["name"].lower(), None)
        if present is None:
            checks.append(
                Check(column["name"], "missing_column", detail={"expected": column["type"]})
            )
        elif encoder is not None:  # a session model's key and order have no learned rules
            checks.extend(column_checks(encoder, *present))
    for name, duck_type in found.values():
        checks.append(Check(name, "extra_column", detail={"found": duck_type}))
    return run_checks(con, relation, checks)


def column_checks(encoder: Encoder, name: str, found_type: str) -> list[Check]:
    """The checks of one present column, its type check first."""
    col = sqltext.quote_identifier(name)
    expected = encoder.duck_type
    domain = domain_type(encoder)
    value = col if found_type == domain else f"TRY_CAST({col} AS {domain})"
    checks = [type_check(encoder, col, name, found_type)]
    kind = encoder.kind
    stats = encoder.stats
    if kind == "numeric":
        checks.append(range_check(name, col, value, stats["low"], stats["high"]))
        if stats["integer"]:
            checks.append(grid_check(name, col, value, 0, "integer", {"integer": True}))
        elif stats["decimals"]:
            decimals = stats["decimals"]
            checks.append(
                grid_check(name, col, value, decimals, "decimals", {"decimals": decimals})
            )
    elif kind == "datetime":
        summary = encoder.summary()  # the protected range as values of the column's type
        low = f"CAST({sqltext.quote_literal(summary['low'])} AS {domain})"
        high = f"CAST({sqltext.quote_literal(summary['high'])} AS {domain})"
        checks.append(
            offending(
                name,
                "range",
                col,
                f"{value} < {low} OR {value} > {high}",
                {"low": summary["low"], "high": summary["high"]},
            )
        )
    elif kind == "categorical":
        checks.append(category_check(name, col, value, encoder))
    elif kind == "text":  # the text model writes no more than its longest length
        longest = int(stats["max_length"])
        condition = f"length({col}) > {longest}"
        checks.append(offending(name, "length", col, condition, {"max_length": longest}))
    elif kind == "key":
        checks.append(
            Check(
                name, "unique_key", f"count({col}) - count(DISTINCT {col})", None, {"unique": True}
            )
        )
    if kind == "constant":
        checks.append(constant_check(name, col, expected, stats["value"]))
    else:
        checks.append(null_check(name, col, float(stats.get("null_share") or 0.0)))
    return checks


def domain_type(encoder: Encoder) -> str:
    """The type a column's values are read as for its value checks."""
    if encoder.kind == "numeric":
        return "DOUBLE"
    if encoder.kind == "datetime":
        return read_type(encoder.duck_type)
    if encoder.kind == "categorical":
        return "VARCHAR"
    return encoder.duck_type


def type_check(encoder: Encoder, col: str, name: str, found_type: str) -> Check:
    expected = encoder.duck_type
    detail = {"expected": expected, "found": found_type}
    if found_type == expected:
        return Check(name, "type", "0", None, detail)
    # Values the kind's checks cannot read are type violations (every value of a DATE column
    # where numbers were learned); the rest are judged by those checks, so an unknown ENUM
    # label is one category violation, not also a type one.
    domain = domain_type(encoder)
    check = offending(
        name, "type", col, f"{col} IS NOT NULL AND TRY_CAST({col} AS {domain}) IS NULL", detail
    )
    check.detail_sql["not_castable_to_expected"] = (
        f"count(*) FILTER (WHERE {col} IS NOT NULL AND TRY_CAST({col} AS {expected}) IS NULL)"
    )
    return check


def offending(name: str, rule: str, col: str, condition: str, detail: dict) -> Check:
    """A check whose offending rows satisfy ``condition``; the smallest one (as text) shown."""
    return Check(
        name,
        rule,
        f"count(*) FILTER (WHERE {condition})",
        f"min(CAST({col} AS VARCHAR)) FILTER (WHERE {condition})",
        detail,
    )


def range_check(name: str, col: str, value: str, low: float, high: float) -> Check:
    # a relative tolerance: a DECIMAL read as DOUBLE may differ from the stored bound in the last bit
    low_sql = repr(low - 1e-9 * max(1.0, abs(low)))
    high_sql = repr(high + 1e-9 * max(1.0, abs(high)))
    condition = f"{value} < {low_sql} OR {value} > {high_sql}"
    return offending(name, "range", col, condition, {"low": low, "high": high})


def grid_check(name: str, col: str, value: str, decimals: int, rule: str, detail: dict) -> Check:
    scaled = f"({value} * {10**decimals})"
    condition = f"abs({scaled} - round({scaled})) > 1e-9 * greatest(1.0, abs({scaled}))"
    return offending(name, rule, col, f"isfinite({value}) AND {condition}", detail)


def category_check(name: str, col: str, value: str, encoder: Encoder) -> Check:
    allowed = [category_text(c) for c in encoder.stats["categories"]]
    if encoder.duck_type == "VARCHAR":
        allowed.append(RARE_VALUE)
    listed = ", ".join(sqltext.quote_literal(a) for a in allowed)
    condition = f"{value} IS NOT NULL" + (f" AND {value} NOT IN ({listed})" if allowed else "")
    detail = {"categories": len(allowed), "allowed": allowed[:MAX_LISTED_CATEGORIES]}
    return offending(name, "category", col, condition, detail)


def category_text(category: object) -> str:
    """A category as DuckDB renders it as VARCHAR (booleans are lower case there)."""
    if isinstance(category, bool):
        return "true" if category else "false"
    return str(category)


def constant_check(name: str, col: str, duck_type: str, value: object) -> Check:
    if value is None:
        return offending(name, "constant", col, f"{col} IS NOT NULL", {"value": None})
    literal = f"TRY_CAST({sqltext.quote_literal(category_text(value))} AS {duck_type})"
    condition = f"TRY_CAST({col} AS {duck_type}) IS DISTINCT FROM {literal}"
    return offending(name, "constant", col, condition, {"value": value})


def null_check(name: str, col: str, learned_share: float) -> Check:
    nulls = f"count(*) FILTER (WHERE {col} IS NULL)"
    return Check(
        name,
        "null",
        nulls if learned_share == 0 else "0",
        detail={"learned_null_share": learned_share},
        detail_sql={"nulls": nulls},
    )


def run_checks(con: duckdb.DuckDBPyConnection, relation: str, checks: list[Check]) -> list[dict]:
    """Evaluate every check's aggregates in one query; one result dict per check."""
    aggregates = ["count(*)"]

    def slot(text: str | None) -> int | None:
        if text is None:
            return None
        aggregates.append(text)
        return len(aggregates) - 1

    slots = [
        (slot(c.count_sql), slot(c.example_sql), {k: slot(v) for k, v in c.detail_sql.items()})
        for c in checks
    ]
    try:
        values = con.execute(f"SELECT {', '.join(aggregates)} FROM ({relation}) AS s").fetchone()
    except duckdb.Error as error:
        raise SynthError(f"{WHAT}: {str(error).strip().splitlines()[0]}") from None
    rows = int(values[0])
    results = []
    for check, (count_at, example_at, detail_at) in zip(checks, slots, strict=True):
        violations = rows if count_at is None else int(values[count_at] or 0)
        example = None if example_at is None else values[example_at]
        if check.rule == "unique_key" and violations:
            example = repeated_value(con, relation, check.column)
        detail = check.detail | {k: values[i] for k, i in detail_at.items()}
        if check.rule == "type" and detail["found"] != detail["expected"]:
            detail["severity"] = "warning" if violations == 0 else "violation"
        results.append(
            {
                "column": check.column,
                "rule": check.rule,
                "passed": violations == 0 and check.count_sql is not None,
                "violations": violations,
                "rows": rows,
                "share": violations / rows if rows else 0.0,
                "example": example,
                "detail": clean(detail),
            }
        )
    return results


def repeated_value(con: duckdb.DuckDBPyConnection, relation: str, name: str) -> str | None:
    col = sqltext.quote_identifier(name)
    row = con.execute(
        f"SELECT CAST({col} AS VARCHAR) FROM ({relation}) AS s WHERE {col} IS NOT NULL "
        f"GROUP BY {col} HAVING count(*) > 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def clean(detail: dict) -> dict:
    """JSON-safe detail values (no NaN or infinity)."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in detail.items()
    }


def validate_sql(con: duckdb.DuckDBPyConnection, model_spec: str, synthetic: str) -> str:
    """The SQL reading validate()'s result (a spool file), for the table macro."""
    rows = validate(con, model_spec, synthetic)
    for row in rows:
        row["detail"] = json.dumps(row["detail"])
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    return spool.write_rows("validate", table, {"detail": "JSON"})
