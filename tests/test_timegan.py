"""The DoppelGANger-style method (method => 'timegan') on plm's Males panel, and variable
lengths for both session methods on a seeded cut of it."""

from __future__ import annotations

import pytest
from conftest import MALES_TABLE

import duck_synth

PANEL = "session_key => 'nr', order_by => 'year'"
WAGE_LAG = """
SELECT corr(wage, previous) FROM (
    SELECT wage, lag(wage) OVER (PARTITION BY nr ORDER BY year) AS previous FROM {table}
)
"""
# each person's history cut after a year drawn from a hash of the person: 1 to 8 years
MALES_CUT = """
CREATE TABLE males_cut AS
SELECT m.* FROM males m
JOIN (SELECT DISTINCT nr, 1980 + hash(nr * 7919) % 8 AS last_year FROM males) c USING (nr)
WHERE m.year <= c.last_year
"""
LENGTHS = "SELECT count(*) AS n FROM {table} GROUP BY nr"


@pytest.fixture(scope="module")
def gan():
    session = duck_synth.connect()
    session.con.execute(MALES_TABLE)
    summary = session.sql(
        f"FROM train('g', 'males', method => 'timegan', {PANEL}, epochs => 150, max_time => 1800, "
        "seed => 0)"
    ).df()
    session.sql("CREATE TABLE synthetic AS FROM generate('g', seed => 1)")
    yield session, summary.iloc[0]
    session.close()


def test_train_summary_names_the_method_and_counts_sessions(gan):
    _, summary = gan
    assert summary["method"] == "timegan" and summary["sessions"] == 545
    assert summary["stopped"] == "epochs" and summary["epochs"] == 150


def test_sessions_have_eight_consecutive_years_and_constant_metadata(gan):
    session, _ = gan
    per_person = session.sql(
        """
        SELECT nr, count(*) AS steps, min(year) AS first, max(year) AS last,
               count(DISTINCT year) AS years, count(DISTINCT school) AS schools,
               count(DISTINCT ethn) AS ethns
        FROM synthetic GROUP BY nr
        """
    ).df()
    assert len(per_person) == 545
    assert (per_person["steps"] == 8).mean() > 0.9  # the generation flags learned the length
    consecutive = per_person["last"] - per_person["first"] + 1 == per_person["steps"]
    assert (consecutive & (per_person["years"] == per_person["steps"])).all()
    assert (per_person["schools"] == 1).all() and (per_person["ethns"] == 1).all()


def test_wages_move_within_a_person_as_a_series(gan):
    """Auto-normalization: each person's wages sit around their own level, so a wage predicts
    the next year's (real r = 0.65; shuffled steps would give about 0.25)."""
    session, _ = gan
    real = session.sql(WAGE_LAG.format(table="males")).fetchone()[0]
    synthetic = session.sql(WAGE_LAG.format(table="synthetic")).fetchone()[0]
    assert real > 0.6 and 0.4 < synthetic < 0.995
    (score,) = session.sql(
        f"SELECT value FROM evaluate('males', 'synthetic', {PANEL}) WHERE metric = 'sessions'"
    ).fetchone()
    assert score > 0.8


def test_where_on_metadata_conditions_the_attributes(gan):
    session, _ = gan
    rows = session.sql(
        "SELECT nr, ethn, school FROM generate('g', target => 40, seed => 3) WHERE ethn = 'black'"
    ).df()
    assert rows["nr"].nunique() == 40 and set(rows["ethn"]) == {"black"}
    drawn, returned = session.con.execute(
        "SELECT rows_drawn, rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    assert drawn == returned == 40


def test_seed_rows_feed_given_metadata_to_the_step_generator(gan):
    session, _ = gan
    rows = session.sql(
        "FROM generate('g', seed => 5, seed_rows => "
        "'SELECT * FROM (VALUES (16, ''black''), (9, ''hisp'')) s(school, ethn)')"
    ).df()
    first = rows.groupby("nr").agg(school=("school", "first"), ethn=("ethn", "first"))
    assert list(first["school"]) == [16, 9] and list(first["ethn"]) == ["black", "hisp"]


@pytest.mark.parametrize(
    "method, budget",
    [
        ("autoregressive", "epochs => 100, max_time => 1800"),
        ("timegan", "epochs => 300, max_time => 1800"),
    ],
)
def test_variable_lengths_match_for_both_session_methods(method, budget):
    session = duck_synth.connect()
    session.con.execute(MALES_TABLE)
    session.con.execute(MALES_CUT)
    session.sql(
        f"FROM train('cut', 'males_cut', method => '{method}', {PANEL}, {budget}, seed => 0)"
    )
    session.sql("CREATE TABLE synthetic AS FROM generate('cut', seed => 1)")
    (tv_complement,) = session.sql(
        f"""
        WITH real AS ({LENGTHS.format(table="males_cut")}),
             synthetic AS ({LENGTHS.format(table="synthetic")}),
             shares AS (
                SELECT n, count(*) / (SELECT count(*) FROM real) AS share, 'real' AS side
                FROM real GROUP BY n
                UNION ALL
                SELECT n, count(*) / (SELECT count(*) FROM synthetic), 'synthetic'
                FROM synthetic GROUP BY n
             )
        SELECT 1 - sum(abs(r)) / 2 FROM (
            SELECT sum(CASE side WHEN 'real' THEN share ELSE -share END) AS r
            FROM shares GROUP BY n
        )
        """
    ).fetchone()
    distinct_lengths = session.sql(
        f"SELECT count(DISTINCT n) FROM ({LENGTHS.format(table='males_cut')})"
    ).fetchone()[0]
    assert distinct_lengths == 8  # the cut gives every length from 1 to 8
    assert tv_complement >= 0.9, tv_complement
    session.close()
