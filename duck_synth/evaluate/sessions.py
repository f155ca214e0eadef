"""Session metrics: evaluate(real, synthetic, session_key => ..., order_by => ...).

A session table is judged at two levels:

- **Session profiles**: one row per session — its length, its metadata (the columns constant
  within every real session), and per measurement its mean, variance, first and last value
  (numbers) or its most frequent value and number of distinct values (categories). The profiles
  go through the same fidelity as tables (shapes, pair trends: metadata against per-session
  means, say) and, with a holdout, through the same privacy metrics: a session-level DCR share,
  whole sessions against whole sessions.
- **Steps**: per-step distributions (the shape of each measurement at step 1, 2, ... up to
  ``STEPS``, averaged) and lag-1 autocorrelation similarity of numeric measurements
  (``1 - |r_real - r_synthetic| / 2``, r the correlation of a value with the previous step's).

Rows are named ``session_<metric>`` (``session_column_shape`` for 'wage mean', ...), then
``step_shape``, ``lag1_autocorrelation``, and a ``sessions`` summary (mean of the session
shapes, pair trends, step shapes and autocorrelation similarities).
"""

from __future__ import annotations

import duckdb

from ..encoding import is_numeric_type
from ..errors import SynthError
from ..sessions import layout as session_layout
from ..sources import describe
from ..sqltext import quote_identifier as q
from .fidelity import ks_complements, mean, metric_row, tv_complements

STEPS = 10  # per-step shapes for the first steps, where every session still has data


def session_metrics(
    con: duckdb.DuckDBPyConnection,
    real_sql: str,
    synthetic_sql: str,
    holdout_sql: str | None,
    key: str,
    order_by: str | None,
    fidelity,
    sample: int | None,
    seed: int,
) -> list[dict]:
    """Session-level and step-level rows. ``fidelity(real_sql, synthetic_sql)`` is evaluate()'s
    table fidelity (rows), applied to the session profiles."""
    columns = describe(con, real_sql, what="evaluate(): real")
    synthetic_names = {n for n, _ in describe(con, synthetic_sql, what="evaluate(): synthetic")}
    for name in (key, order_by):
        if name is not None and name not in synthetic_names:
            raise SynthError(f"evaluate(): the synthetic data has no column '{name}'")
    shape = session_layout(con, real_sql, columns, key, order_by, None)
    types = dict(columns)
    measured = [c for c in shape.measurements if c in synthetic_names]
    numeric = [c for c in measured if is_numeric_type(types[c])]
    categorical = [c for c in measured if c not in numeric and _categorical(types[c])]
    metadata = [c for c in shape.metadata if c in synthetic_names]

    def profiles(sql: str) -> str:
        return _profile_sql(sql, key, order_by, metadata, numeric, categorical)

    rows = [
        {**r, "metric": "session_" + r["metric"]}
        for r in fidelity(profiles(real_sql), profiles(synthetic_sql))
    ]
    rows += _step_rows(con, real_sql, synthetic_sql, key, order_by, numeric, categorical)
    if holdout_sql is not None:
        from .privacy import privacy_metrics

        rows += [
            {**r, "metric": "session_" + r["metric"]}
            for r in privacy_metrics(
                con,
                profiles(real_sql),
                profiles(synthetic_sql),
                profiles(holdout_sql),
                None,
                sample,
                seed,
            )
        ]
    parts = [r["value"] for r in rows if r["metric"] in ("session_shapes", "session_pair_trends")]
    parts += [r["value"] for r in rows if r["metric"] in ("step_shape", "lag1_autocorrelation")]
    summary = metric_row(
        "sessions",
        "",
        mean(parts),
        {
            "of": ["session_shapes", "session_pair_trends", "step_shape", "lag1_autocorrelation"],
            "metadata": metadata,
            "measurements": measured,
        },
    )
    return [summary, *rows]


def _categorical(duck_type: str) -> bool:
    return duck_type in ("VARCHAR", "BOOLEAN", "UUID") or duck_type.startswith("ENUM")


def _profile_sql(
    relation: str,
    key: str,
    order_by: str,
    metadata: list[str],
    numeric: list[str],
    categorical: list[str],
) -> str:
    """One row per session: length, metadata, and per measurement what describes it."""
    order = q(order_by)
    items = ["count(*) AS length"] + [f"any_value({q(c)}) AS {q(c)}" for c in metadata]
    for c in numeric:
        items += [
            f"avg({q(c)}) AS {q(c + ' mean')}",
            f"var_samp({q(c)}) AS {q(c + ' variance')}",
            f"arg_min({q(c)}, {order}) AS {q(c + ' first')}",
            f"arg_max({q(c)}, {order}) AS {q(c + ' last')}",
        ]
    for c in categorical:
        items += [
            f"mode({q(c)}) AS {q(c + ' mode')}",
            f"count(DISTINCT {q(c)}) AS {q(c + ' distinct')}",
        ]
    return (
        f"SELECT {', '.join(items)} FROM ({relation}) WHERE {q(key)} IS NOT NULL GROUP BY {q(key)}"
    )


def _step_rows(con, real_sql, synthetic_sql, key, order_by, numeric, categorical) -> list[dict]:
    rows = []
    step = f"row_number() OVER (PARTITION BY {q(key)} ORDER BY {q(order_by)}) - 1"
    sides = {"real": real_sql, "synthetic": synthetic_sql}
    steps = {
        side: f"(SELECT *, {step} AS __step FROM ({sql}) WHERE {q(key)} IS NOT NULL)"
        for side, sql in sides.items()
    }
    longest = con.execute(f"SELECT max(__step) + 1 FROM {steps['real']}").fetchone()[0] or 0
    for column in numeric + categorical:
        value = q(column) if column in numeric else f"hash(CAST({q(column)} AS VARCHAR))"
        scores = []
        for t in range(min(longest, STEPS)):
            at = {
                s: f"(SELECT {value} AS s0 FROM {sql} WHERE __step = {t})"
                for s, sql in steps.items()
            }
            score = (ks_complements if column in numeric else tv_complements)(
                con, at["real"], at["synthetic"], ["s0"] if column in numeric else {"s0": "s0"}
            )
            scores.append(score.get("s0"))
        rows.append(
            metric_row(
                "step_shape",
                column,
                mean(scores),
                {"steps": [None if s is None else round(s, 4) for s in scores]},
            )
        )
    for column in numeric:
        lagged = {
            side: con.execute(
                f"SELECT corr(x, previous) FROM (SELECT {q(column)} AS x, lag({q(column)}) OVER "
                f"(PARTITION BY {q(key)} ORDER BY {q(order_by)}) AS previous FROM ({sql}))"
            ).fetchone()[0]
            for side, sql in sides.items()
        }
        real, synthetic = lagged["real"], lagged["synthetic"]
        value = None if real is None or synthetic is None else 1 - abs(real - synthetic) / 2
        rows.append(
            metric_row(
                "lag1_autocorrelation", column, value, {"real": real, "synthetic": synthetic}
            )
        )
    return rows
