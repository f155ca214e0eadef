"""Generated values keep the training data's granularity: whole seconds stay whole seconds,
minutes stay minutes, decimals keep the places the data has; old models decode as before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import duck_synth
from duck_synth.encoding import Protection, analyze, from_json

EVENTS = """
CREATE TABLE events AS
SELECT TIMESTAMP '2024-03-01 00:00:00' + to_seconds((i * 7919) % 2000000) AS seen,
       TIMESTAMPTZ '2024-03-01 00:00:00+00' + to_minutes((i * 31) % 50000) AS booked,
       TIME '06:00:00' + to_minutes(i % 700) AS clock,
       DATE '2023-01-01' + (i % 400)::INTEGER AS day,
       ((i * 37 % 10000) / 100)::DECIMAL(12, 4) AS amount,
       (i * 13 % 977) / 10 AS reading
FROM range(3000) t(i)
"""


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    s = duck_synth.connect(str(tmp_path_factory.mktemp("granularity") / "g.duckdb"))
    s.sql(EVENTS)
    s.sql("FROM train('ev', 'events', epochs => 2, max_time => 600, seed => 1)")
    s.sql("CREATE TABLE synthetic AS FROM generate('ev', target => 2000, seed => 2)")
    yield s
    s.close()


def test_generated_timestamps_keep_whole_seconds_and_minutes(events):
    off_grid = events.sql("""
        SELECT count(*) FILTER (microsecond(seen) % 1000000 <> 0),
               count(*) FILTER (microsecond(booked) <> 0),  -- microseconds within the minute
               count(*) FILTER (microsecond(clock) <> 0),
               count(DISTINCT second(seen))
        FROM synthetic""").fetchone()
    assert off_grid[:3] == (0, 0, 0)
    assert off_grid[3] > 30  # seconds are drawn, not all rounded away


def test_generated_decimals_keep_the_datas_places_not_the_types_scale(events):
    hundredths, tenths, days = events.sql("""
        SELECT bool_and(amount * 100 = round(amount * 100)),
               bool_and(reading * 10 = round(reading * 10)),
               count(DISTINCT day) > 100
        FROM synthetic""").fetchone()
    assert hundredths and tenths and days  # amount is DECIMAL(12, 4) holding cents


def test_pushed_bounds_are_kept_on_the_grid(events):
    rows = events.sql(
        "SELECT seen FROM generate('ev', target => 200, seed => 3) "
        "WHERE seen > TIMESTAMP '2024-03-10 12:00:00'"
    ).fetchall()
    assert len(rows) == 200
    assert all(r[0] > dt.datetime(2024, 3, 10, 12) and r[0].microsecond == 0 for r in rows)


def _fit(values: pa.Array, duck_type: str):
    [encoder] = analyze(
        pa.table({"c": values}), {"c": duck_type}, {}, Protection(5, np.random.default_rng(1))
    )
    return from_json(encoder.to_json())


def test_encoder_learns_the_step_and_old_models_without_it_decode_as_before():
    rng = np.random.default_rng(0)
    seconds = rng.integers(0, 10**7, 3000)
    values = pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(seconds=int(s)) for s in seconds])
    encoder = _fit(values, "TIMESTAMP")
    assert encoder.stats["step"] == 1_000_000  # microseconds: whole seconds
    tokens = np.repeat(np.arange(1, encoder.n_tokens), 5)
    decoded = encoder.decode(tokens, np.random.default_rng(1)).to_pylist()
    assert all(v.microsecond == 0 for v in decoded)

    old = from_json(encoder.to_json() | {"stats": dict(encoder.stats)})
    del old.stats["step"]  # a model trained before the step was learned
    decoded = old.decode(tokens, np.random.default_rng(1)).to_pylist()
    assert any(v.microsecond != 0 for v in decoded)


def test_session_order_keeps_whole_seconds(tmp_path):
    s = duck_synth.connect(str(tmp_path / "sessions.duckdb"))
    s.sql("""
        CREATE TABLE visits AS
        SELECT i // 10 AS visitor, ['a', 'b', 'c'][i // 10 % 3 + 1] AS channel,
               TIMESTAMP '2024-01-01' + to_seconds((i // 10) * 86400 + (i % 10) * (37 + i % 7))
                   AS ts,
               (i % 10) * 1.5 AS pages
        FROM range(2000) t(i)""")
    s.sql(
        "FROM train('v', 'visits', session_key => 'visitor', order_by => 'ts', epochs => 2, "
        "max_time => 600, seed => 1)"
    )
    off_grid = s.sql(
        "SELECT count(*) FILTER (microsecond(ts) % 1000000 <> 0), count(*) "
        "FROM generate('v', target => 50, seed => 2)"
    ).fetchone()
    assert off_grid[0] == 0 and off_grid[1] > 50
    s.close()


def test_differentially_private_timestamps_learn_their_step_from_the_budget():
    from duck_synth.privacy import ColumnBudget

    rng = np.random.default_rng(5)
    minutes = rng.integers(0, 10**6, 5000)
    values = pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(minutes=int(m)) for m in minutes])
    budget = ColumnBudget(1.0, 1e-6, np.random.default_rng(6))
    [encoder] = analyze(
        pa.table({"c": values}), {"c": "TIMESTAMP"}, {}, Protection(5, rng, budget=budget)
    )
    assert encoder.stats["step"] == 60_000_000  # whole minutes, from noisy counts
    decoded = encoder.decode(np.repeat(np.arange(1, encoder.n_tokens), 3), rng).to_pylist()
    assert all(v.second == 0 and v.microsecond == 0 for v in decoded if v is not None)


def test_diamonds_come_out_at_the_precision_of_the_shipped_data(tmp_path):
    data = Path(__file__).resolve().parent.parent / "examples" / "data" / "diamonds.parquet"
    s = duck_synth.connect(str(tmp_path / "diamonds.duckdb"))
    s.sql(f"CREATE TABLE diamonds AS FROM '{data}'")
    s.sql("FROM train('d', 'diamonds', nrows => 5000, epochs => 1, max_time => 600, seed => 1)")
    places = s.sql("""
        SELECT bool_and(round(carat, 2) = carat), bool_and(round(depth, 1) = depth),
               bool_and(round("table", 1) = "table"), bool_and(round(x, 2) = x)
        FROM generate('d', target => 2000, seed => 2)""").fetchone()
    assert places == (True, True, True, True)
    s.close()
