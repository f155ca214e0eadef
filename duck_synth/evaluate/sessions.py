"""Session metrics: evaluate(real, synthetic, session_key => ..., order_by => ...).

A session table is judged at three levels:

- **Session profiles**: one row per session — its length, its metadata (the columns constant
  within every real session), and per measurement its mean, variance, first and last value
  (numbers) or its most frequent value and number of distinct values (categories). The profiles
  go through the same fidelity as tables (shapes, pair trends: metadata against per-session
  means, say) and, with a holdout, through the same privacy metrics: a session-level DCR share,
  whole sessions against whole sessions.
- **Per-session aggregates** (``session_aggregate`` per numeric measurement): the KS complement
  of the per-session SUM and of the per-session MEAN, real against synthetic, and their mean —
  whether sessions keep their own level (a plane that flies long routes) and total, which
  per-step shapes cannot see.
- **Steps**: per-step distributions in step-index bands that cover long sessions — steps 1, 2,
  3-5, 6-10, 11-20, 21-50, 51-100, 101-200, 201+ (``BAND_STARTS``, 0-based inside) — each the
  KS complement (numbers) or TV complement of the category shares (categories) of the values
  at those steps; a band is judged where the real data has ``MIN_BAND_VALUES`` values of the
  column in it, and scores 0 where the synthetic sessions have none. ``step_shape`` is the mean
  over the bands, each band's score in its detail, so drift late in long sessions shows. Plus
  lag-1 autocorrelation similarity of numeric measurements (``1 - |r_real - r_synthetic| / 2``,
  r the correlation of a value with the previous step's in the same session).

Rows are named ``session_<metric>`` (``session_column_shape`` for 'wage mean', ...), then
``step_shape``, ``lag1_autocorrelation``, ``session_aggregates`` (mean of the per-column
``session_aggregate`` rows), and a ``sessions`` summary (mean of the session shapes, pair trends,
step shapes, autocorrelation similarities and the session aggregates).

>>> FROM evaluate('flights', 'synthetic', session_key => 'tailnum', order_by => 'time_hour')
...   WHERE metric IN ('step_shape', 'session_aggregate') AND columns = 'distance'
-- metric            | columns  | value | detail
-- step_shape        | distance | 0.93  | {"bands": [{"steps": "1", "score": 0.97, ...}, ...]}
-- session_aggregate | distance | 0.91  | {"sum": 0.90, "mean": 0.92}
"""

from __future__ import annotations

import duckdb

from ..encoding import is_numeric_type
from ..errors import SynthError
from ..sessions import layout as session_layout
from ..sources import describe
from ..sqltext import quote_identifier as q
from ..sqltext import sql_literal
from .fidelity import ks_complements, mean, metric_row, tv_complements

# the first step (0-based) of each step-index band: 1, 2, 3-5, 6-10, ..., 201+ as users count
BAND_STARTS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
MIN_BAND_VALUES = 20  # a band is judged only where the real data has this many values in it
# the rows the ``sessions`` summary averages (the session_* ones are summaries of their own)
SUMMARY_OF = (
    "session_shapes",
    "session_pair_trends",
    "step_shape",
    "lag1_autocorrelation",
    "session_aggregates",
)


def band_label(band: int) -> str:
    """The steps of band ``band``, counted from 1: '1', '3-5', '201+'."""
    first = BAND_STARTS[band] + 1
    if band + 1 == len(BAND_STARTS):
        return f"{first}+"
    last = BAND_STARTS[band + 1]
    return str(first) if last == first else f"{first}-{last}"


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
    rows += _aggregate_rows(con, real_sql, synthetic_sql, key, numeric)
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
    summary = metric_row(
        "sessions",
        "",
        mean([r["value"] for r in rows if r["metric"] in SUMMARY_OF]),
        {"of": list(SUMMARY_OF), "metadata": metadata, "measurements": measured},
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


def _aggregate_rows(con, real_sql, synthetic_sql, key, numeric) -> list[dict]:
    """``session_aggregate`` per numeric measurement (KS complements of the per-session sums
    and means), then their mean ``session_aggregates`` first."""
    items = []
    for i, c in enumerate(numeric):
        items += [f"CAST(sum({q(c)}) AS DOUBLE) AS s{i}", f"CAST(avg({q(c)}) AS DOUBLE) AS m{i}"]
    per_session = {
        side: f"(SELECT {', '.join(items)} FROM ({sql}) WHERE {q(key)} IS NOT NULL "
        f"GROUP BY {q(key)})"
        for side, sql in (("real", real_sql), ("synthetic", synthetic_sql))
    }
    slots = [f"{kind}{i}" for i in range(len(numeric)) for kind in "sm"]
    scores = ks_complements(con, per_session["real"], per_session["synthetic"], slots)
    rows = []
    for i, c in enumerate(numeric):
        total, average = scores.get(f"s{i}"), scores.get(f"m{i}")
        total, average = _known(total), _known(average)
        rows.append(
            metric_row(
                "session_aggregate",
                c,
                mean([total, average]),
                {"method": "KSComplement", "sum": total, "mean": average},
            )
        )
    summary = metric_row(
        "session_aggregates",
        "",
        mean([r["value"] for r in rows]),
        {"columns": len(rows), "of": "per-session sum and mean of each numeric measurement"},
    )
    return [summary, *rows] if rows else []


def _banded_sql(sql: str, key: str, order_by: str) -> str:
    """The rows of sessions (a NULL key is no session) with their 0-based ``__step`` in the
    session and the ``__band`` of that step (an index into BAND_STARTS)."""
    step = f"row_number() OVER (PARTITION BY {q(key)} ORDER BY {q(order_by)}) - 1"
    band = " ".join(
        f"WHEN __step >= {sql_literal(start)} THEN {sql_literal(i)}"
        for i, start in reversed(list(enumerate(BAND_STARTS)))
    )
    return (
        f"(SELECT *, CASE {band} END AS __band FROM "
        f"(SELECT *, {step} AS __step FROM ({sql}) WHERE {q(key)} IS NOT NULL))"
    )


def _step_rows(con, real_sql, synthetic_sql, key, order_by, numeric, categorical) -> list[dict]:
    sides = {"real": real_sql, "synthetic": synthetic_sql}
    banded = {side: _banded_sql(sql, key, order_by) for side, sql in sides.items()}
    rows = _band_shape_rows(con, banded, numeric, categorical)
    for column in numeric:
        lagged = {
            side: con.execute(
                f"SELECT corr(x, previous) FROM (SELECT {q(column)} AS x, lag({q(column)}) OVER "
                f"(PARTITION BY {q(key)} ORDER BY {q(order_by)}) AS previous FROM ({sql}) "
                f"WHERE {q(key)} IS NOT NULL)"
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


def _band_shape_rows(con, banded: dict[str, str], numeric, categorical) -> list[dict]:
    """``step_shape`` per measurement: the mean of its bands' shape scores, each in the detail."""
    columns = numeric + categorical
    if not columns:
        return []
    counts = {side: _band_counts(con, sql, columns) for side, sql in banded.items()}
    judged = {}  # (column index, band) -> (real values, synthetic values)
    for band, real_counts in counts["real"].items():
        synthetic_counts = counts["synthetic"].get(band, [0] * len(columns))
        for i, n in enumerate(real_counts):
            if n >= MIN_BAND_VALUES:
                judged[(i, band)] = (n, synthetic_counts[i])
    reached = [k for k, (_, n) in judged.items() if n > 0]  # a band never reached scores 0
    by_numbers = [k for k in reached if columns[k[0]] in numeric]
    by_shares = [k for k in reached if columns[k[0]] not in numeric]
    scores = _band_scores(con, banded, columns, by_numbers)
    scores |= _band_scores(con, banded, columns, by_shares, continuous=False)
    rows = []
    for i, column in enumerate(columns):
        bands = sorted(band for j, band in judged if j == i)
        values = [_known(scores.get((i, band), 0.0)) for band in bands]
        detail = {
            "bands": [
                {
                    "steps": band_label(band),
                    "score": None if value is None else round(value, 4),
                    "real_values": judged[(i, band)][0],
                    "synthetic_values": judged[(i, band)][1],
                }
                for band, value in zip(bands, values, strict=True)
            ],
            "min_real_values": MIN_BAND_VALUES,
        }
        rows.append(metric_row("step_shape", column, mean(values), detail))
    return rows


def _band_counts(con, banded_sql: str, columns: list[str]) -> dict[int, list[int]]:
    """{band: [non-NULL values of each column in the band]} of one side."""
    items = ", ".join(f"count({q(c)})" for c in columns)
    found = con.execute(f"SELECT __band, {items} FROM {banded_sql} GROUP BY __band").fetchall()
    return {band: values for band, *values in found}


def _band_scores(con, banded, columns, pairs, continuous=True) -> dict[tuple[int, int], float]:
    """{(column index, band): KS complement (numeric) or TV complement} in one query: each pair
    is a slot holding the column's value at the band's steps and NULL elsewhere (NULLs are
    left out of the scores)."""
    if not pairs:
        return {}
    slots = {(i, band): f"b{i}_{band}" for i, band in pairs}
    value = {
        i: f"CAST({q(c)} AS DOUBLE)" if continuous else f"hash(CAST({q(c)} AS VARCHAR))"
        for i, c in enumerate(columns)
    }
    items = ", ".join(
        f"CASE WHEN __band = {sql_literal(band)} THEN {value[i]} END AS {slot}"
        for (i, band), slot in slots.items()
    )
    real, synthetic = (f"(SELECT {items} FROM {banded[side]})" for side in ("real", "synthetic"))
    if continuous:
        found = ks_complements(con, real, synthetic, list(slots.values()))
    else:
        found = tv_complements(con, real, synthetic, {s: s for s in slots.values()})
    return {pair: found.get(slot) for pair, slot in slots.items()}


def _known(value: float | None) -> float | None:
    return None if value is None or value != value else value
