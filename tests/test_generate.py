"""generate() from SQL on a model trained on real data (diamonds)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

import duck_synth
from duck_synth import SynthError


def ks_distance(a, b) -> float:
    a, b = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    grid = np.concatenate([a, b])
    return float(
        np.abs(
            np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)
        ).max()
    )


def last_generation(session) -> tuple[int, int]:
    return session.con.execute(
        "SELECT rows_drawn, rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()


def test_where_on_a_category_returns_target_rows_without_rejection(session):
    rows = session.sql(
        "SELECT cut, price FROM generate('d', target => 5000, seed => 1) WHERE cut = 'Fair'"
    ).df()
    assert len(rows) == 5000 and set(rows["cut"]) == {"Fair"}
    drawn, returned = last_generation(session)
    assert drawn == returned == 5000
    real = session.sql("SELECT price, cut = 'Fair' AS fair FROM diamonds").df()
    to_fair = ks_distance(rows["price"], real.loc[real.fair, "price"])
    to_all = ks_distance(rows["price"], real["price"])
    assert to_fair <= 0.08 and to_fair < to_all / 2, (to_fair, to_all)


def test_count_star_over_pushed_filter(session):
    assert session.sql(
        "SELECT count(*) FROM generate('d', target => 300) WHERE cut = 'Fair'"
    ).fetchone() == (300,)


def test_in_list_and_numeric_range_are_conditions(session):
    rows = session.sql(
        "SELECT * FROM generate('d', target => 2000, seed => 2) WHERE clarity IN ('IF', 'VVS1') AND price >= 5000"
    ).df()
    assert (
        len(rows) == 2000 and set(rows["clarity"]) <= {"IF", "VVS1"} and rows["price"].min() >= 5000
    )


def test_expression_filters_are_applied_batch_by_batch(session):
    rows = session.sql(
        "SELECT * FROM generate('d', target => 500, seed => 3) WHERE x * y > 40"
    ).df()
    assert len(rows) == 500 and ((rows.x * rows.y) > 40).all()
    drawn, returned = last_generation(session)
    assert drawn > returned == 500


def test_default_target_under_a_filter_is_the_matching_training_rows(session):
    fair = session.sql("SELECT count(*) FROM diamonds WHERE cut = 'Fair'").fetchone()[0]
    assert session.sql("SELECT count(*) FROM generate('d') WHERE cut = 'Fair'").fetchone() == (
        fair,
    )


def test_limit_becomes_target(session):
    assert session.sql(
        "SELECT count(*) FROM (SELECT * FROM generate('d') LIMIT 17)"
    ).fetchone() == (17,)
    assert last_generation(session) == (17, 17)


def test_magnitude_scales_the_training_rows(session):
    assert session.sql("SELECT count(*) FROM generate('d', magnitude => 0.01)").fetchone() == (539,)


def test_types_are_the_training_columns_types(session):
    session.sql("CREATE OR REPLACE TABLE syn_types AS FROM generate('d', target => 10)")
    real = session.sql("SELECT column_name, column_type FROM (DESCRIBE diamonds)").fetchall()
    assert (
        session.sql("SELECT column_name, column_type FROM (DESCRIBE syn_types)").fetchall() == real
    )


def test_same_seed_same_rows_across_batches_and_paths(session):
    for sql in (
        "FROM generate('d', target => 2500, seed => 11, batch_size => 700)",
        "FROM generate('d', target => 2500, seed => 11, batch_size => 700) WHERE cut = 'Good'",
        "FROM generate('d', target => 600, seed => 11) WHERE x * y > 30",
        "FROM generate('d', seed_rows => 'SELECT carat FROM diamonds LIMIT 900', seed => 11, batch_size => 400)",
    ):
        first, second = session.sql(sql).arrow(), session.sql(sql).arrow()
        assert first.equals(second), sql
        assert not first.equals(session.sql(sql.replace("seed => 11", "seed => 12")).arrow()), sql


def test_unseeded_runs_record_their_seed_for_replay(session):
    first = session.sql("FROM generate('d', target => 50)").arrow()
    seed = session.con.execute(
        "SELECT seed FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()[0]
    assert session.sql(f"FROM generate('d', target => 50, seed => {seed})").arrow().equals(first)


def test_seed_rows_keep_values_and_condition_the_rest(session):
    rows = session.sql(
        "SELECT carat, avg(price) AS price, count(*) AS n FROM generate('d', seed => 5, "
        "seed_rows => 'SELECT unnest([0.5, 2.0]) AS carat FROM range(1000)') GROUP BY carat ORDER BY carat"
    ).fetchall()
    assert [(c, n) for c, _, n in rows] == [(0.5, 1000), (2.0, 1000)]
    assert rows[1][1] > 3 * rows[0][1]  # seeding carat = 2 raises price


def test_seed_rows_with_nulls_generate_those_cells(session):
    rows = session.sql(
        "FROM generate('d', seed_rows => 'SELECT * FROM (VALUES (1.0, ''Ideal''), (NULL, ''Fair'')) t(carat, cut)')"
    ).df()
    assert (
        list(rows["cut"]) == ["Ideal", "Fair"] and rows["carat"][0] == 1.0 and rows["carat"][1] > 0
    )


def test_explain_shows_pushed_and_kept_predicates(session):
    text = duck_synth.explain(
        "SELECT * FROM diamonds d LEFT JOIN generate('d') g ON d.carat = g.carat "
        "WHERE g.cut = 'Fair' AND (g.price > 1 OR d.price > 1)",
        session,
    )
    assert "kept in WHERE: g.cut = 'Fair' (is above an outer join" in text
    text = session.explain(
        "SELECT * FROM generate('d') g JOIN diamonds d USING (carat) "
        "WHERE g.cut = 'Fair' AND (g.price > 1 OR d.price > 1)"
    )
    assert "pushed into generate('d'): g.cut = 'Fair'" in text
    assert "kept in WHERE: g.price > 1 OR d.price > 1 (references another source" in text
    assert session.sql("EXPLAIN SELECT * FROM generate('d') WHERE cut = 'Fair'").fetchall()[0] == (
        "pushed into generate('d'): cut = 'Fair'",
    )


def test_plain_connection_uses_filter_and_synth_sql(diamonds_path, session):
    plain = duckdb.connect(str(diamonds_path))  # a second, plain connection of the process
    assert plain.execute(
        "SELECT count(*), min(cut) FROM generate('d', target => 40, filter => 'cut = ''Ideal''')"
    ).fetchone() == (40, "Ideal")
    assert plain.execute(
        "SELECT count(*) FROM generate('d', target => 4, \"where\" => 'price > 2000')"
    ).fetchone() == (4,)
    assert plain.execute(
        "FROM synth_sql('SELECT count(*) AS n, max(cut) AS c FROM generate(''d'', target => 30) WHERE cut = ''Good''')"
    ).fetchone() == (30, "Good")


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM generate('nope')", "unknown model 'nope'"),
        ("FROM generate('d@42')", "model 'd' has no version 42"),
        ("FROM generate('d', target => 'many')", "target must be an integer"),
        ("FROM generate('d', colour => 'red')", "unknown argument 'colour'"),
        ("FROM generate('d') WHERE colour = 'red'", "unknown column 'colour'"),
        ("FROM generate('d', filter => 'colour = 1')", "unknown column 'colour'"),
        ("FROM generate('d', target => 5, magnitude => 2)", "either target or magnitude"),
        (
            "FROM generate('d', seed_rows => 'SELECT 1 AS colour')",
            "column 'colour' is not in model 'd'",
        ),
        ("FROM generate('d', target => 5) WHERE cut = 'Flawless'", "found 0 rows"),
        ("FROM generate('d', target => 5) WHERE price < 0", "found 0 rows"),
        ("FROM generate('d', target => 5) WHERE x * 0 > 1", "found 0 of 5 rows"),
    ],
)
def test_bad_generate_calls_fail_on_one_line_and_change_nothing(session, refused, sql, message):
    refused(session, sql, message)


def test_temperature_and_top_p_narrow_the_distribution(session):
    def distinct_cuts(args: str) -> int:
        sql = f"SELECT count(DISTINCT cut) FROM generate('d', target => 3000, seed => 8{args})"
        return session.sql(sql).fetchone()[0]

    assert distinct_cuts("") == 5
    assert distinct_cuts(", top_p => 0.01") == 1  # only the most likely value of each column
    cold = session.sql(
        "SELECT stddev(price) FROM generate('d', target => 3000, seed => 8, temperature => 0.3)"
    )
    warm = session.sql("SELECT stddev(price) FROM generate('d', target => 3000, seed => 8)")
    assert cold.fetchone()[0] < warm.fetchone()[0]
    with pytest.raises(SynthError, match="top_p must be in"):
        session.sql("FROM generate('d', top_p => 0)")
