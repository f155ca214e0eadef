"""resample(): a column replaced where a SQL condition holds, by values or by the model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def drawn(session):
    """5,000 synthetic diamonds saved as a table."""
    session.sql("CREATE OR REPLACE TABLE drawn AS FROM generate('d', target => 5000, seed => 11)")
    return session.sql("FROM drawn").df()


BREAKS = "cut = 'Ideal' AND color <> 'D'"


def test_replace_values_where_a_condition_holds(session, drawn):
    out = session.sql(
        f"FROM resample('drawn', 'color', condition => '{BREAKS.replace(chr(39), chr(39) * 2)}', "
        "replace_values => ['D'], seed => 1)"
    ).df()
    broke = (drawn.cut == "Ideal") & (drawn.color != "D")
    assert broke.sum() > 1000
    assert len(out) == len(drawn)
    assert ((out.cut == "Ideal") & (out.color != "D")).sum() == 0
    assert (out.color[broke] == "D").all()
    # everything else is untouched, in the same order and types
    assert (out.drop(columns="color") == drawn.drop(columns="color")).all().all()
    assert (out.color[~broke] == drawn.color[~broke]).all()
    assert str(out.color.dtype) == str(drawn.color.dtype)


def test_replace_values_picks_among_the_list(session, drawn):
    out = session.sql(
        "SELECT color, count(*) FROM resample('drawn', 'color', condition => 'cut = ''Fair''', "
        "replace_values => ['D', 'E'], seed => 2) WHERE cut = 'Fair' GROUP BY color"
    ).fetchall()
    counts = dict(out)
    assert set(counts) == {"D", "E"} and min(counts.values()) > 0.3 * sum(counts.values())


def test_replace_by_model_satisfies_the_rule_and_keeps_rows_plausible(session, drawn):
    condition = BREAKS.replace("'", "''")
    out = session.sql(
        f"FROM resample('drawn', 'color', condition => '{condition}', model => 'd', seed => 3)"
    ).df()
    assert ((out.cut == "Ideal") & (out.color != "D")).sum() == 0
    assert (out.drop(columns="color") == drawn.drop(columns="color")).all().all()


def test_replace_by_model_draws_given_the_other_columns(session, drawn):
    """Prices redrawn for Ideal rows follow each row's carat, as real prices do."""
    out = session.sql(
        "FROM resample('drawn', 'price', condition => 'cut = ''Ideal''', model => 'd', seed => 4)"
    ).df()
    ideal = drawn.cut == "Ideal"
    changed = (out.price != drawn.price)[ideal].mean()
    assert changed > 0.5  # redrawn, not copied
    assert (out.price[~ideal] == drawn.price[~ideal]).all()
    corr = out[ideal][["carat", "price"]].corr().iloc[0, 1]
    assert corr > 0.8  # real diamonds: about 0.92
    real_mean = session.sql("SELECT avg(price) FROM diamonds WHERE cut = 'Ideal'").fetchone()[0]
    assert abs(out.price[ideal].mean() - real_mean) < 0.15 * real_mean


def test_replace_by_model_with_a_numeric_rule_draws_until_it_no_longer_holds(session, drawn):
    out = session.sql(
        "FROM resample('drawn', 'price', condition => 'price > 10000 AND carat < 2', "
        "model => 'd', seed => 5)"
    ).df()
    assert ((drawn.price > 10000) & (drawn.carat < 2)).sum() > 50
    assert ((out.price > 10000) & (out.carat < 2)).sum() == 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("'drawn', 'colour', replace_values => ['D']", "unknown column 'colour'"),
        ("'nope', 'color', replace_values => ['D']", "unknown table or view 'nope'"),
        ("'drawn', 'color'", "give either replace_values"),
        ("'drawn', 'color', replace_values => ['D'], model => 'd'", "give either replace_values"),
        ("'drawn', 'color', condition => 'colr = 1', replace_values => ['D']", "condition"),
        ("'drawn', 'price', replace_values => ['cheap']", "do not fit column 'price'"),
        ("'drawn', 'color', model => 'nope'", "nope"),
        ("'drawn', 'color', replace_values => []", "replace_values must be a non-empty list"),
        ("'drawn', 'color', replace_values => 'D'", "replace_values must be a non-empty list"),
    ],
)
def test_bad_resample_fails_in_one_line_and_changes_nothing(
    session, refused, drawn, arguments, message
):
    refused(session, f"FROM resample({arguments})", message)
