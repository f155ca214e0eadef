"""The duck-synth command, run as a real process on a real DuckDB file with the diamonds data."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

import duck_synth
from duck_synth.cli import main, script_statements, split_statements

DIAMONDS = Path(__file__).resolve().parent.parent / "examples" / "data" / "diamonds.parquet"
CREATE_DIAMONDS = f"CREATE TABLE diamonds AS FROM '{DIAMONDS}'"
QUICK = "max_time => 600, epochs => 2, nrows => 5000, seed => 7"
LONG_TRAIN = "FROM train('long', 'diamonds', max_time => 600, epochs => 1000, nrows => 5000)"
COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]


def command() -> list[str]:
    script = shutil.which("duck-synth")
    return [script] if script else [sys.executable, "-m", "duck_synth.cli"]


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DUCK_SYNTH_PROGRESS"}
    return {**env, "HOME": str(home), **extra}


def default_sigint() -> None:
    """In the child: SIGINT as a terminal would deliver it, even if this test runs with it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command(), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environment(home),
        timeout=timeout,
        cwd=home,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def wait_for(stream, text: str, timeout: float) -> str:
    """Read ``stream`` (a pipe) until ``text`` shows up; what was read."""
    seen = b""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"no {text!r} within {timeout} s; got {seen.decode(errors='replace')!r}"
            )
        if selector.select(left):
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise AssertionError(
                    f"stream closed before {text!r}; got {seen.decode(errors='replace')!r}"
                )
            seen += chunk
    selector.close()
    return seen.decode(errors="replace")


def runs_and_models(path: Path, name: str) -> tuple[list[tuple], int]:
    session = duck_synth.connect(str(path))
    try:
        runs = session.sql(
            f"SELECT run_id, status, error FROM synth.runs WHERE model = '{name}'"
        ).fetchall()
        models = session.sql(f"SELECT count(*) FROM synth.models WHERE name = '{name}'").fetchone()[
            0
        ]
    finally:
        session.close()
    return runs, models


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`duck-synth -c`: create the table, train 'd' and generate, all in one command."""
    home = tmp_path_factory.mktemp("cli")
    path = home / "trained.duckdb"
    result = cli(
        home,
        str(path),
        "-c",
        f"{CREATE_DIAMONDS}; FROM train('d', 'diamonds', {QUICK});\n"
        "SELECT * FROM generate('d', target => 5, seed => 1) WHERE cut = 'Fair'",
    )
    return path, result


@pytest.fixture
def db(trained, tmp_path) -> Path:
    """A copy of the trained database for one test."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(trained[0], copy)
    return copy


@pytest.fixture
def diamonds_db(tmp_path) -> Path:
    """A database with only the diamonds table (made with plain DuckDB, which is fast)."""
    import duckdb

    path = tmp_path / "plain.duckdb"
    con = duckdb.connect(str(path))
    con.execute(CREATE_DIAMONDS)
    con.close()
    return path


# -- running SQL ----------------------------------------------------------------------------
def test_command_creates_trains_and_generates(trained):
    _, result = trained
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    header = result.stdout.splitlines()[1]
    for column in COLUMNS:
        assert column in header
    rows = [line for line in result.stdout.splitlines() if line.startswith("│") and "Fair" in line]
    # statements run one by one, so the model is known when the WHERE is pushed into generate()
    assert len(rows) == 5


def test_file_runs_statements_in_order(db, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text(
        "-- a comment; with a semicolon\n"
        "CREATE TABLE notes AS SELECT 'a;b' AS s, 1 AS i;  /* block; comment */\n"
        "EXPLAIN SELECT * FROM generate('d') WHERE cut = 'Fair';\n"
        "SELECT * FROM generate('d', target => 4, seed => 2) WHERE cut = 'Ideal' AND price > 500;\n"
    )
    result = cli(tmp_path, str(db), "--json", "-f", str(script))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 4
    assert list(rows[0]) == COLUMNS
    assert all(r["cut"] == "Ideal" and r["price"] > 500 for r in rows)

    result = cli(tmp_path, str(db), "--csv", "-c", "SELECT s, i FROM notes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s,i\na;b,1\n"


def test_explain_prints_where_predicates_go(db, tmp_path):
    result = cli(
        tmp_path,
        str(db),
        "-c",
        "EXPLAIN SELECT * FROM generate('d') WHERE cut = 'Fair' AND price > 1000",
    )
    assert result.returncode == 0, result.stderr
    assert "pushed into generate('d'): cut = 'Fair'" in result.stdout
    assert "-- runs as:" in result.stdout
    assert "┌" not in result.stdout  # the explain text, not a table of it


def test_stdin_is_run_when_not_a_terminal(db, tmp_path):
    result = cli(
        tmp_path,
        str(db),
        stdin="SELECT 1 AS one;\nSELECT count(*) AS n FROM generate('d', target => 7);\n",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"│\s+n\s+│", result.stdout) and re.search(r"│\s+7\s+│", result.stdout), (
        result.stdout
    )
    assert "one" not in result.stdout  # only the last result is printed


def test_memory_database_and_version(tmp_path, capsys):
    result = cli(tmp_path, ":memory:", "--csv", "-c", "SELECT 40 + 2 AS answer")
    assert (result.returncode, result.stdout) == (0, "answer\n42\n")
    assert not (tmp_path / "synth.duckdb").exists()
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"duck-synth {duck_synth.__version__}")


# -- errors ---------------------------------------------------------------------------------
def test_unknown_model_is_one_error_line(tmp_path):
    result = cli(tmp_path, str(tmp_path / "empty.duckdb"), "-c", "FROM generate('nope')")
    assert result.returncode != 0
    assert result.stdout == ""
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "'nope'" in lines[0]


def test_error_stops_the_script(diamonds_db, tmp_path):
    result = cli(
        tmp_path,
        str(diamonds_db),
        "-c",
        "CREATE TABLE before AS SELECT 1; SELECT * FROM missing_table; CREATE TABLE after AS SELECT 1",
    )
    assert result.returncode == 1
    assert error_lines(result.stderr) == [error_lines(result.stderr)[0]]
    assert "missing_table" in result.stderr
    listing = cli(
        tmp_path,
        str(diamonds_db),
        "--csv",
        "-c",
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1",
    )
    assert listing.stdout.split() == ["table_name", "before", "diamonds"]


def test_missing_file_is_an_error(tmp_path):
    result = cli(tmp_path, ":memory:", "-f", str(tmp_path / "nowhere.sql"))
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"Error: cannot read '{tmp_path / 'nowhere.sql'}': No such file or directory"
    ]


def test_locked_database_names_the_other_process(diamonds_db, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duck_synth; s = duck_synth.connect(sys.argv[1]); print('ready', flush=True); "
            "time.sleep(120)",
            str(diamonds_db),
        ],
        stdout=subprocess.PIPE,
        env=environment(tmp_path),
    )
    try:
        wait_for(holder.stdout, "ready", timeout=60)
        result = cli(tmp_path, str(diamonds_db), "-c", "select 1")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "another process" in lines[0]
    assert f"PID {holder.pid}" in lines[0]


# -- interrupting training ------------------------------------------------------------------
def start_long_training(db: Path, home: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [*command(), str(db), "-c", LONG_TRAIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(home, DUCK_SYNTH_PROGRESS="1"),
        preexec_fn=default_sigint,
    )
    wait_for(process.stderr, "train", timeout=60)  # the progress bar: the run is recorded
    time.sleep(1.0)  # into the epochs
    return process


def test_sigint_cancels_training(diamonds_db, tmp_path):
    process = start_long_training(diamonds_db, tmp_path)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    errors = [
        line
        for line in stderr.decode().replace("\r", "\n").splitlines()
        if line.startswith("Error")
    ]
    assert len(errors) == 1 and "cancelled; no model was added" in errors[0], stderr
    runs, models = runs_and_models(diamonds_db, "long")
    assert [status for _, status, _ in runs] == ["cancelled"]
    assert models == 0


def test_sigkill_leaves_an_interrupted_run(diamonds_db, tmp_path):
    process = start_long_training(diamonds_db, tmp_path)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    runs, models = runs_and_models(diamonds_db, "long")
    assert [status for _, status, _ in runs] == ["interrupted"]
    assert models == 0


# -- the interactive shell --------------------------------------------------------------------
def test_shell(diamonds_db, tmp_path):
    shell = pexpect.spawn(
        command()[0],
        [*command()[1:], str(diamonds_db)],
        env=environment(tmp_path),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
        preexec_fn=default_sigint,
    )
    try:
        shell.expect_exact("duck_synth> ")
        shell.sendline("SELECT 42 AS answer,")  # a statement over two lines
        shell.expect_exact("...> ")
        shell.sendline("'a;b' AS s;")
        shell.expect(r"answer.*42.*a;b")
        shell.expect_exact("duck_synth> ")

        shell.sendline("FROM generate('nope');")  # an error: reported, the shell goes on
        shell.expect(r"Error: unknown model 'nope'")
        shell.expect_exact("duck_synth> ")

        shell.sendline(".tables")
        shell.expect(r"diamonds.*synth\.runs")
        shell.expect_exact("duck_synth> ")

        shell.sendline(LONG_TRAIN + ";")  # Ctrl-C cancels the statement, not the shell
        shell.expect("train:")
        time.sleep(1.0)
        shell.sendintr()
        shell.expect(r"Error: train\('long'\): cancelled; no model was added")
        shell.expect_exact("duck_synth> ")

        shell.sendline("SELECT count(*) FROM range(5000000000) t(a) WHERE a % 7 = 3;")
        time.sleep(1.0)  # a long plain DuckDB query: Ctrl-C interrupts it too
        shell.sendintr()
        shell.expect_exact("Error: interrupted")
        shell.expect_exact("duck_synth> ")

        shell.sendline("SELECT 'never run'")  # Ctrl-C at the prompt drops an unfinished statement
        shell.expect_exact("...> ")
        shell.sendintr()
        shell.expect_exact("duck_synth> ")

        shell.sendline(".models")
        shell.expect(r"name.*version")
        shell.expect_exact("duck_synth> ")
        shell.sendline(".quit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    assert shell.exitstatus == 0
    history = (tmp_path / ".duck_synth_history").read_text()
    assert "SELECT 42 AS answer," in history and ".tables" in history
    runs, models = runs_and_models(diamonds_db, "long")
    assert [status for _, status, _ in runs] == ["cancelled"] and models == 0


# -- splitting statements (no process) --------------------------------------------------------
def test_split_statements():
    split = split_statements(
        "SELECT ';' AS a; -- x; y\nSELECT \"b;\" FROM t /* ; */; SELECT $$;$$; SELECT 1"
    )
    assert split.statements == [
        "SELECT ';' AS a",
        '-- x; y\nSELECT "b;" FROM t /* ; */',
        "SELECT $$;$$",
    ]
    assert split.rest.strip() == "SELECT 1" and split.rest_has_code
    assert split_statements("SELECT 'it''s; fine';").statements == ["SELECT 'it''s; fine'"]
    assert split_statements("SELECT E'a\\';b';").statements == ["SELECT E'a\\';b'"]
    assert split_statements("SELECT 'open;").statements == []  # an unclosed quote waits for more
    assert script_statements(";; -- only a comment;\n ;") == []
    assert script_statements("SELECT 1; SELECT 2") == ["SELECT 1", "SELECT 2"]
