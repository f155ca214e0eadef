"""First contact: any database file name works (synth.duckdb included, whose default catalog
name would clash with the catalog schema ``synth``), and ``duck-synth --help`` lists every
subcommand."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import duck_synth


def duck_synth_command() -> list[str]:
    script = shutil.which("duck-synth")
    return [script] if script else [sys.executable, "-m", "duck_synth.cli"]


def test_connect_opens_a_file_named_synth_duckdb_and_keeps_its_data(tmp_path):
    path = str(tmp_path / "synth.duckdb")
    s = duck_synth.connect(path)
    s.sql("CREATE TABLE t AS SELECT range AS x, range % 3 AS y FROM range(300)")
    s.sql("FROM train('m', 't', epochs => 1, max_time => 600, seed => 1)")
    assert s.sql("SELECT count(*) FROM generate('m', target => 7)").fetchone() == (7,)
    assert s.sql("SELECT name, version FROM models()").fetchall() == [("m", 1)]
    assert s.sql("SELECT count(*) FROM synth.models").fetchone() == (1,)
    s.close()

    s = duck_synth.connect(path)
    s.sql("FROM create_pipeline('p', steps => [{'generate': 'm'}])")
    s.sql("FROM deploy('p')")
    s.close()

    again = duck_synth.connect(path, read_only=True)  # the same file, the same catalog
    assert again.sql("SELECT count(*) FROM t").fetchone() == (300,)
    assert again.sql("SELECT name FROM models()").fetchall() == [("m",)]
    # a read-only database generates (it keeps no generation log) but serves no pipeline
    assert again.sql("SELECT count(*) FROM generate('m', target => 7)").fetchone() == (7,)
    with pytest.raises(
        duck_synth.SynthError, match=r"^infer\('p'\): the database is open read-only"
    ):
        again.sql("FROM infer('p', input => {'x': 1})")
    again.close()


def test_cli_runs_on_the_default_synth_duckdb(tmp_path):
    done = subprocess.run(
        [
            *duck_synth_command(),
            "--csv",
            "-c",
            "SELECT 1 AS one; SELECT count(*) AS n FROM models()",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["n", "0"] and done.stderr == ""
    assert (tmp_path / "synth.duckdb").exists()


def test_help_lists_every_subcommand(tmp_path):
    done = subprocess.run(
        [*duck_synth_command(), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "serve" in done.stdout and "duck-synth serve --help" in done.stdout


def test_plain_duckdb_cli_on_a_duck_synth_file_says_how_to_use_it_in_one_line(tmp_path):
    cli = shutil.which("duckdb")
    assert cli, "the duckdb CLI (pip install duckdb-cli) is a test dependency"
    path = tmp_path / "project.duckdb"
    s = duck_synth.connect(str(path))
    s.sql("CREATE TABLE t AS SELECT range % 4 AS a FROM range(200)")
    s.sql("FROM train('m', 't', epochs => 1, max_time => 600, seed => 1)")
    s.sql("FROM create_workflow('three', 'FROM generate(''m'', target => 3)')")
    assert len(s.sql("FROM three()").df()) == 3  # a workflow without parameters, in duck_synth
    s.close()
    for statement in ("FROM generate('m', target => 3)", "FROM train('n', 't')", "FROM three()"):
        done = subprocess.run(
            [cli, str(path), "-c", statement], capture_output=True, text=True, timeout=60
        )
        output = done.stdout + done.stderr
        assert done.returncode != 0
        assert "open it with `duck-synth FILE`" in output and "duck-synth serve FILE" in output
        assert "does not exist" not in output
    # the catalog stays plain SQL: readable anywhere
    done = subprocess.run(
        [cli, str(path), "-csv", "-c", "SELECT name, version FROM models()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.split() == ["name,version", "m,1"]
