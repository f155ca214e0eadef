"""Pipelines in one database: steps and versions, deploy and infer, validations, time-outs,
splits and shadows, and the inference log (model 'd' of the shared diamonds database)."""

from __future__ import annotations

import json
import time

import pandas
import pytest

import duck_synth

FAIR_PRICE = "{'sql': 'SELECT *, round(price / carat) AS per_carat FROM input'}"
CHEAP = "{'validation': 'cheap', 'check': 'price >= 1000', 'alert': 0.5}"


def pipeline(session, name: str, steps: str) -> dict:
    created = session.sql(f"FROM create_pipeline('{name}', steps => [{steps}])").df()
    return created.iloc[0].to_dict()


def log_rows(session, name: str, **where) -> list[dict]:
    arguments = "".join(f", {k} => {v}" for k, v in where.items())
    result = session.sql(f"FROM logs('{name}'{arguments})")
    return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]


@pytest.fixture(scope="module")
def priced(session):
    """'priced': diamonds drawn given each input row, priced per carat, cheap ones flagged."""
    pipeline(session, "priced", f"{{'generate': 'd', 'seed': 3}}, {FAIR_PRICE}, {CHEAP}")
    session.sql("FROM deploy('priced')")
    return "priced"


def test_infer_returns_each_input_row_beside_the_row_made_from_it(session, priced):
    result = session.sql(
        "FROM infer('priced', input => 'SELECT carat, cut FROM diamonds ORDER BY carat DESC LIMIT 5')"
    ).df()
    assert list(result.columns[:4]) == ["time", "arm", "in.carat", "in.cut"]
    assert {"out.price", "out.per_carat", "check_failures"} <= set(result.columns)
    assert len(result) == 5 and set(result["arm"]) == {"priced@1"}
    assert (result["in.carat"] == result["out.carat"]).all()
    assert (result["in.cut"] == result["out.cut"]).all()
    assert (result["out.per_carat"] == (result["out.price"] / result["out.carat"]).round()).all()


def test_input_rows_may_be_given_inline_as_structs(session, priced):
    result = session.sql(
        "FROM infer('priced', input => [{'carat': 2.0, 'cut': 'Ideal'}, {'carat': 0.3, 'cut': 'Fair'}])"
    ).df()
    assert result["in.carat"].tolist() == [2.0, 0.3]
    assert result["out.cut"].tolist() == ["Ideal", "Fair"]


def test_python_calls_a_pipeline_with_a_dataframe(session, priced):
    frame = pandas.DataFrame({"carat": [0.4, 1.1, 2.2], "cut": ["Good", "Ideal", "Fair"]})
    result = session.infer("priced", frame, timeout=30).df()
    assert result["in.carat"].tolist() == result["out.carat"].tolist() == [0.4, 1.1, 2.2]
    assert session.infer("priced", {"carat": 0.5}).df()["out.carat"].tolist() == [0.5]


def test_validations_flag_rows_count_them_in_the_log_and_raise_an_alert(session, priced):
    result = session.sql(
        "FROM infer('priced', input => 'SELECT carat FROM range(40) t(i), (SELECT 0.25 AS carat)')"
    ).df()
    flagged = [names for names in result["check_failures"] if list(names)]
    cheap = int((result["out.price"] < 1000).sum())
    assert cheap > 20 and len(flagged) == cheap and all(list(n) == ["cheap"] for n in flagged)
    last = log_rows(session, "priced")[-1]
    assert last["check_failures"] == cheap and json.loads(last["failures"]) == {"cheap": cheap}
    assert json.loads(last["alerts"]) == ["cheap"]  # more than half the rows failed
    assert len(json.loads(last["out"])) == 40 and last["status"] == "ok"


def test_every_change_is_a_new_version_and_any_version_can_be_deployed(session):
    assert pipeline(session, "versioned", "{'sql': 'SELECT carat FROM input'}")["version"] == 1
    steps = [
        "FROM add_pipeline_step('versioned', {'sql': 'SELECT carat * 2 AS carat FROM input'})",
        "FROM replace_pipeline_step('versioned', 1, {'sql': 'SELECT carat + 1 AS carat FROM input'})",
        "FROM remove_pipeline_step('versioned', 2)",
        "FROM clear_pipeline_steps('versioned')",
    ]
    changes = [session.sql(sql).df().iloc[0]["change"] for sql in steps]
    assert changes == ["step 2 added", "step 1 replaced", "step 2 removed", "steps cleared"]
    listed = session.sql(
        "SELECT version, json_array_length(steps) FROM pipelines() WHERE name = 'versioned'"
    ).fetchall()
    assert listed == [(1, 1), (2, 2), (3, 2), (4, 1), (5, 0)]
    session.sql("FROM deploy('versioned@2')")
    out = session.sql("SELECT \"out.carat\", arm FROM infer('versioned', input => {'carat': 1.5})")
    assert out.fetchall() == [(3.0, "versioned@2")]
    session.sql("FROM deploy('versioned@3')")
    assert session.sql(
        "SELECT \"out.carat\" FROM infer('versioned', input => {'carat': 1.5})"
    ).fetchall() == [(5.0,)]
    deployed = session.sql("SELECT version FROM pipelines() WHERE name = 'versioned' AND deployed")
    assert deployed.fetchall() == [(3,)]


def test_a_pipeline_pins_its_models_version(session):
    version = pipeline(session, "pinned", "{'generate': 'd', 'target': 3}")["version"]
    steps = session.sql(
        f"SELECT steps FROM pipelines() WHERE name = 'pinned' AND version = {version}"
    ).fetchone()[0]
    latest = session.sql("SELECT max(version) FROM models() WHERE name = 'd'").fetchone()[0]
    assert json.loads(steps) == [{"generate": f"d@{latest}", "target": 3}]


@pytest.mark.parametrize(
    "steps, message",
    [
        ("{'sql': 'COPY diamonds TO ''/tmp/x.csv'''}", "must be a query"),
        ("{'sql': 'SELECT * FROM read_csv(''/etc/passwd'')'}", "read_csv\\(\\) is not allowed"),
        ("{'sql': 'SELECT * FROM ''/etc/x.parquet'''}", "not a table or view"),
        ("{'sql': 'SELECT 1; DROP TABLE diamonds'}", "exactly one query"),
        ("{'sql': 'SELECT * FROM train(''x'', ''diamonds'')'}", "train\\(\\) is not allowed"),
        ("{'generate': 'nope'}", "unknown model 'nope'"),
        ("{'generate': 'd', 'sql': 'SELECT 1'}", "exactly one of generate, score, sql, validation"),
        ("{'generate': 'd', 'target': 0}", "'target' must be at least 1"),
        ("{'generate': 'd', 'target': 5, 'filter': 'price >'}", "not a valid SQL predicate"),
        ("{'generate': 'd', 'filter': 'price > 1'}", "filter needs a 'target'"),
        ("{'validation': 'v', 'check': 'x > 1', 'alert': 2}", "'alert' is a share of rows"),
        ("{'validate': 'v'}", "exactly one of"),
    ],
)
def test_a_step_that_cannot_run_or_would_write_is_refused_when_saved(
    session, refused, steps, message
):
    refused(session, f"FROM create_pipeline('bad', steps => [{steps}])", message)


def test_calls_and_changes_that_cannot_be_done_are_refused_in_one_line(session, refused, priced):
    refused(
        session, "FROM infer('nowhere', input => {'a': 1})", "pipeline 'nowhere' is not deployed"
    )
    refused(session, "FROM remove_pipeline_step('priced', 4)", "has steps 1-3, no step 4")
    refused(session, "FROM deploy('priced@9')", "pipeline 'priced' has no version 9")
    refused(session, "FROM infer('priced')", "give input =>")
    refused(session, "FROM infer('priced', input => 'nope')", "unknown table or view 'nope'")
    refused(
        session,
        "FROM infer('priced', input => {'carat': 1}, timeout => 0)",
        "timeout must be positive",
    )
    pipeline(session, "empty", "")
    refused(session, "FROM deploy('empty')", "has no step")
    refused(session, "FROM infer('priced', input => {'colour': 'red'})", "none of model 'd@")


def test_a_call_past_its_timeout_stops_within_a_second_and_is_logged(session):
    pipeline(session, "slow", "{'generate': 'd', 'target': 20000000}")
    session.sql("FROM deploy('slow')")
    started = time.monotonic()
    with pytest.raises(
        duck_synth.SynthError, match=r"infer\('slow'\): timed out after 1 s"
    ) as raised:
        session.sql("FROM infer('slow', input => {'a': 1}, timeout => 1)")
    assert time.monotonic() - started < 2.0 and "\n" not in str(raised.value)
    last = log_rows(session, "slow", failures_only="true")[-1]
    assert last["status"] == "timeout" and last["error"] and last["output_rows"] is None
    # the database takes the next statement at once
    assert session.sql("SELECT count(*) FROM diamonds").fetchone()[0] > 0


def test_logs_are_filtered_by_time_failures_and_count(session):
    pipeline(
        session,
        "logged",
        "{'sql': 'SELECT 1 / a AS inverse FROM input'}, {'validation': 'small', 'check': 'inverse < 1'}",
    )
    session.sql("FROM deploy('logged')")
    for a in (1, 2, 4):
        session.sql(f"FROM infer('logged', input => {{'a': {a}}})")
    between = session.sql("SELECT max(time) FROM logs('logged')").fetchone()[0]
    session.sql("FROM infer('logged', input => {'a': 8})")
    assert len(log_rows(session, "logged")) == 4
    assert len(log_rows(session, "logged", max_rows=2)) == 2
    failures = log_rows(session, "logged", failures_only="true")
    assert [json.loads(r["in"]) for r in failures] == [[{"a": 1}]]  # 1 / 1 is not < 1
    later = session.sql(f"FROM logs('logged', start => TIMESTAMP '{between}')").df()
    assert len(later) == 2  # the 3rd call (at the time given) and the 4th
    earlier = session.sql(f"FROM logs('logged', \"end\" => TIMESTAMP '{between}', \"limit\" => 1)")
    assert len(earlier.df()) == 1


def test_a_key_split_routes_each_row_by_its_value(session):
    pipeline(session, "small", "{'sql': 'SELECT *, ''small'' AS sized FROM input'}")
    pipeline(session, "large", "{'sql': 'SELECT *, ''large'' AS sized FROM input'}")
    session.sql(
        "FROM create_pipeline('by_size', split => {'key': 'size', 'arms': {'s': 'small', 'l': 'large'}})"
    )
    session.sql("FROM deploy('by_size')")
    result = session.sql(
        "FROM infer('by_size', input => [{'size': 'l', 'i': 1}, {'size': 's', 'i': 2}, {'size': 'l', 'i': 3}])"
    ).df()
    assert result["in.i"].tolist() == [1, 2, 3]  # the input's order, whatever the arm
    assert result["out.sized"].tolist() == ["large", "small", "large"]
    assert result["arm"].tolist() == ["large@1", "small@1", "large@1"]
    with pytest.raises(duck_synth.SynthError, match="size = 'm' has no arm"):
        session.sql("FROM infer('by_size', input => {'size': 'm'})")


def test_a_shadow_returns_the_champion_and_logs_every_challenger(session):
    pipeline(session, "champion", "{'sql': 'SELECT a + 1 AS b FROM input'}")
    pipeline(session, "challenger", "{'sql': 'SELECT a + 2 AS b FROM input'}")
    pipeline(session, "broken", "{'sql': 'SELECT a / ''x'' AS b FROM input'}")
    session.sql(
        "FROM create_pipeline('shadowed', split => {'champion': 'champion', "
        "'challengers': ['challenger', 'broken']})"
    )
    session.sql("FROM deploy('shadowed')")
    result = session.sql("FROM infer('shadowed', input => {'a': 1})").df()
    assert result["out.b"].tolist() == [2] and result["arm"].tolist() == ["champion@1"]
    arms = {r["arm"]: r for r in log_rows(session, "shadowed")}
    assert set(arms) == {"champion@1", "challenger@1", "broken@1"}
    assert json.loads(arms["challenger@1"]["out"]) == [{"b": 3}] and arms["challenger@1"]["shadow"]
    assert arms["broken@1"]["status"] == "error" and not arms["champion@1"]["shadow"]
    # a comparison of the arms over the log
    compared = session.sql(
        "SELECT arm, count(*) AS calls, avg(seconds) AS seconds FROM logs('shadowed') "
        "GROUP BY arm ORDER BY arm"
    ).fetchall()
    assert [c[:2] for c in compared] == [("broken@1", 1), ("challenger@1", 1), ("champion@1", 1)]


def test_undeploy_refuses_further_calls_and_keeps_the_log(session, refused):
    pipeline(session, "brief", "{'sql': 'SELECT a FROM input'}")
    session.sql("FROM deploy('brief')")
    session.sql("FROM infer('brief', input => {'a': 1})")
    session.sql("FROM undeploy('brief')")
    refused(
        session,
        "FROM infer('brief', input => {'a': 1})",
        r"not deployed \(deploy\('brief'\) first\)",
    )
    assert len(log_rows(session, "brief")) == 1


def test_the_arms_of_a_shadow_are_compared_by_evaluate_over_the_log(session):
    pipeline(session, "draw_1", "{'generate': 'd', 'target': 300, 'seed': 1}")
    pipeline(
        session, "draw_2", "{'generate': 'd', 'target': 300, 'seed': 2, 'filter': 'carat < 0.5'}"
    )
    session.sql(
        "FROM create_pipeline('drawn', split => {'champion': 'draw_1', 'challengers': ['draw_2']})"
    )
    session.sql("FROM deploy('drawn')")
    for _ in range(2):
        session.sql("FROM infer('drawn', input => {'a': 1})")
    kept = session.sql("SELECT arm, count(*) FROM logged_rows('drawn') GROUP BY arm ORDER BY arm")
    assert kept.fetchall() == [("draw_1@1", 600), ("draw_2@1", 600)]
    overall = {}
    for arm in ("draw_1@1", "draw_2@1"):
        rows = (
            f"SELECT * EXCLUDE (call_id, arm, time) FROM logged_rows(''drawn'', arm => ''{arm}'')"
        )
        overall[arm] = session.sql(
            f"SELECT value FROM evaluate('diamonds', '{rows}') WHERE metric = 'overall'"
        ).fetchone()[0]
    assert overall["draw_1@1"] > overall["draw_2@1"] + 0.05, overall  # only small stones


def test_the_log_is_bounded_by_rows_per_call_calls_kept_and_days(session):
    pipeline(session, "bounded", "{'sql': 'SELECT i * 2 AS j FROM input'}")
    session.sql("FROM deploy('bounded', rows_per_call => 2, keep_rows => 3, keep_days => 30)")
    for _ in range(5):
        session.sql("FROM infer('bounded', input => 'SELECT range AS i FROM range(5)')")
    last = log_rows(session, "bounded")[-1]
    assert (last["input_rows"], last["output_rows"]) == (5, 5)
    assert json.loads(last["in"]) == [{"i": 0}, {"i": 1}] and len(json.loads(last["out"])) == 2
    session.sql("FROM deploy('bounded', rows_per_call => 2, keep_rows => 3)")  # deploying trims
    assert len(log_rows(session, "bounded")) == 3
    session.sql(
        "UPDATE synth.inference_logs SET time = time - INTERVAL 31 DAY WHERE pipeline = 'bounded' "
        "AND time = (SELECT min(time) FROM synth.inference_logs WHERE pipeline = 'bounded')"
    )
    session.sql("FROM deploy('bounded', rows_per_call => 2, keep_rows => 3)")
    assert len(log_rows(session, "bounded")) == 2


def test_the_log_exports_with_copy(session, priced, tmp_path):
    session.sql("FROM infer('priced', input => {'carat': 0.9})")
    exported = tmp_path / "calls.parquet"
    session.sql(f"COPY (FROM logs('priced', max_rows => 1000000)) TO '{exported}'")
    back = session.sql(f"SELECT count(*), max(time) FROM read_parquet('{exported}')").fetchone()
    assert back == session.sql("SELECT count(*), max(time) FROM logs('priced')").fetchone()
    assert back[0] >= 1


def test_a_session_model_draws_a_whole_session_for_each_input_row(session, careers):
    pipeline(session, "careers_given", f"{{'generate': '{careers}', 'seed': 4}}")
    session.sql("FROM deploy('careers_given')")
    result = session.sql(
        "FROM infer('careers_given', input => [{'ethn': 'hisp'}, {'ethn': 'black'}])"
    ).df()
    assert (result["in.ethn"] == result["out.ethn"]).all()
    sessions = result.groupby("out.nr", sort=False)["in.ethn"].first().tolist()
    assert sessions == ["hisp", "black"]  # one session per input row, in the input's order
    assert len(result) > 2


def test_a_step_cannot_call_infer_and_the_failure_is_logged(session, refused):
    pipeline(session, "loop", "{'sql': 'SELECT * FROM infer(''loop'', input => {''a'': 1})'}")
    session.sql("FROM deploy('loop')")
    with pytest.raises(
        duck_synth.SynthError, match="a pipeline's step cannot call infer"
    ) as raised:
        session.sql("FROM infer('loop', input => {'a': 1})")
    assert "\n" not in str(raised.value)
    assert [r["status"] for r in log_rows(session, "loop")] == ["error"]  # one call, not a loop


def test_the_input_row_column_is_the_pipelines_own(session, refused):
    pipeline(session, "places", "{'sql': 'SELECT a, __input_row + 1 AS __input_row FROM input'}")
    session.sql("FROM deploy('places')")
    refused(
        session,
        "FROM infer('places', input => {'__input_row': 1})",
        "is the name the pipeline uses",
    )
    with pytest.raises(duck_synth.SynthError, match="keep it as it is or leave it out"):
        session.sql("FROM infer('places', input => [{'a': 1}, {'a': 2}])")


def test_splits_take_keys_of_any_type_and_answer_no_rows_with_no_rows(session):
    pipeline(session, "one", "{'sql': 'SELECT *, 1 AS x FROM input'}")
    pipeline(session, "other", "{'sql': 'SELECT *, ''x'' AS x FROM input'}")
    session.sql(
        "FROM create_pipeline('typed', split => {'key': 'k', 'arms': {'1': 'one', '2': 'other'}})"
    )
    session.sql("FROM deploy('typed')")
    assert session.sql("SELECT arm FROM infer('typed', input => {'k': 1.0})").fetchall() == [
        ("one@1",)
    ]
    empty = session.sql("FROM infer('typed', input => 'SELECT 1 AS k WHERE false')")
    assert len(empty) == 0 and "in.k" in empty.columns
    with pytest.raises(duck_synth.SynthError, match="the arms' rows do not make one table"):
        session.sql("FROM infer('typed', input => [{'k': 1}, {'k': 2}])")
    assert {r["status"] for r in log_rows(session, "typed")[-2:]} == {"error"}  # both arms


def test_inline_rows_carry_dates_as_text_and_a_generate_step_casts_them(tmp_path):
    s = duck_synth.connect(str(tmp_path / "visits.duckdb"))
    s.sql(
        "CREATE TABLE visits AS SELECT DATE '2024-01-01' + CAST(i % 30 AS INTEGER) AS day, "
        "i % 7 AS n FROM range(400) t(i)"
    )
    s.sql("FROM train('visits', 'visits', epochs => 1, max_time => 600, seed => 1)")
    pipeline(s, "visit", "{'generate': 'visits'}")
    s.sql("FROM deploy('visit')")
    rows = s.sql(
        'SELECT "in.day", "out.day", typeof("out.day") FROM infer(\'visit\', '
        "input => {'day': DATE '2024-01-05'})"
    ).fetchall()
    assert [(str(a), str(b), t) for a, b, t in rows] == [("2024-01-05", "2024-01-05", "DATE")]
    s.close()
