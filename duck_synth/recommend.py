"""recommend() and method => 'auto': the methods ranked for a dataset's shape, with reasons.

The shape is a few aggregate queries (rows, columns by kind, cardinalities, sessions and their
lengths); no model is trained. The rules follow what was measured on the shipped datasets (see
the README's figures): the autoregressive method has the best quality on tables and sessions
and conditions exactly on any column, so it leads unless the shape favours another:

- tables wider than ``WIDE_TABLE`` columns: tabgan draws a row in one pass, where the
  autoregressive method samples column by column;
- many (``MANY_SESSIONS``) long (``LONG_SESSIONS`` steps) sessions: timegan draws all steps of
  a session at once, where the autoregressive method samples step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from .encoding import DATETIME_TYPES, is_numeric_type
from .errors import SynthError
from .sources import describe, read_source
from .sqltext import quote_identifier as q

WIDE_TABLE = 60
SMALL_TABLE = 1_000  # rows: too few for a GAN to converge
MANY_SESSIONS = 5_000
LONG_SESSIONS = 50
FEW_SESSIONS = 2_000


@dataclass
class Shape:
    rows: int
    columns: int
    numeric: int
    categorical: int
    datetime: int
    max_cardinality: int  # of the categorical columns
    sessions: int | None = None
    mean_length: float | None = None
    max_length: int | None = None

    def describe(self) -> str:
        text = (
            f"{self.rows:,} rows, {self.columns} columns ({self.numeric} numeric, "
            f"{self.categorical} categorical, {self.datetime} date/time)"
        )
        if self.sessions is not None:
            text += (
                f", {self.sessions:,} sessions of {self.mean_length:.1f} steps on average "
                f"(at most {self.max_length})"
            )
        return text


@dataclass
class Recommendation:
    method: str
    applicable: bool
    reason: str


def shape_of(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[tuple[str, str]],
    session_key: str | None = None,
) -> Shape:
    numeric = [c for c, t in columns if is_numeric_type(t)]
    timed = [c for c, t in columns if t in DATETIME_TYPES or t.startswith("TIMESTAMP")]
    categorical = [c for c, _ in columns if c not in numeric and c not in timed]
    distinct = ", ".join(f"approx_count_distinct({q(c)})" for c in categorical) or "0"
    rows, *cardinalities = con.execute(f"SELECT count(*), {distinct} FROM ({relation})").fetchone()
    shape = Shape(
        rows=rows,
        columns=len(columns),
        numeric=len(numeric),
        categorical=len(categorical),
        datetime=len(timed),
        max_cardinality=max([c or 0 for c in cardinalities], default=0),
    )
    if session_key is not None:
        if session_key not in dict(columns):
            raise SynthError(f"recommend(): session_key: unknown column '{session_key}'")
        shape.sessions, shape.mean_length, shape.max_length = con.execute(
            f"SELECT count(*), coalesce(avg(n), 0), coalesce(max(n), 0) FROM "
            f"(SELECT count(*) AS n FROM ({relation}) WHERE {q(session_key)} IS NOT NULL "
            f"GROUP BY {q(session_key)})"
        ).fetchone()
    return shape


def rank(shape: Shape) -> list[Recommendation]:
    """Every method, the applicable ones first and best first, each with its reason."""
    if shape.sessions is not None:
        return _rank_sessions(shape)
    autoregressive = Recommendation(
        "autoregressive",
        True,
        "the best measured quality on tables (SDMetrics 0.95-0.98 on the shipped datasets), "
        "and exact conditioning on any column",
    )
    tabgan = Recommendation(
        "tabgan",
        True,
        "CTGAN design: one generator pass per row; rare categories learned by training-by-sampling",
    )
    if shape.columns > WIDE_TABLE and shape.rows >= SMALL_TABLE:
        tabgan.reason = (
            f"a wide table ({shape.columns} columns): tabgan draws a row in one pass where "
            "the autoregressive method samples column by column"
        )
        ranked = [tabgan, autoregressive]
    else:
        if shape.rows < SMALL_TABLE:
            tabgan.reason = f"few rows ({shape.rows:,}) for a GAN to converge on"
        ranked = [autoregressive, tabgan]
    return ranked + [
        Recommendation("timegan", False, "models sessions: give session_key (and order_by)"),
        *_unavailable(sessions=False),
    ]


def _rank_sessions(shape: Shape) -> list[Recommendation]:
    autoregressive = Recommendation(
        "autoregressive",
        True,
        "session metadata, then each step given the steps before; exact conditioning on "
        "metadata; converges in seconds on a few hundred sessions",
    )
    timegan = Recommendation(
        "timegan",
        True,
        "DoppelGANger design: one network draws a session's metadata, length and all its "
        "steps at once",
    )
    if shape.sessions >= MANY_SESSIONS and shape.max_length >= LONG_SESSIONS:
        timegan.reason = (
            f"many long sessions ({shape.sessions:,}, up to {shape.max_length} steps): timegan "
            "draws all steps at once where the autoregressive method samples step by step"
        )
        ranked = [timegan, autoregressive]
    else:
        if shape.sessions < FEW_SESSIONS:
            timegan.reason = (
                f"few sessions ({shape.sessions:,}): a GAN needs minutes to learn their "
                "dynamics (on Males' 545 it needed 120 s for a wage lag-1 autocorrelation the "
                "autoregressive method reached in 17 s)"
            )
        ranked = [autoregressive, timegan]
    return ranked + [
        Recommendation("tabgan", False, "models rows, not sessions"),
        *_unavailable(sessions=True),
    ]


def _unavailable(sessions: bool) -> list[Recommendation]:
    """Methods auto never picks: privbayes is chosen by name, with epsilon."""
    privbayes = (
        Recommendation("privbayes", False, "models rows, not sessions")
        if sessions
        else Recommendation(
            "privbayes", True, "differential privacy by a Bayesian network: ask for it with epsilon"
        )
    )
    return [
        privbayes,
        Recommendation("transformer", False, "not attention-based here: use 'autoregressive'"),
    ]


def recommend(con: duckdb.DuckDBPyConnection, source: str, options: dict) -> list[dict]:
    """The rows of recommend(): rank, method, applicable, reason, shape."""
    relation = read_source(con, source)
    columns = describe(con, relation)
    shape = shape_of(con, relation, columns, options.get("session_key"))
    if shape.rows == 0:
        raise SynthError(f"recommend(): the data '{source}' is empty")
    return [
        {
            "rank": i + 1,
            "method": r.method,
            "applicable": r.applicable,
            "reason": r.reason,
            "shape": shape.describe(),
        }
        for i, r in enumerate(rank(shape))
    ]
