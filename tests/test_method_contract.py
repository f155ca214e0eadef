"""One contract every method keeps, run over all of them (as ibis runs one suite over every
backend): what each supports is a capability flag, and a method refuses what it does not
support in one line that names it, leaving the catalog as it was. Method-specific behaviour
(tabgan's conditional vector, timegan's series, privbayes' network) stays in its own file."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import MALES_TABLE, SLID_TABLE

import duck_synth


@dataclass(frozen=True)
class Method:
    name: str
    tables: bool  # rows of one table
    sessions: bool  # session_key / order_by data
    private: bool  # epsilon => (differential privacy) on tables
    epochs: int  # a few: the contract is about behaviour, not quality


METHODS = [
    Method("autoregressive", tables=True, sessions=True, private=True, epochs=2),
    Method("tabgan", tables=True, sessions=False, private=False, epochs=2),
    Method("privbayes", tables=True, sessions=False, private=True, epochs=1),
    Method("timegan", tables=False, sessions=True, private=False, epochs=3),
]
IDS = [m.name for m in METHODS]
SESSIONS = "session_key => 'nr', order_by => 'year'"
# a category to filter on, for each shape: (column, value); both are common in the data
CATEGORY = {"tables": ("sex", "Female"), "sessions": ("ethn", "black")}


def shape_of(method: Method) -> str:
    return "tables" if method.tables else "sessions"


def train_sql(method: Method, name: str, shape: str, extra: str = "") -> str:
    source, keys = ("slid", "") if shape == "tables" else ("males", f", {SESSIONS}")
    return (
        f"FROM train('{name}', '{source}', method => '{method.name}'{keys}, "
        f"epochs => {method.epochs}, max_time => 1800, seed => 0{extra})"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A database with SLID and Males, and one model per method on the shape it supports."""
    path = tmp_path_factory.mktemp("contract") / "contract.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(SLID_TABLE)
    s.sql(MALES_TABLE)
    summaries = {}
    for method in METHODS:
        row = s.sql(train_sql(method, method.name, shape_of(method)))
        summaries[method.name] = dict(zip(row.columns, row.fetchone(), strict=True))
    s.close()
    return path, summaries


@pytest.fixture
def session(trained):
    s = duck_synth.connect(str(trained[0]))
    yield s
    s.close()


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_training_names_its_method_and_stops_at_the_epochs_asked(trained, method):
    summary = trained[1][method.name]
    assert summary["method"] == method.name
    assert summary["version"] == 1
    if method.name != "privbayes":  # privbayes fits in one pass: no epochs to count
        assert (summary["epochs"], summary["stopped"]) == (method.epochs, "epochs")


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_generated_rows_have_the_training_columns_and_types(session, method):
    source = "slid" if method.tables else "males"
    real = session.sql(f"SELECT column_name, column_type FROM (DESCRIBE {source})").fetchall()
    synthetic = session.sql(
        f"SELECT column_name, column_type FROM (DESCRIBE FROM generate('{method.name}'))"
    ).fetchall()
    assert synthetic == real


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_same_seed_gives_the_same_rows_after_reopening(trained, method):
    rows = []
    for _ in range(2):
        s = duck_synth.connect(str(trained[0]))
        rows.append(s.sql(f"FROM generate('{method.name}', target => 40, seed => 9)").arrow())
        s.close()
    assert rows[0].equals(rows[1])


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_where_on_a_category_returns_the_target_all_matching(session, method):
    column, value = CATEGORY[shape_of(method)]
    result = session.sql(
        f"SELECT {column} FROM generate('{method.name}', target => 30, seed => 2) "
        f"WHERE {column} = '{value}'"
    ).fetchall()
    assert {row[0] for row in result} == {value}
    key = "nr" if method.sessions and not method.tables else None
    if key is None:
        assert len(result) == 30
    else:  # target counts sessions
        sessions = session.sql(
            f"SELECT count(DISTINCT nr) FROM generate('{method.name}', target => 30, seed => 2) "
            f"WHERE {column} = '{value}'"
        ).fetchone()[0]
        assert sessions == 30


ONE_SHAPE = [m for m in METHODS if not (m.tables and m.sessions)]


@pytest.mark.parametrize("method", ONE_SHAPE, ids=[m.name for m in ONE_SHAPE])
def test_a_shape_the_method_does_not_model_is_refused_in_one_line(session, method, refused):
    if method.tables:
        sql, message = train_sql(method, "x", "sessions"), "models rows, not sessions"
    else:
        sql, message = train_sql(method, "x", "tables"), "models sessions; give session_key"
    refused(session, sql, message)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_privacy_is_spent_within_the_budget_or_refused_in_one_line(session, method, refused):
    shape = shape_of(method)
    sql = train_sql(method, f"{method.name}_dp", shape, ", epsilon => 4.0")
    if not method.private:
        refused(session, sql, f"epsilon is supported by methods .* not '{method.name}'")
        return
    epsilon = session.sql(sql).fetchone()
    spent = session.sql(f"SELECT epsilon FROM models() WHERE name = '{method.name}_dp'").fetchone()
    assert epsilon is not None and 0 < spent[0] <= 4.0 + 1e-9
