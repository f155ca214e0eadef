"""A training killed, cancelled or failed part-way leaves a checkpoint in the catalog;
train(..., resume => true) continues it to the weights an uninterrupted run with the same seed
gets. Checkpoints are listed by checkpoints(), never models(), and go when the run succeeds,
with drop_checkpoints(), or after a week."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import duck_synth
from duck_synth.errors import SynthError
from tests.test_cancellation import InThread, wait_until

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
TABLES = (
    f"CREATE TABLE slid AS SELECT * FROM read_csv('{DATA / 'SLID.csv'}', nullstr = 'NA') "
    "LIMIT 1500;"
    f"CREATE TABLE males AS SELECT * FROM read_csv('{DATA / 'Males.csv'}') WHERE nr < 1500"
)
# a fixed number of epochs, a checkpoint at every epoch's end
TRAININGS = {
    "autoregressive": "'slid', method => 'autoregressive'",
    "tabgan": "'slid', method => 'tabgan'",
    "sessions": "'males', session_key => 'nr', order_by => 'year'",
    "timegan": "'males', method => 'timegan', session_key => 'nr', order_by => 'year'",
}
EPOCHS = {"autoregressive": 6, "tabgan": 6, "sessions": 4, "timegan": 6}
COMMON = ", seed => 5, max_time => 3600, checkpoint_every => 0"
AUTOREGRESSIVE = f"FROM train('m', {TRAININGS['autoregressive']}, epochs => 6{COMMON})"
# trains in its own process and says so after each checkpoint it saves, to be killed there
SCRIPT = """
import sys, duck_synth
from duck_synth import checkpoints
save = checkpoints.RunCheckpoints.save
def said(self, part, loop, epochs):
    save(self, part, loop, epochs)
    print("checkpoint", part, epochs, flush=True)
checkpoints.RunCheckpoints.save = said
s = duck_synth.connect(sys.argv[1])
s.sql(sys.argv[2])
s.sql(sys.argv[3])
"""


def weights(s, name: str) -> bytes:
    return s.con.execute(
        "SELECT weights FROM synth.models WHERE name = ? ORDER BY version DESC LIMIT 1", [name]
    ).fetchone()[0]


def killed_after(path: Path, train_sql: str, checkpoints_seen: int) -> None:
    """Run ``train_sql`` in a process of its own and kill -9 it once it has saved
    ``checkpoints_seen`` checkpoints."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path), TABLES, train_sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = 0
    for line in process.stdout:
        seen += line.startswith("checkpoint")
        if seen == checkpoints_seen:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()


@pytest.mark.slow
@pytest.mark.parametrize("method", TRAININGS)
def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, method):
    train_sql = f"FROM train('m', {TRAININGS[method]}, epochs => {EPOCHS[method]}{COMMON})"
    killed_after(tmp_path / "killed.duckdb", train_sql, checkpoints_seen=2)
    with duck_synth.connect(tmp_path / "killed.duckdb") as s:
        (run_id, status, epochs), *others = s.sql(
            "SELECT run_id, status, epochs FROM checkpoints()"
        ).fetchall()
        assert not others and status == "interrupted" and epochs >= 1
        summary = s.sql(f"{train_sql[:-1]}, resume => true)").df()
        assert summary["resumed_from"][0] == run_id
        assert s.sql("FROM checkpoints()").fetchall() == []
        assert s.sql("SELECT count(*) FROM models() WHERE name = 'm'").fetchone()[0] == 1
        resumed = weights(s, "m")
    with duck_synth.connect(tmp_path / "whole.duckdb") as s:
        s.sql(TABLES)
        s.sql(train_sql)
        assert s.sql("FROM checkpoints()").fetchall() == []  # removed with success
        assert weights(s, "m") == resumed


@pytest.fixture
def interrupted(tmp_path):
    """A database whose training of 'm' (autoregressive, SLID) was killed after its second
    epoch's checkpoint."""
    path = tmp_path / "db.duckdb"
    killed_after(path, AUTOREGRESSIVE, 2)
    return path


@pytest.mark.slow
def test_resume_refuses_other_data_or_options_and_a_wrong_run(interrupted):
    with duck_synth.connect(interrupted) as s:
        run_id = s.sql("SELECT run_id FROM checkpoints()").fetchone()[0]
        for other in (
            AUTOREGRESSIVE.replace("epochs => 6", "epochs => 7"),
            AUTOREGRESSIVE.replace("seed => 5", "seed => 6"),
            AUTOREGRESSIVE.replace("epochs => 6", "epochs => 6, columns => ['wages', 'age']"),
        ):
            with pytest.raises(SynthError, match=f"checkpoint of run {run_id} was made from other"):
                s.sql(f"{other[:-1]}, resume => true)")
        with pytest.raises(SynthError, match=r"run 99 has no checkpoint to resume"):
            s.sql(f"FROM train('m', 'slid', resume_run => 99, epochs => 6{COMMON})")
        with pytest.raises(SynthError, match=rf"run {run_id} trained 'm', not 'other'"):
            s.sql(f"FROM train('other', 'slid', resume_run => {run_id}, epochs => 6{COMMON})")
        # nothing was recorded by the refusals; the checkpoint is still there
        assert s.sql("SELECT count(*) FROM runs()").fetchone()[0] == 1
        dropped = s.sql("FROM drop_checkpoints(model => 'm')").fetchone()
        assert dropped[0] == 1 and dropped[1] > 0 and json.loads(dropped[2]) == [run_id]
        assert s.sql("FROM checkpoints()").fetchall() == []
        # nothing left to continue: resume => true trains from the start
        summary = s.sql(f"{AUTOREGRESSIVE[:-1]}, resume => true)")
        assert summary.df()["resumed_from"].isna().all()


def test_a_cancelled_training_keeps_its_checkpoint_and_resumes_from_it(tmp_path):
    table = "CREATE TABLE t AS SELECT range % 7 AS a, (range * 13) % 11 AS b FROM range(20000)"
    train_sql = (
        "FROM train('m', 't', epochs => 40, max_time => 3600, checkpoint_every => 0, seed => 1{})"
    )
    with duck_synth.connect(tmp_path / "db.duckdb") as s:
        s.sql(table)
        training = InThread(lambda: s.sql(train_sql.format("")))
        wait_until(lambda: saved_checkpoints(s) > 0)
        s.interrupt()
        training.join(60)
        assert "cancelled; no model was added" in str(training.error)
        assert s.sql("SELECT status FROM checkpoints()").fetchall() == [("cancelled",)]
        assert s.sql("SELECT count(*) FROM models()").fetchone()[0] == 0
        s.sql(train_sql.format(", resume => true"))
        resumed = weights(s, "m")
    with duck_synth.connect() as s:
        s.sql(table)
        s.sql(train_sql.format(""))
        assert weights(s, "m") == resumed


def saved_checkpoints(s) -> int:
    """Read on a cursor of its own: the session's is held by the statement running."""
    cursor = s.con.cursor()
    try:
        return cursor.execute("SELECT count(*) FROM synth.checkpoints").fetchone()[0]
    finally:
        cursor.close()


def test_a_checkpoint_that_cannot_be_read_is_refused_in_one_line():
    with duck_synth.connect() as s:
        s.sql("CREATE TABLE t AS SELECT range % 7 AS a, range % 5 AS b FROM range(300)")
        s.sql("FROM train('m', 't', epochs => 1, seed => 1)")
        print_ = s.sql("SELECT fingerprint FROM models() WHERE name = 'm'").fetchone()[0]
        # a row from elsewhere: a pickle that would run code if loaded without weights_only
        evil = b"\x80\x04cos\nsystem\n(S'echo owned'\ntR."
        s.con.execute(
            "INSERT INTO synth.checkpoints VALUES (7, 'm', ?, 'model', 1, ?, ?, now())",
            [print_, len(evil), evil],
        )
        with pytest.raises(SynthError) as refused:
            s.sql("FROM train('m', 't', epochs => 1, seed => 1, resume => true)")
    message = str(refused.value)
    assert "checkpoint of run 7 cannot be read" in message and "\n" not in message


def test_checkpoints_older_than_a_week_are_removed_on_connect(tmp_path):
    with duck_synth.connect(tmp_path / "db.duckdb") as s:
        s.con.execute(
            "INSERT INTO synth.checkpoints VALUES "
            "(1, 'm', 'f', 'model', 1, 1, 'x', now() - INTERVAL 8 DAY), "
            "(2, 'm', 'f', 'model', 1, 1, 'x', now() - INTERVAL 1 DAY)"
        )
    with duck_synth.connect(tmp_path / "db.duckdb") as s:
        assert s.sql("SELECT run_id FROM checkpoints()").fetchall() == [(2,)]


def test_resume_is_refused_with_epsilon_and_for_a_database():
    with duck_synth.connect() as s:
        s.sql("CREATE TABLE t AS SELECT range % 7 AS a FROM range(300)")
        with pytest.raises(SynthError, match="resume is not available with epsilon"):
            s.sql("FROM train('m', 't', epsilon => 1, epochs => 1, resume => true)")
        with pytest.raises(SynthError, match="resume is for one table's training"):
            s.sql("FROM train('m', ['t'], epochs => 1, resume => true)")
        assert s.sql("SELECT count(*) FROM runs()").fetchone()[0] == 0
