"""The SQL surface declared once (duck_synth/surface/): sql/macros.sql, the UDFs, the README's
reference table and the option bounds follow it, and a plugin's functions (declared in
tests/plugins only) run through session.sql, the CLI, Flight SQL and Quack, a read-only token
refused the one that writes; the planned functions have their role before their code."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import duck_synth
from duck_synth import access, caller, options, surface
from duck_synth.errors import SynthError
from duck_synth.surface.function import planned

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
BEGIN, END = "<!-- surface: begin -->", "<!-- surface: end -->"


def test_sql_macros_file_is_the_surface_rendered():
    assert (ROOT / "sql" / "macros.sql").read_text() == surface.macros_sql(surface.BUILTIN), (
        "sql/macros.sql differs from duck_synth/surface/: run python -m duck_synth.surface"
    )


def test_readme_reference_table_is_the_surface():
    readme = (ROOT / "README.md").read_text()
    table = readme.split(BEGIN)[1].split(END)[0].strip()
    assert table == surface.reference_table()


def test_every_declared_udf_is_registered_with_its_arity():
    s = duck_synth.connect()
    rows = s.con.execute(
        "SELECT function_name, len(parameters) FROM duckdb_functions() "
        "WHERE function_name LIKE 'synth%' AND function_type = 'scalar'"
    ).fetchall()
    registered = dict(rows)
    for udf, arity in surface.udf_arities().items():
        assert registered.get(udf) == arity, udf
    macros = {
        r[0] for r in s.con.execute("SELECT function_name FROM duckdb_functions()").fetchall()
    }
    assert {f.name for f in surface.BUILTIN} <= macros
    s.close()


def test_roles_split_the_surface_and_writers_are_the_ones_that_change_things():
    assert surface.reading() & surface.writing() == set()
    assert {"train", "generate_into", "drop_model", "report", "subset"} <= surface.writing()
    assert {"generate", "evaluate", "models", "runs"} <= surface.reading()


def bounded_fields():
    for function in surface.BUILTIN:
        for field in dataclasses.fields(function.options) if function.options else ():
            bounds = field.metadata.get("bounds")
            if bounds is not None and field.name not in function.without:
                yield function.name, function.options, field.name, bounds


def outside(bounds: options.Bounds):
    if bounds.choices:
        return "neither"
    if bounds.low is not None:
        return bounds.low if bounds.open_low else bounds.low - 1
    return bounds.high + 1


@pytest.mark.parametrize(
    ("function", "cls", "name", "bounds"),
    list(bounded_fields()),
    ids=[f"{f}.{n}" for f, _, n, _ in bounded_fields()],
)
def test_each_bound_refuses_in_one_line_naming_function_and_argument(function, cls, name, bounds):
    value = outside(bounds)
    with pytest.raises(SynthError) as refused:
        options.parse(cls, function, {name: value})
    message = str(refused.value)
    assert message.startswith(f"{function}(): {name} must ")
    assert "\n" not in message


def test_bounds_reach_sql_as_one_line():
    s = duck_synth.connect()
    s.sql("CREATE TABLE t AS SELECT range % 3 AS a FROM range(30)")
    with pytest.raises(SynthError, match=r"^train\(\): validation_share must be in \[0, 1\)"):
        s.sql("FROM train('m', 't', epochs => 1, validation_share => 1.0)")
    with pytest.raises(SynthError, match=r"^train\(\): bin_strategy must be 'quantile' or"):
        s.sql("FROM train('m', 't', epochs => 1, method => 'privbayes', bin_strategy => 'x')")
    s.close()


def test_a_registered_name_cannot_be_registered_twice():
    with pytest.raises(SynthError, match="already part of"):
        surface.register(surface.Function("generate", surface.READS, "again", body="SELECT 1"))


# -- planned functions: a role before any code -----------------------------------------------
@pytest.fixture
def planned_writer(monkeypatch):
    """A function a later issue adds, declared by its role only (as issue 20's were)."""
    later = planned("rollback", surface.WRITES, "issue 99", "rollback('p') -> ...")
    monkeypatch.setattr(surface, "PLANNED", (*surface.PLANNED, later))
    return later


def test_a_planned_function_has_a_role_and_an_issue_and_nothing_to_call(planned_writer):
    for function in surface.PLANNED:
        assert function.role in (surface.READS, surface.WRITES), function.name
        assert function.planned.startswith("issue "), function.name
        assert (function.udf, function.body, function.options) == (None, None, None)
        assert surface.arguments(function.name) is None
    assert not {f.name for f in surface.PLANNED} & {f.name for f in surface.functions()}


def test_no_planned_function_renders_into_macros_sql_or_runs_python(planned_writer):
    rendered = [surface.macros_sql(), (ROOT / "sql" / "macros.sql").read_text()]
    for function in surface.PLANNED:
        for sql in rendered:
            assert f"MACRO {function.name}(" not in sql, function.name
        assert not surface.acting_pattern().search(f"FROM {function.name}('p')")


def test_a_planned_writer_is_refused_to_read_only_tokens_before_its_code_exists(planned_writer):
    con, reader = duckdb.connect(), caller.Rights(role=caller.READ_ONLY)
    with pytest.raises(access.Refused, match=r"rollback\(\) is not allowed \(it writes\)"):
        access.check_statement(con, "FROM rollback('p')", reader)
    con.close()


def test_a_planned_function_refuses_code_and_plugins(planned_writer):
    with pytest.raises(SynthError, match="planned function has no UDF"):
        surface.Function("later", surface.WRITES, "x", udf="synth_later", planned="issue 99")
    with pytest.raises(SynthError, match=r"^rollback\(\) is reserved: duck_synth plans it \(issue"):
        surface.register(surface.Function("rollback", surface.WRITES, "mine", body="SELECT 1"))


PIPELINE_WRITERS = {
    "create_pipeline",
    "add_pipeline_step",
    "replace_pipeline_step",
    "remove_pipeline_step",
    "clear_pipeline_steps",
    "deploy",
    "undeploy",
}


def test_the_pipeline_functions_count_in_the_access_rule_by_role():
    assert surface.writing() >= PIPELINE_WRITERS
    assert {"infer", "logs", "pipelines"} <= surface.reading()
    con, reader = duckdb.connect(), caller.Rights(role=caller.READ_ONLY)
    for name in sorted(PIPELINE_WRITERS):
        with pytest.raises(access.Refused, match=rf"{name}\(\) is not allowed \(it writes\)"):
            access.check_statement(con, f"FROM {name}('p')", reader)
    access.check_statement(con, "FROM infer('p', input => 'SELECT 1')", reader)  # reads
    con.close()


# -- a plugin's functions, everywhere ----------------------------------------------------------
@pytest.fixture
def plugin_env(monkeypatch):
    monkeypatch.setenv("DUCK_SYNTH_PLUGINS", "toy_surface,toy_shape")
    path = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)


SMALL = (
    "CREATE TABLE small AS SELECT i::BIGINT AS id, ['a', 'b', 'c'][i % 3 + 1] AS kind, "
    "i * 10 AS score FROM range(12) t(i)"
)
BOOTSTRAPPED = (
    "SELECT count(*) AS drawn, count(s.id) AS whole_rows FROM generate('{model}', "
    "target => {n}, seed => 3) g LEFT JOIN small s USING (id, kind, score)"
)


def embedded(database: Path, sql: str) -> str:
    """``sql`` through session.sql in a fresh process (the plugin stays out of this one)."""
    script = (
        "import sys, duck_synth\n"
        "s = duck_synth.connect(sys.argv[1])\n"
        "print(s.sql(sys.argv[2]).fetchall())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(database), sql], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_a_plugin_function_runs_through_session_cli_flight_sql_and_quack(plugin_env, tmp_path):
    from adbc_driver_manager import Error as AdbcError

    from tests.test_cli import cli
    from tests.test_serve import ADMIN, READER, adbc, duckdb_cli, start_with_tokens, stop

    database = tmp_path / "plugin.duckdb"
    assert embedded(database, "FROM echo_rows(2, word => 'hi', times => 2)") == (
        "[(0, 'hihi'), (1, 'hihi')]"
    )
    assert "stamped" in embedded(database, "FROM stamp('notes')")
    # the plugin's option bounds are checked as the built-in ones
    done = cli(tmp_path, str(database), "-c", "FROM echo_rows(1, times => 0)")
    assert done.returncode != 0 and "echo_rows(): times must be at least 1" in done.stderr
    done = cli(tmp_path, str(database), "--csv", "-c", "FROM echo_rows(3)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["i,word", "0,echo", "1,echo", "2,echo"]

    # the plugin's fourth shape (tests/plugins/toy_shape.py): every generated row is a whole
    # training row, which a network trained one epoch on 12 rows would not give
    embedded(database, SMALL)
    embedded(database, "FROM train('boot', 'small', method => 'autoregressive', epochs => 1)")
    done = cli(tmp_path, str(database), "--csv", "-c", BOOTSTRAPPED.format(model="boot", n=40))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["drawn,whole_rows", "40,40"]

    process, url, quack = start_with_tokens(database)
    try:
        with adbc(url) as conn, conn.cursor() as cur:
            cur.execute("FROM stamp('notes', note => 'over flight')")
            cur.execute("SELECT count(*) FROM notes")
            assert cur.fetchone() == (2,)
            cur.execute("FROM train('boot2', 'small', epochs => 1, seed => 2)")
        with adbc(url, READER) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM echo_rows(4)")
            assert cur.fetchone() == (4,)
            with pytest.raises(AdbcError, match=r"stamp\(\) is not allowed \(it writes\)"):
                cur.execute("FROM stamp('notes')")
            with pytest.raises(AdbcError, match=r"train\(\) is not allowed \(it writes\)"):
                cur.execute("FROM train('boot3', 'small', epochs => 1)")
            cur.execute(BOOTSTRAPPED.format(model="boot2", n=30))
            assert cur.fetchone() == (30, 30)
        inner = BOOTSTRAPPED.format(model="boot", n=9).replace("'", "''")
        result = duckdb_cli(
            f"SELECT count(*) AS n FROM quack_query('{quack}', 'FROM echo_rows(5)', "
            f"token => '{ADMIN}');"
            f"SELECT * FROM quack_query('{quack}', '{inner}', token => '{ADMIN}');"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["n", "5", "drawn,whole_rows", "9,9"]
    finally:
        stop(process)
