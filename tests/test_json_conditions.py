"""PostAmplify's JSON conditions: compiled to SQL predicates and pushed into generate()."""

from __future__ import annotations

import pytest

from duck_synth.conditions import json_predicate


@pytest.mark.parametrize(
    "condition, sql",
    [
        ('{"query_ast": {"eq": {"fraud": 1}}}', '"fraud" = 1'),
        ('{"eq": {"cut": "Fair", "color": "D"}}', "\"cut\" = 'Fair' AND \"color\" = 'D'"),
        ('{"ne": {"cut": null}}', 'NOT "cut" IS NULL'),
        ('{"in": {"cut": ["Fair", "Good"]}}', "\"cut\" IN ('Fair', 'Good')"),
        ('{"not_in": {"cut": ["Fair"]}}', "NOT \"cut\" IN ('Fair')"),
        ('{"between": {"price": [300, 1000]}}', '"price" BETWEEN 300 AND 1000'),
        ('{"gte": {"carat": 1.5}}', '"carat" >= 1.5'),
        ('{"is_null": ["x", "y"]}', '"x" IS NULL AND "y" IS NULL'),
        ('{"like": {"clarity": "VS%"}}', "\"clarity\" LIKE 'VS%'"),
        (
            '{"or": [{"lt": {"price": 500}}, {"and": [{"eq": {"cut": "Ideal"}}, '
            '{"not": {"gt": {"carat": 2}}}]}]}',
            '"price" < 500 OR ("cut" = \'Ideal\' AND NOT "carat" > 2)',
        ),
        ('{"eq": {"name": "it\'s"}}', "\"name\" = 'it''s'"),
    ],
)
def test_json_conditions_compile_to_sql(condition, sql):
    assert json_predicate(condition) == sql


def test_json_conditions_are_pushed_down_like_where(session):
    rows = session.sql(
        "SELECT cut, price FROM generate('d', target => 300, seed => 1, "
        """conditions => '{"and": [{"eq": {"cut": "Fair"}}, {"lt": {"price": 2000}}]}')"""
    ).fetchall()
    assert len(rows) == 300 and all(cut == "Fair" and price < 2000 for cut, price in rows)
    drawn, returned, arguments = session.con.execute(
        "SELECT rows_drawn, rows_returned, arguments FROM synth.generations "
        "ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    assert returned == 300 and drawn < 2 * returned  # conditioned, hardly rejected
    assert '"conditions"' in arguments


def test_json_conditions_combine_with_a_pushed_where(session):
    rows = session.sql(
        """SELECT cut, color FROM generate('d', target => 50, seed => 2,
                  conditions => '{"in": {"color": ["D", "E"]}}') WHERE cut = 'Ideal'"""
    ).fetchall()
    assert len(rows) == 50 and {c for c, _ in rows} == {"Ideal"}
    assert {color for _, color in rows} <= {"D", "E"}


@pytest.mark.parametrize(
    "condition, message",
    [
        ('{"eq": {"cut": "Fair"', "not valid JSON"),
        ('{"equals": {"cut": "Fair"}}', "unknown operator 'equals'"),
        ('{"in": {"cut": "Fair"}}', "'in' on 'cut' takes a non-empty list"),
        ('{"eq": {"no_such_column": 1}}', "unknown column 'no_such_column'"),
        ('{"eq": {"cut": "Fair"}, "gt": {"price": 1}}', "one operator"),
    ],
)
def test_bad_json_conditions_are_one_line(session, refused, condition, message):
    refused(session, f"FROM generate('d', target => 5, conditions => '{condition}')", message)


def test_several_conditions_each_with_its_own_target_union_all(session):
    """The README's pattern: one pushed-down generate() per condition, saved as one table."""
    session.sql(
        """
        CREATE TABLE scenario AS
        SELECT * FROM generate('d', target => 120, seed => 5) WHERE cut = 'Fair'
        UNION ALL
        SELECT * FROM generate('d', target => 80, seed => 6) WHERE cut = 'Ideal' AND price > 5000
        """
    )
    session.sql(
        "INSERT INTO scenario SELECT * FROM generate('d', target => 30, seed => 7) "
        "WHERE color = 'J'"
    )
    counts = session.sql(
        """
        SELECT count(*) FILTER (WHERE cut = 'Fair'),
               count(*) FILTER (WHERE cut = 'Ideal' AND price > 5000),
               count(*) FILTER (WHERE color = 'J'), count(*)
        FROM scenario
        """
    ).fetchone()
    assert counts[0] >= 120 and counts[1] >= 80 and counts[2] >= 30 and counts[3] == 230
    targets = session.con.execute(
        "SELECT rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 3"
    ).fetchall()
    assert sorted(t for (t,) in targets) == [30, 80, 120]
    session.sql("DROP TABLE scenario")
