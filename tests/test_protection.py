"""Value protection: planted rare values and extremes never come out, nor sit in the catalog."""

from __future__ import annotations

import json

import pytest

import duck_synth

PLANTED = """
CREATE TABLE people AS
SELECT (i % 50) + 20                                   AS age,
       ['north', 'south', 'east', 'west'][i % 4 + 1]   AS region,
       round(30000 + (i * 7919 % 50000), 2)::DECIMAL(10, 2) AS income,
       DATE '2000-01-01' + (i * 37 % 3650)::INTEGER     AS joined
FROM range(5000) t(i)
UNION ALL SELECT 99, 'atlantis', 1234567.89, DATE '1900-01-01'     -- one row: rare and extreme
UNION ALL SELECT 18, 'el dorado', 9999999.99, DATE '2099-12-31'    -- and another
UNION ALL SELECT 30, 'el dorado', 10.01, DATE '1950-06-01'
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(PLANTED)
    s.sql("FROM train('p', 'people', epochs => 3, max_time => 600, seed => 3)")
    s.sql("CREATE TABLE synthetic AS FROM generate('p', target => 100000, seed => 4)")
    yield s, path
    s.close()


def test_rare_categories_never_appear(planted):
    s, _ = planted
    regions = {r[0] for r in s.sql("SELECT DISTINCT region FROM synthetic").fetchall()}
    assert regions <= {"north", "south", "east", "west", "_RARE_"}


def test_extreme_values_never_appear(planted):
    s, _ = planted
    low, high, max_age, min_age, first, last = s.sql(
        "SELECT min(income), max(income), max(age), min(age), min(joined), max(joined) FROM synthetic"
    ).fetchone()
    assert (
        low >= 30000 and high < 80000
    )  # the planted 10.01, 1,234,567.89, 9,999,999.99 are clipped
    assert min_age >= 20 and max_age <= 69
    assert str(first) >= "2000-01-01" and str(last) < "2010-01-01"


def test_stored_statistics_and_exported_file_hold_no_planted_value(planted, tmp_path):
    s, _ = planted
    stats = s.sql("SELECT statistics::VARCHAR FROM synth.models").fetchone()[0]
    assert "atlantis" not in stats and "el dorado" not in stats
    encoders = {e["name"]: e["stats"] for e in json.loads(stats)["encoders"]}
    for column, secrets in (("age", {99, 18}), ("income", {1234567.89, 9999999.99, 10.01})):
        numbers = {
            encoders[column]["low"],
            encoders[column]["high"],
            *encoders[column]["points"],
            *encoders[column]["edges"],
            *encoders[column]["quantiles"],
        }
        assert not numbers & secrets, column
    path = tmp_path / "p.safetensors"
    s.sql(f"FROM export_model('p', '{path}')")
    blob = path.read_bytes()
    assert b"atlantis" not in blob and b"el dorado" not in blob and b"1234567.89" not in blob


def test_a_filter_on_a_protected_value_finds_nothing(planted):
    s, _ = planted
    with pytest.raises(duck_synth.SynthError, match="found 0 rows"):
        s.sql("FROM generate('p', target => 5) WHERE region = 'atlantis'")


def test_decimal_scale_and_integers_survive(planted):
    s, _ = planted
    types = dict(s.sql("SELECT column_name, column_type FROM (DESCRIBE synthetic)").fetchall())
    assert types == {
        "age": "BIGINT",
        "region": "VARCHAR",
        "income": "DECIMAL(10,2)",
        "joined": "DATE",
    }
    cents = s.sql(
        "SELECT count(*) FROM synthetic WHERE income * 100 != round(income * 100)"
    ).fetchone()
    assert cents == (0,)
