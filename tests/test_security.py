"""Nothing a client sends may run SQL or reach files it was not given: a real server, driven
with a read-only and an admin token over Flight SQL (ADBC) and Quack (the real DuckDB CLI).

Every refusal must be one line, leave the table and the catalog as they were, create no file
and return no content of one.
"""

from __future__ import annotations

import os

import pytest
from adbc_driver_manager import Error as AdbcError
from conftest import DIAMONDS
from test_serve import (
    ADMIN,
    READER,
    adbc,
    duckdb_cli,
    start_server,
    start_with_tokens,
    stop,
)

import duck_synth

pytestmark = pytest.mark.slow
SECRET = "TOPSECRET-7f3a9c"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, quack, folders): a server with table d (300 rows) and model m, tokens ADMIN and
    READER, at most 2,000 rows per statement; a secret file lies outside the database folder."""
    root = tmp_path_factory.mktemp("security")
    database_folder, outside = root / "db", root / "outside"
    database_folder.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text(f"content\n{SECRET}\n")
    path = database_folder / "served.duckdb"
    with duck_synth.connect(str(path)) as s:
        s.sql(
            f"CREATE TABLE d AS SELECT carat, cut, color, price FROM '{DIAMONDS}' "
            "USING SAMPLE 300 ROWS (reservoir, 1)"
        )
        s.sql("FROM train('m', 'd', epochs => 1, seed => 1)")
    process, url, quack = start_with_tokens(path, "--max-rows", "2000")
    yield url, quack, {"db": database_folder, "outside": outside}
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def state(url: str) -> tuple:
    """Row counts of d and of every catalog table, and the models' names and versions."""
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM d), (SELECT list(name || '@' || version ORDER BY "
            "name, version) FROM synth.models), (SELECT count(*) FROM synth.runs), "
            "(SELECT count(*) FROM synth.workflows)"
        )
        return cur.fetchone()


def refused_over_flight(url: str, token: str, sql: str, parameters=None) -> str:
    """The statement fails; returns the server's message (its first line)."""
    with adbc(url, token) as conn, conn.cursor() as cur, pytest.raises(AdbcError) as raised:
        cur.execute(sql, parameters) if parameters is not None else cur.execute(sql)
        cur.fetchall()
    message = str(raised.value)
    assert "Traceback" not in message and 'File "' not in message, message
    assert SECRET not in message
    return message.split(". Detail:")[0].split(". gRPC client debug context")[0]


STACKED = [
    "FROM recommend('SELECT * FROM d LIMIT 50; DROP TABLE d')",
    "FROM evaluate('SELECT * FROM d; DROP TABLE d', 'd')",
    "FROM validate('m', 'SELECT * FROM d; DELETE FROM synth.models')",
    "FROM resample('SELECT * FROM d; DROP TABLE d', 'cut', condition => 'false', "
    "replace_values => ['x'])",
    "FROM generate('m', seed_rows => 'SELECT cut FROM d; DROP TABLE d')",
    "FROM generate('m', target => 5, filter => 'true; DROP TABLE d')",
    "FROM generate('m', target => 5, constraints => ['price > 0; DROP TABLE d'])",
    "FROM resample('d', 'cut', condition => 'true); DROP TABLE d; SELECT (1', "
    "replace_values => ['x'])",
    "FROM synth_sql('SELECT 1; DROP TABLE d')",
    "FROM recommend('SELECT * FROM d' || '; DROP TABLE d')",  # computed at run time
]


@pytest.mark.parametrize("sql", STACKED)
def test_a_string_argument_with_a_second_statement_is_refused_for_every_token(server, sql):
    url, _, _ = server
    before = state(url)
    for token in (READER, ADMIN):
        message = refused_over_flight(url, token, sql)
        assert "\n" not in message.strip(), message
    assert state(url) == before


def test_a_bound_parameter_is_checked_as_it_runs(server):
    url, _, _ = server
    before = state(url)
    message = refused_over_flight(
        url, READER, "FROM recommend(?)", ("SELECT * FROM d; DROP TABLE d",)
    )
    assert "exactly one query" in message
    message = refused_over_flight(
        url,
        READER,
        "SELECT count(*) FROM generate('m', seed_rows => ?)",
        ("SELECT content AS cut FROM read_text('/etc/hostname')",),
    )
    assert "read_text() is not allowed" in message
    assert state(url) == before


def file_readers(folders: dict) -> list[str]:
    secret = folders["outside"] / "secret.csv"
    return [
        f"FROM resample('SELECT * FROM read_text(''{secret}'')', 'content', "
        "condition => 'false', replace_values => ['x'])",
        f"FROM generate('m', seed_rows => 'SELECT content AS cut FROM read_text(''{secret}'')')",
        f"FROM '{secret}'",
        f"SELECT * FROM parquet_scan('{secret}')",
        f"FROM parquet_metadata('{secret}')",
        f"FROM read_csv('{secret}')",
        "FROM glob('/*')",
        f"FROM generate('m', target => 5, filter => 'cut IN (SELECT content FROM "
        f"read_text(''{secret}''))')",
        f"FROM recommend('{secret}')",
        f"FROM evaluate('d', 'SELECT * FROM read_csv(''{secret}'')')",
        f"FROM validate('m', '{secret}')",
        f"FROM recommend('SELECT * FROM read_' || 'text(''{secret}'')')",
        f"FROM synth_sql('SELECT * FROM read_text(''{secret}'')')",
        f"SELECT * FROM d WHERE cut IN (SELECT content FROM read_text('{secret}'))",
        f"DESCRIBE '{secret}'",
    ]


def test_a_read_only_token_reaches_no_file_by_any_path(server):
    url, _, folders = server
    before = state(url)
    for sql in file_readers(folders):
        message = refused_over_flight(url, READER, sql)
        assert "read-only token" in message or "not allowed" in message, (sql, message)
    assert state(url) == before


WRITES = [
    "SELECT * FROM d LIMIT 1; DROP TABLE d",
    "SELECT 1; COPY d TO 'x.csv'",
    "DROP TABLE d",
    "DELETE FROM synth.models",
    "INSERT INTO d SELECT * FROM d",
    "UPDATE synth.models SET columns = '[]'",
    "CREATE TABLE x AS SELECT 1",
    "COPY d TO 'copied.csv'",
    "ATTACH 'other.duckdb' AS other",
    "SET enable_external_access = false",
    "SET threads = 1",
    "LOAD httpfs",
    "CALL checkpoint()",
    "FROM train('m2', 'd', epochs => 1)",
    "FROM drop_model('m')",
    "FROM create_workflow('w', 'FROM d')",
    "FROM export_model('m', 'm.safetensors')",
    "FROM report('d', 'd', path => 'r.html')",
    "FROM generate_into('t', 'm', target => 5)",
    "SELECT nextval('synth.run_id_seq')",
    "FROM query('DROP TABLE d')",
    "SELECT synth_drop('m', '{}')",
    "EXPLAIN ANALYZE DELETE FROM d",
]


@pytest.mark.parametrize("sql", WRITES)
def test_a_read_only_token_cannot_write_set_attach_or_load(server, sql):
    url, _, folders = server
    before = state(url)
    files = set(os.listdir(folders["db"]))
    message = refused_over_flight(url, READER, sql)
    assert message.strip()
    assert state(url) == before
    assert set(os.listdir(folders["db"])) == files


def test_a_read_only_token_reads_tables_and_generates(server):
    url, _, _ = server
    with adbc(url, READER) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM d")
        assert cur.fetchone()[0] == 300
        cur.execute("SELECT count(*) FROM generate('m', target => 20) WHERE cut = 'Ideal'")
        assert cur.fetchone()[0] == 20
        cur.execute("WITH x AS (SELECT * FROM d) SELECT count(*) FROM x")
        assert cur.fetchone()[0] == 300
        cur.execute("SELECT count(*) FROM evaluate('d', 'SELECT * FROM d')")
        assert cur.fetchone()[0] > 0


def test_an_admin_token_reaches_only_the_allowed_folders(server):
    url, _, folders = server
    secret = folders["outside"] / "secret.csv"
    before = state(url)
    for sql in [
        f"FROM read_text('{secret}')",
        f"COPY d TO '{folders['outside'] / 'out.csv'}'",
        f"ATTACH '{folders['outside'] / 'other.duckdb'}' AS other",
        f"FROM export_model('m', '{folders['outside'] / 'm.safetensors'}')",
        f"FROM import_model('{secret}')",
        f"FROM report('d', 'd', path => '{folders['outside'] / 'r.html'}')",
        f"FROM train('m3', 'SELECT * FROM read_csv(''{secret}'')', epochs => 1)",
        "FROM glob('/etc/*')",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
    ]:
        refused_over_flight(url, ADMIN, sql)
    assert os.listdir(folders["outside"]) == ["secret.csv"]
    assert state(url)[:2] == before[:2]
    # inside the database's folder an admin reads and writes files
    inside = folders["db"] / "m.safetensors"
    with adbc(url, ADMIN) as conn, conn.cursor() as cur:
        cur.execute(f"FROM export_model('m', '{inside}')")
        cur.fetchall()
        cur.execute(f"COPY (SELECT 1 AS x) TO '{folders['db'] / 'one.csv'}'")
        cur.execute(f"SELECT count(*) FROM '{folders['db'] / 'one.csv'}'")
        assert cur.fetchone()[0] == 1
    assert inside.exists()


def test_rows_past_the_server_limit_are_refused_in_one_line(server):
    url, _, _ = server
    message = refused_over_flight(url, READER, "FROM generate('m', target => 5000)")
    assert "exceed the server's limit of 2,000 rows" in message
    message = refused_over_flight(url, READER, "SELECT * FROM range(5000)")
    assert "2,000 rows" in message


def test_quack_refuses_read_only_tokens_and_their_writes(server):
    _, quack, _ = server
    before = state(server[0])
    result = duckdb_cli(
        f"ATTACH '{quack}' AS r (TOKEN '{READER}'); INSERT INTO r.d SELECT * FROM r.d;"
    )
    assert result.returncode != 0
    result = duckdb_cli(f"FROM quack_query('{quack}', 'SELECT 1', token => '{READER}');")
    assert result.returncode != 0
    assert "Flight SQL" in result.stderr
    assert state(server[0]) == before


def test_quack_admin_statements_stay_inside_the_allowed_folders(server):
    _, quack, folders = server
    secret = folders["outside"] / "secret.csv"
    result = duckdb_cli(
        f"FROM quack_query('{quack}', 'FROM read_text(''{secret}'')', token => '{ADMIN}');"
    )
    assert result.returncode != 0
    assert SECRET not in result.stdout + result.stderr


def test_a_statement_past_the_timeout_is_stopped_and_adds_no_model(tmp_path):
    path = tmp_path / "timeout.duckdb"
    with duck_synth.connect(str(path)) as s:
        s.sql(f"CREATE TABLE d AS SELECT carat, cut, price FROM '{DIAMONDS}' LIMIT 2000")
    process, url, _ = start_server(
        path, "--port", "0", "--no-quack", "--token", ADMIN, "--statement-timeout", "3"
    )
    try:
        message = refused_over_flight(
            url, ADMIN, "FROM train('slow', 'd', epochs => 100000, max_time => 600)"
        )
        assert "timeout" in message or "cancelled" in message, message
        message = refused_over_flight(url, ADMIN, "SELECT count(*) FROM range(100000000000)")
        assert "timeout" in message.lower() or "interrupt" in message.lower(), message
        with adbc(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM synth.models")
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT status FROM synth.runs")
            assert [r[0] for r in cur.fetchall()] == ["cancelled"]
    finally:
        stop(process)


def test_errors_name_no_server_path(server):
    url, _, folders = server
    message = refused_over_flight(url, ADMIN, "FROM generate('nope')")
    assert "unknown model 'nope'" in message
    assert str(folders["db"]) not in message
