"""The rewrite passes, SQL in, SQL out (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duck_synth.errors import SynthError
from duck_synth.rewrite import rewrite_sql

MODELS = {"d": ["carat", "cut", "price"], "m": ["a", "b"]}
TABLES = {"t": ["cut", "k"], "other": ["id", "price"]}
ROWS = {"d": 149}  # training rows: the default target
VIEWS = {  # as duckdb_views() shows them: stored by the rewrite, so marked
    "fair": "CREATE VIEW fair AS SELECT * FROM generate('d', target => 10, "
    "conditions => '{\"view\": \"columns only\"}') WHERE cut = 'Fair';",
    "renamed": "CREATE VIEW renamed(c, p) AS SELECT cut, price FROM generate('d');",
}
FIXTURES = Path(__file__).parent / "fixtures" / "rewrite.sql"


def rewritten(sql: str) -> str:
    statements, _ = rewrite_sql(sql, MODELS.get, TABLES.get, VIEWS.get, ROWS.get)
    return ";\n".join(statements)


def notes(sql: str) -> list[str]:
    return rewrite_sql(sql, MODELS.get, TABLES.get, VIEWS.get, ROWS.get)[1].lines


def fixture_pairs() -> list[tuple[str, str]]:
    lines = [
        line
        for line in FIXTURES.read_text().splitlines()
        if line.strip() and (not line.startswith("--") or line == "-- same")
    ]
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    return [(given, given if expected == "-- same" else expected) for given, expected in pairs]


@pytest.mark.parametrize(("given", "expected"), fixture_pairs())
def test_fixture(given, expected):
    assert rewritten(given) == expected


def test_equality_is_pushed_into_the_generator():
    assert rewritten("SELECT * FROM generate('d', target => 5) WHERE cut = 'Fair'") == (
        "SELECT * FROM GENERATE('d', target => 5, filter => 'cut = ''Fair''')"
    )


def test_alias_qualified_conjuncts_are_pushed_and_unqualified():
    assert rewritten(
        "SELECT * FROM generate('d') AS g WHERE g.price > 10 AND g.cut IN ('A', 'B')"
    ) == ("SELECT * FROM GENERATE('d', filter => 'price > 10 AND cut IN (''A'', ''B'')') AS g")


def test_or_with_another_tables_column_stays():
    sql = "SELECT * FROM generate('d') g JOIN t ON g.cut = t.cut WHERE g.price > 1 AND (g.carat > 1 OR t.k = 2)"
    assert rewritten(sql) == (
        "SELECT * FROM GENERATE('d', filter => 'price > 1') AS g JOIN t ON g.cut = t.cut "
        "WHERE g.carat > 1 OR t.k = 2"
    )


def test_condition_above_left_join_on_generated_side_is_not_pushed():
    sql = "SELECT * FROM t LEFT JOIN generate('d') g ON g.cut = t.cut WHERE g.price > 1"
    assert rewritten(sql) == sql
    assert notes(sql) == [
        "kept in WHERE: g.price > 1 (is above an outer join that can NULL-extend the generated rows)"
    ]


def test_condition_on_preserved_side_of_left_join_is_pushed():
    assert rewritten(
        "SELECT * FROM generate('d') g LEFT JOIN t ON g.cut = t.cut WHERE g.price > 1"
    ) == ("SELECT * FROM GENERATE('d', filter => 'price > 1') AS g LEFT JOIN t ON g.cut = t.cut")


def test_full_and_right_joins_keep_conditions():
    for sql in (
        "SELECT * FROM generate('d') g FULL JOIN t ON g.cut = t.cut WHERE g.price > 1",
        "SELECT * FROM generate('d') g RIGHT JOIN t ON g.cut = t.cut WHERE g.price > 1",
    ):
        assert rewritten(sql) == sql


def test_unqualified_column_of_a_joined_table_is_not_pushed():
    sql = "SELECT * FROM generate('d') g JOIN t USING (cut) WHERE k = 1"
    assert rewritten(sql) == sql


def test_ambiguous_column_is_not_pushed():
    sql = "SELECT * FROM generate('d') g, other o WHERE price > 1"
    assert rewritten(sql) == sql


def test_aggregation_keeps_where_before_it_and_having_after_it():
    assert rewritten(
        "SELECT cut, count(*) FROM generate('d') WHERE price > 1 GROUP BY cut HAVING count(*) > 2"
    ) == (
        "SELECT cut, COUNT(*) FROM GENERATE('d', filter => 'price > 1') GROUP BY cut HAVING COUNT(*) > 2"
    )


def test_subquery_in_predicate_is_not_pushed():
    sql = "SELECT * FROM generate('d') WHERE price > (SELECT max(price) FROM other)"
    assert rewritten(sql) == sql


def test_volatile_predicate_is_not_pushed():
    sql = "SELECT * FROM generate('d') WHERE random() < 0.5"
    assert rewritten(sql) == sql


def test_pushdown_inside_cte_and_subquery():
    assert rewritten("WITH x AS (SELECT * FROM generate('d') WHERE cut = 'A') SELECT * FROM x") == (
        "WITH x AS (SELECT * FROM GENERATE('d', filter => 'cut = ''A''')) SELECT * FROM x"
    )


def test_two_generate_calls_get_their_own_predicates():
    assert rewritten(
        "SELECT * FROM generate('d') a, generate('m') b WHERE a.cut = 'X' AND b.a = 1 AND a.price = b.b"
    ) == (
        "SELECT * FROM GENERATE('d', filter => 'cut = ''X''') AS a, GENERATE('m', filter => 'a = 1') AS b "
        "WHERE a.price = b.b"
    )


def test_existing_filter_is_combined():
    assert rewritten("SELECT * FROM generate('d', filter => 'price > 1') WHERE cut = 'A'") == (
        "SELECT * FROM GENERATE('d', filter => 'price > 1 AND cut = ''A''')"
    )


def test_seed_rows_calls_are_not_filtered():
    sql = "SELECT * FROM generate('d', seed_rows => 's') WHERE cut = 'A'"
    assert rewritten(sql) == sql


def test_limit_caps_a_larger_target():
    assert (
        rewritten("SELECT * FROM generate('d', target => 50) LIMIT 7")
        == "SELECT * FROM GENERATE('d', target => 7) LIMIT 7"
    )


def test_limit_over_the_default_target_caps_it_with_at_most_and_says_so():
    sql = "SELECT * FROM generate('d') WHERE cut = 'A' LIMIT 100001"
    assert rewritten(sql) == (
        "SELECT * FROM GENERATE('d', filter => 'cut = ''A''', at_most => 100001) LIMIT 100001"
    )
    assert notes(sql)[-1] == "LIMIT 100001 caps generate('d'): at_most => 100001"


def test_limit_under_the_training_rows_becomes_the_target():
    assert rewritten("SELECT * FROM (SELECT * FROM generate('d')) LIMIT 17") == (
        "SELECT * FROM (SELECT * FROM GENERATE('d', target => 17)) LIMIT 17"
    )


def test_limit_caps_a_computed_target_with_least():
    assert rewritten("SELECT * FROM generate('d', target => 10 * 5) LIMIT 7") == (
        "SELECT * FROM GENERATE('d', target => LEAST(10 * 5, 7)) LIMIT 7"
    )


def test_predicate_left_above_a_window_says_why():
    sql = (
        "SELECT * FROM (SELECT *, row_number() OVER () AS r FROM generate('d')) s WHERE s.cut = 'F'"
    )
    assert notes(sql) == [
        "kept in WHERE: s.cut = 'F' (the subquery has window functions; applied after generation)"
    ]


def test_marked_view_calls_are_unmarked_when_expanded():
    assert "view" not in rewritten("SELECT * FROM fair")


def test_limit_is_not_a_target_when_ordered_aggregated_or_targeted():
    for sql in (
        "SELECT * FROM generate('d') ORDER BY price LIMIT 7",
        "SELECT count(*) FROM generate('d') LIMIT 7",
        "SELECT * FROM generate('d', target => 3) LIMIT 7",
        "SELECT * FROM generate('d') WHERE price * random() > 1 LIMIT 7",
        "SELECT * FROM generate('d') LIMIT 7 OFFSET 2",
    ):
        assert rewritten(sql) == sql


def test_limit_after_pushed_filter_caps_target():
    assert rewritten("SELECT * FROM generate('d', target => 9) WHERE cut = 'A' LIMIT 3") == (
        "SELECT * FROM GENERATE('d', target => 3, filter => 'cut = ''A''') LIMIT 3"
    )


def test_unknown_named_argument_is_refused_by_name():
    with pytest.raises(SynthError, match="generate\\(\\): unknown argument 'tagret'"):
        rewritten("SELECT * FROM generate('d', tagret => 5)")


def test_unknown_column_of_the_only_source_is_refused():
    with pytest.raises(SynthError, match="unknown column 'colour'"):
        rewritten("SELECT * FROM generate('d') WHERE colour = 'E'")


def test_queries_without_generate_are_untouched():
    sql = "select  *  from t where k=1"
    assert rewritten(sql) == sql
