"""generate_into(): batches appended to a table, and a killed run resumed without duplicate or
gap (the real process is killed with SIGKILL while it writes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import duck_synth
from tests.conftest import DIAMONDS_TABLE

TARGET, BATCH = 2_000_000, 10_000


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    """A file with model 'small' (a key and three columns of diamonds)."""
    path = tmp_path_factory.mktemp("into") / "into.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql(
        "CREATE TABLE keyed AS SELECT row_number() OVER () AS id, cut, color, price FROM diamonds"
    )
    s.sql("FROM train('small', 'keyed', epochs => 1, seed => 1)")
    s.close()
    return path


def run_into(path: Path, table: str) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import duck_synth
        s = duck_synth.connect({str(path)!r})
        s.sql("FROM generate_into('{table}', 'small', target => {TARGET}, "
              "batch_size => {BATCH}, seed => 5)")
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)


def size(path: Path) -> int:
    wal = Path(str(path) + ".wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_a_killed_run_resumes_to_exactly_the_target(database):
    before = size(database)
    process = run_into(database, "killed")
    deadline = time.monotonic() + 120
    while size(database) < before + 3_000_000 and process.poll() is None:
        assert time.monotonic() < deadline, "the run wrote nothing in two minutes"
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.fail(f"the run ended before it was killed: {process.stderr.read().decode()[-800:]}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    s = duck_synth.connect(str(database))
    try:
        written = s.sql("SELECT count(*) FROM killed").fetchone()[0]
        assert 0 < written < TARGET and written % BATCH == 0  # whole batches only
        summary = s.sql(
            f"FROM generate_into('killed', 'small', target => {TARGET}, batch_size => {BATCH}, "
            "seed => 5)"
        ).df()
        assert summary.resumed_from[0] == written
        assert summary.rows[0] == TARGET - written
        rows, distinct, low, high = s.sql(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM killed"
        ).fetchone()
        assert (rows, distinct, low, high) == (TARGET, TARGET, 1, TARGET)
        # the very rows an uninterrupted generation with the same seed gives
        resumed = s.sql("SELECT sum(hash(id, cut, color, price)) FROM killed").fetchone()[0]
        whole = s.sql(
            f"SELECT sum(hash(id, cut, color, price)) FROM generate('small', target => {TARGET}, "
            f"batch_size => {BATCH}, seed => 5)"
        ).fetchone()[0]
        assert resumed == whole
        status = s.sql(
            "SELECT status FROM synth.batch_runs WHERE table_name = '\"killed\"'"
        ).fetchone()[0]
        assert status == "done"
    finally:
        s.close()


def test_an_unfinished_run_resumes_only_with_its_own_arguments(database, refused):
    s = duck_synth.connect(str(database))
    try:
        s.sql("CREATE TABLE half (id BIGINT, cut VARCHAR, color VARCHAR, price INTEGER)")
        s.con.execute(
            "INSERT INTO synth.batch_runs VALUES ('\"half\"', 'small', 1, "
            '\'{"target": 100, "temperature": 1.0, "top_p": 1.0, "batch_size": 50, '
            '"drop_unique_violation": false, "limit_strings": false}\', 3, 100, '
            '\'{"batch": 0, "drawn": 0, "returned": 0, "generator": '
            '{"keys_emitted": 0, "sessions_returned": 0, "quotas": null}}\', \'running\', '
            "now(), now())"
        )
        refused(
            s,
            "FROM generate_into('half', 'small', target => 200, batch_size => 50)",
            "unfinished run of small@1 with other arguments",
        )
        done = s.sql("FROM generate_into('half', 'small', target => 100, batch_size => 50)").df()
        assert done.rows[0] == 100 and done.batches[0] == 2
        assert s.sql("SELECT count(*) FROM half").fetchone()[0] == 100
    finally:
        s.close()


def test_a_finished_table_gets_a_new_run_appended(database):
    s = duck_synth.connect(str(database))
    try:
        s.sql("FROM generate_into('twice', 'small', target => 300, seed => 1)")
        s.sql("FROM generate_into('twice', 'small', target => 200, seed => 2)")
        assert s.sql("SELECT count(*) FROM twice").fetchone()[0] == 500
    finally:
        s.close()


def test_generate_into_honours_pushed_conditions(database):
    """Also through a plain DuckDB connection of the session (the table macro, inside a
    statement) rather than session.sql (which runs a lone generate_into outside one)."""
    s = duck_synth.connect(str(database))
    try:
        s.con.execute(
            "FROM generate_into('fair_only', 'small', target => 5000, batch_size => 1000, "
            "filter => 'cut = ''Fair'' AND price > 1000', seed => 3)"
        )
        rows, fair = s.sql(
            "SELECT count(*), count(*) FILTER (WHERE cut = 'Fair' AND price > 1000) FROM fair_only"
        ).fetchone()
        assert rows == fair == 5000
    finally:
        s.close()


def test_a_table_of_other_columns_is_refused(database, refused):
    s = duck_synth.connect(str(database))
    try:
        s.sql("CREATE TABLE other (a INTEGER)")
        refused(
            s,
            "FROM generate_into('other', 'small', target => 10)",
            'table "other" has columns \\(a\\), the model generates',
        )
        assert s.sql("SELECT count(*) FROM other").fetchone()[0] == 0
    finally:
        s.close()


def test_a_run_that_fails_before_any_batch_leaves_nothing(database, refused):
    s = duck_synth.connect(str(database))
    try:
        refused(
            s,
            "FROM generate_into('never', 'small', target => 10, filter => 'price * 0 = 1')",
            "found 0 of 10 rows satisfying",
        )
        assert (
            s.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'never'").fetchone()[0]
            == 0
        )
        assert (
            s.sql(
                "SELECT count(*) FROM synth.batch_runs WHERE table_name = '\"never\"'"
            ).fetchone()[0]
            == 0
        )
    finally:
        s.close()


@pytest.mark.parametrize("target", [100, 200])  # the unfinished run's arguments, or others
def test_a_dropped_table_abandons_its_unfinished_run_and_starts_fresh(database, target):
    s = duck_synth.connect(str(database))
    try:
        s.sql(f"CREATE TABLE gone_{target} (id BIGINT, cut VARCHAR, color VARCHAR, price INTEGER)")
        s.con.execute(
            f"INSERT INTO synth.batch_runs VALUES ('\"gone_{target}\"', 'small', 1, "
            '\'{"target": 100, "temperature": 1.0, "top_p": 1.0, "batch_size": 50, '
            '"drop_unique_violation": false, "limit_strings": false}\', 3, 100, '
            '\'{"batch": 1, "drawn": 50, "returned": 50, "passed": 50, "generator": '
            '{"keys_emitted": 50, "sessions_returned": 0, "quotas": null}}\', \'running\', '
            "now(), now())"
        )
        s.sql(f"DROP TABLE gone_{target}")
        done = s.sql(
            f"FROM generate_into('gone_{target}', 'small', target => {target}, batch_size => 50)"
        ).df()
        assert done.resumed_from[0] == 0 and done.rows[0] == target
        assert s.sql(f"SELECT count(*), min(id) FROM gone_{target}").fetchone() == (target, 1)
        status, arguments = s.sql(
            f"SELECT status, json_extract_string(arguments, 'target') FROM synth.batch_runs "
            f"WHERE table_name = '\"gone_{target}\"'"
        ).fetchone()
        assert (status, int(arguments)) == ("done", target)
        # the abandoned run stays in the generation log with what it had written
        logged = s.sql(
            "SELECT rows_returned, arguments FROM synth.generations "
            "WHERE json_extract_string(arguments, 'abandoned') IS NOT NULL"
        ).fetchall()
        assert [
            (rows, json.loads(arguments)["abandoned"])
            for rows, arguments in logged
            if json.loads(arguments)["into"] == f'"gone_{target}"'
        ] == [(50, "the table was dropped")]
    finally:
        s.close()
