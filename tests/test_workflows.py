"""Workflows: a named pipeline saved as a table macro, listed with the models, never run by
listing or explaining it."""

from __future__ import annotations

import pytest


def generations(session) -> int:
    return session.sql("SELECT count(*) FROM synth.generations").fetchone()[0]


@pytest.fixture(scope="module")
def fair_drill(session):
    before = generations(session)
    row = session.sql(
        "FROM create_workflow('fair_drill', "
        "'SELECT * FROM generate(''d'', target => n, seed => 1) WHERE cut = ''Fair'' AND price > lo', "
        "parameters => {'n': 100, 'lo': 2000})"
    ).df()
    assert generations(session) == before  # saving it ran nothing
    yield row
    session.sql("FROM drop_workflow('fair_drill')")


def test_a_workflow_runs_with_its_defaults_and_with_arguments(session, fair_drill):
    rows = session.sql("SELECT count(*), min(price) FROM fair_drill()").fetchone()
    assert rows[0] == 100 and rows[1] > 2000
    rows = session.sql("SELECT count(*), min(price) FROM fair_drill(n := 7, lo := 5000)").fetchone()
    assert rows[0] == 7 and rows[1] > 5000
    assert session.sql("SELECT DISTINCT cut FROM fair_drill(n := 20)").fetchall() == [("Fair",)]


def test_the_saved_query_has_the_filter_pushed_down(session, fair_drill):
    assert "pushed into generate('d'): price > 2000" in fair_drill.rewrite[0]
    runs_as = fair_drill.runs_as[0]
    assert "filter =>" in runs_as and "WHERE" not in runs_as.upper().split("GENERATE")[0]
    session.sql("FROM fair_drill(n := 50)")
    drawn, returned = session.sql(
        "SELECT rows_drawn, rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    assert returned == 50 and drawn < 50 * 20  # conditioned, not a filter over rows drawn


def test_workflows_are_listed_with_the_models_without_running(session, fair_drill):
    before = generations(session)
    listed = session.sql("SELECT name, models, parameters FROM workflows()").fetchall()
    assert ("fair_drill", ["d"], '{"n": 100, "lo": 2000}') in listed
    models = dict(session.sql("SELECT name, workflows FROM models() WHERE version = 1").fetchall())
    assert "fair_drill" in models["d"]
    session.sql("SHOW ALL TABLES").fetchall()
    session.sql("SELECT * FROM duckdb_functions() WHERE function_name = 'fair_drill'").fetchall()
    explained = "\n".join(r[0] for r in session.sql("EXPLAIN FROM fair_drill()").fetchall())
    assert "fair_drill() is a workflow; it runs:" in explained
    assert generations(session) == before


def test_a_workflow_can_save_its_result(session, fair_drill):
    session.sql("CREATE OR REPLACE TABLE drill_out AS FROM fair_drill(n := 30)")
    assert session.sql("SELECT count(*) FROM drill_out").fetchone()[0] == 30


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM create_workflow('generate', 'FROM generate(''d'')')", "already a function"),
        ("FROM create_workflow('diamonds', 'FROM generate(''d'')')", "already a function, table"),
        ("FROM create_workflow('x y', 'FROM generate(''d'')')", "must be an identifier"),
        ("FROM create_workflow('w1', 'FROM generate(''nope'')')", "nope"),
        ("FROM create_workflow('w2', 'DROP TABLE diamonds')", "must be a query"),
        ("FROM drop_workflow('never_made')", "unknown workflow 'never_made'"),
    ],
)
def test_bad_workflows_fail_in_one_line_and_change_nothing(session, refused, sql, message):
    refused(session, sql, message)
