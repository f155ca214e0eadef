"""validate(): synthetic rows checked against what their model learned (real diamonds data)."""

from __future__ import annotations

import json

import pytest
from conftest import DIAMONDS_TABLE

import duck_synth
from duck_synth.evaluate.validate import validate

pytestmark = pytest.mark.slow

EVENTS_TABLE = """
CREATE TABLE events AS
SELECT DATE '2024-01-01' + (i % 300)::INTEGER AS day,
       CASE WHEN i % 50 = 0 THEN 'odd' || i ELSE ['a', 'b', 'c'][i % 3 + 1] END AS kind,
       'x' AS flag,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'n' || (i % 5) END AS note,
       (i % 1000 / 4)::DECIMAL(8, 2) AS amount,
       i % 2 = 0 AS even
FROM range(1000) t(i)
"""


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    """A database file with diamonds plus an id ('g', id as key) and a small mixed table ('e')."""
    session = duck_synth.connect(str(tmp_path_factory.mktemp("validate") / "validate.duckdb"))
    session.sql(DIAMONDS_TABLE)
    session.sql("CREATE TABLE gems AS SELECT row_number() OVER () AS id, * FROM diamonds")
    session.sql(
        "FROM train('g', 'gems', nrows => 3000, epochs => 2, max_time => 600, seed => 1, "
        "encoding => {'id': 'key'})"
    )
    session.sql("CREATE TABLE synthetic AS FROM generate('g', seed => 2)")
    session.sql(EVENTS_TABLE)
    session.sql("FROM train('e', 'events', epochs => 1, max_time => 600, seed => 1)")
    yield session
    session.close()


def failures(s, synthetic: str, model: str = "g") -> dict[tuple[str, str], tuple[int, str | None]]:
    rows = validate(s.con, model, synthetic)
    return {
        (r["column"], r["rule"]): (r["violations"], r["example"]) for r in rows if not r["passed"]
    }


def test_generated_rows_pass(s):
    rows = validate(s.con, "g", "synthetic")
    assert [r for r in rows if not r["passed"] or r["violations"]] == []
    checked = {(r["column"], r["rule"]) for r in rows}
    assert {("id", "unique_key"), ("price", "range"), ("price", "integer")} <= checked
    assert {("carat", "decimals"), ("cut", "category"), ("color", "null"), ("z", "type")} <= checked
    assert {r["rows"] for r in rows} == {3000}


def test_generated_query_of_every_kind_passes(s):
    rows = s.sql(
        "SELECT \"column\", rule, passed FROM validate('e', "
        "'SELECT * FROM generate(''e'', target => 500, seed => 3)')"
    ).fetchall()
    assert all(passed for _, _, passed in rows), rows
    rules = {(c, r) for c, r, _ in rows}
    assert {
        ("day", "range"),
        ("kind", "category"),
        ("flag", "constant"),
        ("amount", "decimals"),
    } <= rules
    assert ("even", "category") in rules and ("note", "null") in rules


def test_tampered_copy_reports_exactly_the_tampering(s):
    ids = [r[0] for r in s.sql("SELECT id FROM synthetic ORDER BY id LIMIT 6").fetchall()]
    for statement in (
        "CREATE OR REPLACE TABLE tampered AS FROM synthetic",
        "ALTER TABLE tampered ALTER cut TYPE VARCHAR",
        "ALTER TABLE tampered ALTER price TYPE DOUBLE",
        f"UPDATE tampered SET price = 10000000 WHERE id = {ids[0]}",
        f"UPDATE tampered SET cut = 'Superb' WHERE id = {ids[1]}",
        f"UPDATE tampered SET color = NULL WHERE id = {ids[2]}",
        f"UPDATE tampered SET price = 1234.5 WHERE id = {ids[3]}",
        f"UPDATE tampered SET carat = 0.555 WHERE id = {ids[4]}",
        f"UPDATE tampered SET id = {ids[0]} WHERE id = {ids[5]}",
        "ALTER TABLE tampered DROP COLUMN z",
    ):
        s.sql(statement)
    assert failures(s, "tampered") == {
        ("price", "range"): (1, "10000000.0"),
        ("cut", "category"): (1, "Superb"),
        ("color", "null"): (1, None),
        ("price", "integer"): (1, "1234.5"),
        ("carat", "decimals"): (1, "0.555"),
        ("id", "unique_key"): (1, str(ids[0])),
        ("z", "missing_column"): (3000, None),
    }
    warnings = s.sql(
        "SELECT \"column\", detail->>'found' FROM validate('g', 'tampered') "
        "WHERE rule = 'type' AND (detail->>'severity') = 'warning' ORDER BY 1"
    ).fetchall()
    assert warnings == [("cut", "VARCHAR"), ("price", "DOUBLE")]


def test_other_kinds_tampered(s):
    s.sql(
        "CREATE OR REPLACE TABLE events_synthetic AS FROM generate('e', target => 300, seed => 4)"
    )
    tampered = (
        "SELECT * REPLACE (CASE WHEN rowid = 0 THEN DATE '2031-01-01' ELSE day END AS day, "
        "CASE WHEN rowid = 1 THEN 'y' ELSE flag END AS flag, "
        "CASE WHEN rowid = 2 THEN 'zzz' WHEN rowid = 3 THEN '_RARE_' ELSE kind END AS kind, "
        "CASE WHEN rowid = 4 THEN NULL ELSE note END AS note) FROM events_synthetic"
    )
    assert failures(s, tampered, model="e") == {
        ("day", "range"): (1, "2031-01-01"),
        ("flag", "constant"): (1, "y"),
        ("kind", "category"): (1, "zzz"),  # '_RARE_' is the placeholder the model emits
    }  # and a NULL note is fine: the model saw NULL notes


def test_unreadable_values_and_extra_columns(s):
    query = (
        "SELECT * REPLACE (CASE WHEN price > 5000 THEN 'heavy' ELSE carat::VARCHAR END AS carat, "
        "{'a': 1} AS depth), 1 AS extra FROM synthetic"
    )
    rows = {(r["column"], r["rule"]): r for r in validate(s.con, "g", query)}
    heavy = s.sql("SELECT count(*) FROM synthetic WHERE price > 5000").fetchone()[0]
    assert rows[("carat", "type")]["violations"] == heavy > 0
    assert rows[("carat", "type")]["example"] == "heavy"
    assert rows[("depth", "type")]["violations"] == 3000  # a STRUCT is no number
    assert rows[("depth", "type")]["detail"]["severity"] == "violation"
    assert rows[("depth", "range")]["passed"]  # values that cannot be read are judged once
    assert rows[("extra", "extra_column")]["violations"] == 3000


def test_sql_result_columns_and_types(s):
    described = s.sql("DESCRIBE SELECT * FROM validate('g', 'synthetic')").fetchall()
    assert [(r[0], r[1]) for r in described] == [
        ("column", "VARCHAR"),
        ("rule", "VARCHAR"),
        ("passed", "BOOLEAN"),
        ("violations", "BIGINT"),
        ("rows", "BIGINT"),
        ("share", "DOUBLE"),
        ("example", "VARCHAR"),
        ("detail", "JSON"),
    ]
    detail = s.sql(
        "SELECT detail FROM validate('g', 'synthetic') WHERE \"column\" = 'price' AND rule = 'range'"
    ).fetchone()[0]
    assert json.loads(detail)["low"] <= json.loads(detail)["high"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("FROM validate('nope', 'synthetic')", "unknown model 'nope'"),
        ("FROM validate('g', 'nowhere')", "unknown table or view 'nowhere'"),
        ("FROM validate('g', 'SELECT missing FROM synthetic')", "validate\\(\\): synthetic"),
    ],
)
def test_unknown_model_or_table_is_one_line_error(s, refused, sql, message):
    refused(s, sql, message)
