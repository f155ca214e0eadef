"""Rockfish's six generation use cases (rockfish-generation.txt), each end to end in SQL on
real data: diamonds (tables) and plm's Males panel (careers as sessions)."""

from __future__ import annotations

import json

import pandas as pd


def last_generation(session) -> tuple[int, int]:
    return session.sql(
        "SELECT rows_drawn, rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()


def test_1_regulatory_compliance_a_set_amount_of_masked_data(session, careers):
    """Generate a given amount (sessions for a session model), identifiers pseudonymised."""
    session.sql(
        f"""CREATE OR REPLACE TABLE release AS
            SELECT pseudonymize(nr, 'release key') AS person, year, school, ethn, wage
            FROM generate('{careers}', target => 150, seed => 1)"""
    )
    people, rows, pattern = session.sql(
        "SELECT count(DISTINCT person), count(*), bool_and(regexp_full_match(person, '[0-9a-f]{20}')) "
        "FROM release"
    ).fetchone()
    assert people == 150 and rows > 150 * 4 and pattern
    # default amount: as many sessions as the training data has (545 men)
    sessions = session.sql(f"SELECT count(DISTINCT nr) FROM generate('{careers}', seed => 2)")
    assert sessions.fetchone()[0] == 545


def test_2_stress_testing_continuous_generation_into_a_table(session):
    summary = session.sql(
        "FROM generate_into('stress', 'd', target => 300000, batch_size => 50000, seed => 3)"
    ).df()
    assert summary.batches[0] == 6 and summary.rows[0] == 300000
    assert session.sql("SELECT count(*) FROM stress").fetchone()[0] == 300000
    session.sql("DROP TABLE stress")


def test_3_conditions_on_session_metadata(session, careers):
    rows = session.sql(
        f"SELECT nr, ethn, school FROM generate('{careers}', target => 40, seed => 4) "
        "WHERE ethn = 'hisp' AND school >= 12"
    ).df()
    assert rows.nr.nunique() == 40
    assert (rows.ethn == "hisp").all() and (rows.school >= 12).all()
    drawn, returned = last_generation(session)
    assert drawn == returned == 40  # the session model was conditioned: nothing rejected


def test_4_rare_events_with_targets_by_json_and_sql_conditions(session):
    real_share = session.sql(
        "SELECT avg(CAST(cut = 'Fair' AND price > 10000 AS DOUBLE)) FROM diamonds"
    ).fetchone()[0]
    assert real_share < 0.005  # a rare event
    by_json = session.sql(
        "SELECT cut, price FROM generate('d', target => 100, seed => 5, conditions => "
        """'{"query_ast": {"and": [{"eq": {"cut": "Fair"}}, {"gt": {"price": 10000}}]}}')"""
    ).df()
    by_sql = session.sql(
        "SELECT cut, price FROM generate('d', target => 100, seed => 5) "
        "WHERE cut = 'Fair' AND price > 10000"
    ).df()
    for rows in (by_json, by_sql):
        assert len(rows) == 100 and (rows.cut == "Fair").all() and (rows.price > 10000).all()
    scenario = session.sql(
        """SELECT cut, count(*) AS n FROM (
               SELECT * FROM generate('d', target => 30, seed => 6) WHERE cut = 'Fair' AND price > 10000
               UNION ALL
               SELECT * FROM generate('d', target => 70, seed => 7) WHERE cut = 'Ideal' AND carat > 2
           ) GROUP BY cut ORDER BY cut"""
    ).fetchall()
    assert [(str(c), n) for c, n in scenario] == [("Fair", 30), ("Ideal", 70)]


def test_5_equal_representation(session):
    rows = session.sql("SELECT cut FROM generate('d', equalize => 'cut', seed => 8)").df()
    training_rows = session.sql("SELECT training_rows FROM models() WHERE name = 'd'").fetchone()[0]
    shares = rows.cut.astype(str).value_counts(normalize=True)
    assert len(rows) == training_rows and len(shares) == 5
    assert (shares - 0.2).abs().max() < 1e-4


def test_6_inclusion_exclusion_rule_by_replace_and_by_constraint(session):
    """Rockfish: rear doors must be black. Here: an Ideal cut must have colour D."""
    session.sql(
        "CREATE OR REPLACE TABLE inventory AS FROM generate('d', target => 3000, seed => 9)"
    )
    replaced = session.sql(
        "FROM resample('inventory', 'color', condition => 'cut = ''Ideal'' AND color <> ''D''', "
        "replace_values => ['D'], seed => 1)"
    ).df()
    assert len(replaced) == 3000
    assert not ((replaced.cut == "Ideal") & (replaced.color != "D")).any()
    constrained = session.sql(
        "SELECT cut, color FROM generate('d', target => 3000, seed => 10, "
        "constraints => ['cut <> ''Ideal'' OR color = ''D'''])"
    ).df()
    assert len(constrained) == 3000
    assert not ((constrained.cut == "Ideal") & (constrained.color != "D")).any()
    acceptance = session.sql(
        "SELECT acceptance FROM generations() ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()[0]
    assert 0 < acceptance < 1  # rows breaking the rule were drawn again
    assert json.loads(
        session.sql(
            "SELECT arguments FROM generations() ORDER BY generation_id DESC LIMIT 1"
        ).fetchone()[0]
    )["constraints"] == ["cut <> 'Ideal' OR color = 'D'"]
    shares = pd.Series(constrained.cut.astype(str)).value_counts(normalize=True)
    assert shares["Ideal"] < 0.2  # fewer Ideal rows survive the rule, as the rule implies
