"""recommend() and method => 'auto': methods ranked from the data's shape, with reasons."""

from __future__ import annotations

import pytest
from conftest import MALES_TABLE

import duck_synth
from duck_synth.recommend import Shape, rank


@pytest.fixture(scope="module")
def males():
    session = duck_synth.connect()
    session.con.execute(MALES_TABLE)
    yield session
    session.close()


def test_session_data_ranks_the_session_methods_first(males):
    rows = males.sql("FROM recommend('males', session_key => 'nr')").df()
    assert list(rows["method"][:3]) == ["autoregressive", "timegan", "tabgan"]
    assert list(rows["applicable"][:3]) == [True, True, False]
    assert rows["reason"][1].startswith("few sessions (545)")
    assert "545 sessions of 8.0 steps" in rows["shape"][0]


def test_tables_rank_the_row_methods_first(males):
    rows = males.sql("FROM recommend('SELECT * EXCLUDE (nr, year) FROM males')").df()
    assert list(rows["method"][:2]) == ["autoregressive", "tabgan"]
    assert not rows.set_index("method")["applicable"]["timegan"]
    assert rows["shape"][0].startswith("4,360 rows, 10 columns")


def test_shape_moves_the_gans_up():
    """Wide tables and many long sessions favour the methods that draw all at once."""
    wide = Shape(rows=50_000, columns=80, numeric=40, categorical=40, datetime=0,
                 max_cardinality=12)  # fmt: skip
    assert rank(wide)[0].method == "tabgan" and "80 columns" in rank(wide)[0].reason
    long = Shape(rows=2_000_000, columns=6, numeric=4, categorical=2, datetime=0,
                 max_cardinality=5, sessions=20_000, mean_length=100, max_length=400)  # fmt: skip
    assert rank(long)[0].method == "timegan" and "up to 400 steps" in rank(long)[0].reason


def test_auto_trains_the_first_recommendation_and_says_why(males):
    summary = (
        males.sql(
            "FROM train('auto_panel', 'males', session_key => 'nr', order_by => 'year', "
            "epochs => 2, seed => 0)"
        )
        .df()
        .iloc[0]
    )
    first = males.sql("FROM recommend('males', session_key => 'nr')").df().iloc[0]
    assert summary["method"] == first["method"]
    assert summary["why"] == f"auto: {first['reason']}"
    chosen = (
        males.sql(
            "FROM train('gan_panel', 'males', method => 'timegan', session_key => 'nr', "
            "order_by => 'year', epochs => 1, seed => 0)"
        )
        .df()
        .iloc[0]
    )
    assert chosen["why"] == "chosen"


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM recommend('no_such_table')", "unknown table or view 'no_such_table'"),
        ("FROM recommend('males', session_key => 'person')", "unknown column 'person'"),
        ("FROM recommend('SELECT * FROM males WHERE false')", "is empty"),
    ],
)
def test_bad_recommend_arguments_are_one_line(males, refused, sql, message):
    refused(males, sql, message)
