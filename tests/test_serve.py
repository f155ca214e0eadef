"""duck-synth serve: a real server process, driven by the real DuckDB CLI over Quack, by
adbc_driver_flightsql over Arrow Flight SQL, by pyarrow's raw Flight client, and by
duck_synth.connect('grpc://...')."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_manager import Error as AdbcError
from conftest import DIAMONDS_TABLE

import duck_synth
from duck_synth.serve import messages

ADMIN, READER = "admin-token-1", "reader-token-1"
REFUSED = (flight.FlightError, pa.ArrowException)  # how pyarrow's client raises a status
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(database, *arguments) -> tuple[subprocess.Popen, str, str | None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "duck_synth.cli", "serve", str(database), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"on (grpc\S*://\S+?)(?: and (quack:\S+))?$", line.strip())
    if not match:
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.stderr.read()}")
    return process, match.group(1), match.group(2)


def start_with_tokens(database, *arguments) -> tuple[subprocess.Popen, str, str | None]:
    """A server on a free port and a free Quack port, with tokens ADMIN and READER."""
    return start_server(
        database,
        "--port",
        "0",
        "--quack-port",
        str(free_port()),
        "--token",
        ADMIN,
        "--read-only-token",
        READER,
        *arguments,
    )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "served.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql("FROM train('d', 'diamonds', epochs => 2, max_time => 600, seed => 3)")
    s.close()
    process, url, quack = start_with_tokens(path)
    yield url, quack
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def adbc(url: str, token: str = ADMIN, **options):
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}", **options}
    return flightsql.connect(url, db_kwargs=kwargs, autocommit=True)


def generations(url: str) -> int:
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM generations()")
        return cur.fetchone()[0]


# -- Flight SQL over ADBC -------------------------------------------------------------------
def test_adbc_generate_with_where_pushed_down_returns_target_rows_all_matching(served):
    url, _ = served
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT cut, price FROM generate('d', target => 300) WHERE cut = 'Fair'")
        table = cur.fetch_arrow_table()
        cur.execute("EXPLAIN SELECT * FROM generate('d', target => 300) WHERE cut = 'Fair'")
        explained = "\n".join(r[0] for r in cur.fetchall())
    assert table.num_rows == 300
    assert set(table.column("cut").to_pylist()) == {"Fair"}
    assert "pushed into generate('d'): cut = 'Fair'" in explained


def test_adbc_parameterised_query_binds_values_before_the_pushdown(served):
    url, _ = served
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT cut, carat FROM generate('d', target => ?) WHERE cut = ? AND carat < ?",
            (40, "Ideal", 1.0),
        )
        rows = cur.fetchall()
    assert len(rows) == 40
    assert all(cut == "Ideal" and carat < 1.0 for cut, carat in rows)


def test_adbc_reads_tables_and_runs_updates(served):
    url, _ = served
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE notes (id INTEGER, note VARCHAR)")
        cur.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        cur.execute("SELECT count(*), string_agg(note, '' ORDER BY id) FROM notes")
        assert cur.fetchone() == (3, "abc")
        cur.execute("SELECT count(*) FROM diamonds WHERE cut = ?", ("Premium",))
        assert cur.fetchone()[0] == 13791


def test_adbc_get_objects_lists_columns_in_the_spec_schema_without_generating(served):
    url, _ = served
    before = generations(url)
    with adbc(url) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all()
        schema = conn.adbc_get_table_schema("diamonds")
        types = conn.adbc_get_table_types()
    assert objects.schema.names == ["catalog_name", "catalog_db_schemas"]
    tables = {
        (s["db_schema_name"], t["table_name"]): t
        for c in objects.to_pylist()
        for s in c["catalog_db_schemas"]
        for t in s["db_schema_tables"]
    }
    diamonds = tables[("main", "diamonds")]
    assert diamonds["table_type"] == "table"
    columns = {c["column_name"]: c for c in diamonds["table_columns"]}
    assert columns["price"]["xdbc_type_name"] in ("INTEGER", "BIGINT")
    assert columns["carat"]["ordinal_position"] == 1
    assert ("synth", "models") in tables
    assert schema.field("cut").type == pa.dictionary(pa.uint8(), pa.utf8()) or pa.types.is_string(
        schema.field("cut").type
    )
    assert types == ["table", "view"]
    assert generations(url) == before


def test_raw_flight_sql_catalog_commands_answer_in_the_spec_schemas(served):
    url, _ = served
    client = flight.connect(url)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {ADMIN}".encode())])
    expected = {
        "CommandGetCatalogs": pa.schema([pa.field("catalog_name", pa.utf8(), False)]),
        "CommandGetDbSchemas": pa.schema(
            [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), False)]
        ),
        "CommandGetTables": pa.schema(
            [
                pa.field("catalog_name", pa.utf8()),
                pa.field("db_schema_name", pa.utf8()),
                pa.field("table_name", pa.utf8(), False),
                pa.field("table_type", pa.utf8(), False),
                pa.field("table_schema", pa.binary(), False),
            ]
        ),
        "CommandGetTableTypes": pa.schema([pa.field("table_type", pa.utf8(), False)]),
    }
    for name, schema in expected.items():
        fields = {"include_schema": True} if name == "CommandGetTables" else {}
        command = messages.pack(messages.new(name, **fields))
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
        table = client.do_get(info.endpoints[0].ticket, options).read_all()
        assert table.schema.equals(schema), name
        assert table.num_rows > 0, name
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(
            messages.pack(messages.new("CommandGetSqlInfo", info=[0, 3, 8]))
        ),
        options,
    )
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.column("info_name").to_pylist() == [0, 3, 8]
    assert table.column("value").to_pylist() == ["duck_synth", False, 1]  # transactions
    client.close()


def test_wrong_or_missing_token_is_refused(served):
    url, _ = served
    for token in ("wrong-token", ""):
        with (
            pytest.raises(AdbcError, match="invalid or missing token"),
            adbc(url, token) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT 1")


def test_basic_handshake_gives_the_bearer_token(served):
    url, _ = served
    kwargs = {"username": "anyone", "password": READER}
    with flightsql.connect(url, db_kwargs=kwargs, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM generate('d', target => 5)")
        assert cur.fetchone() == (5,)


@pytest.mark.parametrize(
    "statement, culprit",
    [
        ("FROM train('d2', 'diamonds', max_time => 1)", "train()"),
        ("FROM drop_model('d')", "drop_model()"),
        ("DROP TABLE diamonds", "DROP statements"),
        ("INSERT INTO diamonds SELECT * FROM diamonds LIMIT 1", "INSERT statements"),
        ("SELECT * FROM synth_sql('FROM drop_model(''d'')')", "drop_model()"),
        ("FROM read_csv('/etc/passwd')", "read_csv()"),
    ],
)
def test_read_only_token_may_generate_but_not_train_drop_or_write(served, statement, culprit):
    url, _ = served
    with adbc(url, READER) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM generate('d', target => 10) WHERE cut = 'Good'")
        assert cur.fetchone() == (10,)
        with pytest.raises(AdbcError, match=re.escape(culprit)):
            cur.execute(statement)
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM models() WHERE name = 'd'")
        assert cur.fetchone() == (1,)
        cur.execute("SELECT count(*) FROM diamonds")
        assert cur.fetchone() == (53940,)


def test_cancel_stops_a_long_generation_and_the_server_goes_on(served):
    url, _ = served
    before = generations(url)
    with adbc(url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM generate('d', target => 9000000, batch_size => 20000)")
        reader = cur.fetch_record_batch()
        assert reader.read_next_batch().num_rows > 0
        cur.adbc_cancel()
        with pytest.raises((AdbcError, OSError, pa.ArrowException)):
            for _ in range(10_000):
                reader.read_next_batch()
        cur.close()
    time.sleep(1)
    assert generations(url) == before  # abandoned, not finished and logged
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM generate('d', target => 7)")
        assert cur.fetchone() == (7,)


def test_malformed_requests_and_dropped_clients_do_not_stop_the_server(served):
    url, _ = served
    headers = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {ADMIN}".encode())])
    client = flight.connect(url)
    junk_commands = [
        b"",
        b"\x00\x01\x02garbage",
        messages.pack(messages.new("CommandStatementQuery", query="SELECT 1"))[:7],
        b"\n\x20type.googleapis.com/not.a.Message\x12\x00",
        messages.pack(messages.new("CommandGetPrimaryKeys", table="diamonds")),
        messages.pack(messages.new("CommandStatementQuery", query="SELEC nonsense FROM")),
    ]
    for command in junk_commands:
        with pytest.raises(REFUSED):
            info = client.get_flight_info(flight.FlightDescriptor.for_command(command), headers)
            client.do_get(info.endpoints[0].ticket, headers).read_all()
    for ticket in (b"", b"\xff" * 40, messages.pack(messages.new("TicketStatementQuery"))):
        with pytest.raises(REFUSED):
            client.do_get(flight.Ticket(ticket), headers).read_all()
    for action in (
        flight.Action("CreatePreparedStatement", b"\x01\x02"),
        flight.Action("CancelFlightInfo", b"\xff\xff"),
        flight.Action("NoSuchAction", b""),
        flight.Action("ClosePreparedStatement", b"junk"),
    ):
        with pytest.raises(REFUSED):
            list(client.do_action(action, headers))
    # a DoPut whose parameter stream is cut off halfway
    handle = list(
        client.do_action(
            flight.Action(
                "CreatePreparedStatement",
                messages.pack(
                    messages.new("ActionCreatePreparedStatementRequest", query="SELECT ?")
                ),
            ),
            headers,
        )
    )[0]
    _, created = messages.unpack(handle.body.to_pybytes())
    descriptor = flight.FlightDescriptor.for_command(
        messages.pack(
            messages.new(
                "CommandPreparedStatementQuery",
                prepared_statement_handle=created.prepared_statement_handle,
            )
        )
    )
    writer, _ = client.do_put(descriptor, pa.schema([("0", pa.int64())]), headers)
    del writer  # dropped without closing
    client.close()
    # raw bytes that are not HTTP/2, and connections dropped mid-preface
    port = int(url.rsplit(":", 1)[1])
    for payload in (b"GET / HTTP/1.1\r\n\r\n", b"PRI * HTTP/2.0\r\n", os.urandom(300)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(payload)
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM generate('d', target => 11) WHERE color = 'E'")
        assert cur.fetchone() == (11,)


# -- Quack: the real DuckDB CLI --------------------------------------------------------------
def duckdb_cli(script: str) -> subprocess.CompletedProcess:
    cli = shutil.which("duckdb")
    assert cli, "the duckdb CLI (PyPI duckdb-cli) is a test dependency"
    load = subprocess.run(
        [sys.executable, "-m", "duck_synth.cli", "serve", "--client-sql"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return subprocess.run(
        [cli, "-csv", "-c", load + script], capture_output=True, text=True, timeout=180
    )


def test_duckdb_cli_attaches_over_quack_and_generates_with_pushdown(served):
    _, quack = served
    result = duckdb_cli(
        f"ATTACH '{quack}' AS remote (TOKEN '{ADMIN}');"
        "SELECT count(*) AS n FROM remote.diamonds;"
        f"SELECT count(*) AS n, count(*) FILTER (WHERE cut = 'Fair' AND price > 1000) AS ok "
        f"FROM quack_query('{quack}', 'SELECT * FROM generate(''d'', target => 25) "
        f"WHERE cut = ''Fair'' AND price > 1000', token => '{ADMIN}');"
        f"SELECT count(*) AS n FROM quack_query('{quack}', "
        f"'FROM synth_sql(''SELECT * FROM generate(''''d'''', target => 9) WHERE color = ''''E'''''')', "
        f"token => '{ADMIN}');"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines == ["n", "53940", "n,ok", "25,25", "n", "9"]


def test_duckdb_cli_read_only_token_is_sent_to_flight_sql_and_wrong_token_is_refused(served):
    _, quack = served
    for statement in ("FROM train(''x'', ''diamonds'')", "FROM generate(''d'', target => 3)"):
        refused = duckdb_cli(f"FROM quack_query('{quack}', '{statement}', token => '{READER}');")
        assert refused.returncode != 0
        assert "read-only tokens are not served over Quack" in refused.stderr
        assert "Flight SQL" in refused.stderr
    wrong = duckdb_cli(f"FROM quack_query('{quack}', 'SELECT 1', token => 'nope-nope');")
    assert wrong.returncode != 0


# -- duck_synth.connect and the duck-synth CLI against a server ------------------------------
def test_remote_session_has_the_local_api(served):
    url, _ = served
    with duck_synth.connect(url, token=ADMIN) as remote:
        assert isinstance(remote, duck_synth.RemoteSession)
        rows = remote.generate("d", target=12, seed=5)
        assert len(rows) == 12 and "price" in rows.columns
        assert "d" in remote.models().df()["name"].tolist()
        assert "pushed into generate('d')" in remote.explain(
            "SELECT * FROM generate('d', target => 5) WHERE cut = 'Good'"
        )
        stream = remote.stream("SELECT price FROM generate('d', target => 200000)")
        total = sum(batch.num_rows for batch in stream)
        assert total == 200000
        with pytest.raises(duck_synth.SynthError, match="unknown model 'nope'"):
            remote.generate("nope", target=1)


def test_profiles_pick_the_server_or_the_file(served, tmp_path, monkeypatch):
    url, _ = served
    config = tmp_path / "config.toml"
    config.write_text(
        'default = "team"\n'
        f'[profiles.team]\nurl = "{url}"\ntoken_env = "TEAM_TOKEN"\n'
        f'[profiles.scratch]\ndatabase = "{tmp_path / "scratch.duckdb"}"\n'
    )
    monkeypatch.setenv("DUCK_SYNTH_CONFIG", str(config))
    monkeypatch.setenv("TEAM_TOKEN", READER)
    with duck_synth.connect() as remote:
        assert isinstance(remote, duck_synth.RemoteSession)
        assert len(remote.generate("d", target=4)) == 4
    with duck_synth.connect(profile="scratch") as local:
        assert isinstance(local, duck_synth.Session)
        assert local.sql("SELECT 42").fetchone() == (42,)
    with pytest.raises(duck_synth.SynthError, match="unknown profile 'nope'"):
        duck_synth.connect(profile="nope")
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "duck_synth.cli",
            "--profile",
            "team",
            "--csv",
            "-c",
            "SELECT count(*) AS n FROM generate('d', target => 6) WHERE cut = 'Good'",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split() == ["n", "6"]


def test_cli_on_a_server_url_reports_refusals_in_one_line(served):
    url, _ = served
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "duck_synth.cli",
            url,
            "--token",
            READER,
            "-c",
            "FROM drop_model('d')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines() == [
        "Error: read-only token: drop_model() is not allowed (it writes)"
    ]


# -- serving rules ---------------------------------------------------------------------------
def test_serving_beyond_loopback_needs_a_token(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "duck_synth.cli",
            "serve",
            str(tmp_path / "x.duckdb"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--no-quack",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DUCK_SYNTH_TOKEN": ""},
    )
    assert result.returncode == 1
    assert "needs a token" in result.stderr


def test_tls_endpoint_serves_clients_that_trust_its_certificate(served, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    database = tmp_path / "tls.duckdb"
    duck_synth.connect(str(database)).close()
    process, url, _ = start_server(
        database,
        "--port",
        "0",
        "--no-quack",
        "--token",
        ADMIN,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    try:
        assert url.startswith("grpc+tls://")
        with duck_synth.connect(url, token=ADMIN, tls_root_certs=str(cert)) as remote:
            assert remote.sql("SELECT 40 + 2").fetchone() == (42,)
        with pytest.raises(duck_synth.SynthError, match="cannot connect"):
            duck_synth.connect(url, token=ADMIN)  # certificate not trusted
    finally:
        stop(process)
