"""Apache Superset end to end: a real Superset 6.1 in its own virtual environment (built on first
use, cached) adds duck_synth's Flight SQL server through the SQLAlchemy dialect Superset
documents (flightsql-dbapi), and everything below goes through Superset's REST API, as its web
pages do: the connection test, schema/table/column listing, SQL Lab, datasets and chart data."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import DIAMONDS_TABLE, own_venv
from test_serve import ADMIN, free_port, generations, start_with_tokens, stop

import duck_synth

pytestmark = pytest.mark.slow

REQUIREMENTS = Path(__file__).with_name("superset_requirements.txt")
VENV = Path(
    os.environ.get("DUCK_SYNTH_SUPERSET_VENV", Path.home() / ".cache" / "duck_synth" / "superset")
)
CONFIG = """\
SECRET_KEY = "duck-synth-test-only"
SQLALCHEMY_DATABASE_URI = "sqlite:///{metadata}"
# the test is an API client with a bearer token, as scripts are; no browser session to protect
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
# every chart query reaches duck_synth: a cached answer would hide what the query did
DATA_CACHE_CONFIG = {{"CACHE_TYPE": "NullCache"}}
"""
FAIR_IN_TRAINING = 1610  # diamonds rows with cut = 'Fair': the default target of a Fair filter
COUNT = [{"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "rows"}]


def superset_venv() -> Path:
    """Superset's virtual environment, built once per requirements file."""
    return own_venv(REQUIREMENTS, VENV, "Apache Superset")


class Superset:
    """Superset's REST API with an admin's bearer token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = None
        login = {"username": "admin", "password": "admin", "provider": "db"}
        self.token = self.post("/api/v1/security/login", login)["access_token"]

    def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get(self, path: str) -> object:
        status, answer = self.request("GET", path)
        assert status == 200, f"GET {path}: {status} {answer}"
        return answer

    def post(self, path: str, body: object, expected: int = 200) -> object:
        status, answer = self.request("POST", path, body)
        assert status == expected, f"POST {path}: {status} {answer}"
        return answer

    def sql_lab(self, database: int, sql: str) -> dict:
        body = {"database_id": database, "sql": sql, "runAsync": False, "schema": "main"}
        return self.post("/api/v1/sqllab/execute/", body)

    def dataset(self, database: int, name: str, sql: str | None = None) -> int:
        body = {"database": database, "schema": "main", "table_name": name}
        if sql is not None:
            body["sql"] = sql  # a virtual dataset: Superset wraps it as `(sql) AS virtual_table`
        return self.post("/api/v1/dataset/", body, expected=201)["id"]

    def chart(self, dataset: int, **query) -> tuple[list[dict], str]:
        """A chart's data request (what every chart sends): its rows and the SQL Superset ran."""
        context = {
            "datasource": {"id": dataset, "type": "table"},
            "queries": [{"row_limit": 100, **query}],
            "result_format": "json",
            "result_type": "full",
        }
        result = self.post("/api/v1/chart/data", context)["result"][0]
        return result["data"], result["query"]


def superset_cli(venv: Path, env: dict, *arguments: str) -> None:
    done = subprocess.run(
        [venv / "bin" / "superset", *arguments], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"superset {arguments[0]}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def duck_synth_server(tmp_path_factory):
    """duck_synth serving diamonds, model 'd' and a view over generate()."""
    path = tmp_path_factory.mktemp("superset_data") / "bi.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql("FROM train('d', 'diamonds', epochs => 2, max_time => 600, seed => 3)")
    s.sql(
        "CREATE VIEW fair_diamonds AS SELECT * FROM generate('d', target => 40) WHERE cut = 'Fair'"
    )
    s.close()
    process, url, _ = start_with_tokens(path)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def superset(tmp_path_factory):
    venv = superset_venv()
    home = tmp_path_factory.mktemp("superset_home")
    config = home / "superset_config.py"
    config.write_text(CONFIG.format(metadata=home / "superset.db"))
    env = {**os.environ, "SUPERSET_CONFIG_PATH": str(config), "SUPERSET_HOME": str(home)}
    env["FLASK_APP"] = "superset"
    superset_cli(venv, env, "db", "upgrade")
    admin = ["--username", "admin", "--password", "admin", "--email", "admin@example.com"]
    superset_cli(venv, env, "fab", "create-admin", *admin, "--firstname", "a", "--lastname", "b")
    superset_cli(venv, env, "init")
    port = free_port()
    log = open(home / "superset.log", "w")  # noqa: SIM115 (closed after the server stops)
    process = subprocess.Popen(
        [venv / "bin" / "superset", "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, (home / "superset.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "Superset did not answer /health in 300 s"
        time.sleep(1)
    yield Superset(base)
    process.terminate()
    process.wait(timeout=60)
    log.close()


def sqlalchemy_uri(url: str, token: str = ADMIN) -> str:
    """flightsql-dbapi's dialect, as Superset's 'other database' form takes it."""
    netloc = urllib.parse.urlsplit(url).netloc
    return f"datafusion://{netloc}?insecure=true&token={token}"


@pytest.fixture(scope="module")
def database(superset, duck_synth_server) -> int:
    body = {
        "database_name": "duck_synth",
        "sqlalchemy_uri": sqlalchemy_uri(duck_synth_server),
        "expose_in_sqllab": True,
    }
    return superset.post("/api/v1/database/", body, expected=201)["id"]


def test_superset_connection_test_passes_and_a_wrong_token_fails(superset, duck_synth_server):
    uri = sqlalchemy_uri(duck_synth_server)
    answer = superset.post("/api/v1/database/test_connection/", {"sqlalchemy_uri": uri})
    assert answer == {"message": "OK"}
    wrong = sqlalchemy_uri(duck_synth_server, token="not-a-token")
    status, answer = superset.request(
        "POST", "/api/v1/database/test_connection/", {"sqlalchemy_uri": wrong}
    )
    assert status == 400, answer
    assert "invalid or missing token" in answer  # duck_synth's one line reaches the user


def test_superset_lists_schemas_tables_and_views_without_generating(
    superset, database, duck_synth_server
):
    before = generations(duck_synth_server)
    assert "main" in superset.get(f"/api/v1/database/{database}/schemas/")["result"]
    query = urllib.parse.quote("(schema_name:main)")
    tables = superset.get(f"/api/v1/database/{database}/tables/?q={query}")["result"]
    assert {"diamonds", "fair_diamonds"} <= {table["value"] for table in tables}
    view = superset.get(
        f"/api/v1/database/{database}/table_metadata/?name=fair_diamonds&schema=main"
    )
    assert [column["name"] for column in view["columns"]][:3] == ["carat", "cut", "color"]
    assert generations(duck_synth_server) == before  # listing and describing never generate


def test_superset_reflects_column_types_with_enums_as_text(superset, database):
    path = f"/api/v1/database/{database}/table_metadata/?name=diamonds&schema=main"
    types = {column["name"]: column["type"] for column in superset.get(path)["columns"]}
    # cut, color and clarity are DuckDB ENUMs: text to a BI tool, never BLOB
    assert types == {
        "carat": "FLOAT",
        "cut": "TEXT",
        "color": "TEXT",
        "clarity": "TEXT",
        "depth": "FLOAT",
        "table": "FLOAT",
        "price": "INTEGER",
        "x": "FLOAT",
        "y": "FLOAT",
        "z": "FLOAT",
    }


def test_sql_lab_where_on_generate_returns_the_target_all_matching(superset, database):
    result = superset.sql_lab(
        database, "SELECT * FROM generate('d', target => 50) WHERE cut = 'Fair'"
    )
    assert result["status"] == "success"
    assert len(result["data"]) == 50
    assert {row["cut"] for row in result["data"]} == {"Fair"}


def test_sql_lab_automatic_limit_caps_and_never_inflates_the_default(superset, database):
    result = superset.sql_lab(database, "SELECT * FROM generate('d') WHERE cut = 'Fair'")
    assert result["query"]["executedSql"].rstrip().endswith("LIMIT 100001")
    # the default for a filter is the matching training rows, not SQL Lab's 100,001
    assert len(result["data"]) == FAIR_IN_TRAINING
    assert {row["cut"] for row in result["data"]} == {"Fair"}


def test_chart_filter_on_a_virtual_dataset_over_generate_is_pushed_down(superset, database):
    dataset = superset.dataset(
        database, "synthetic_diamonds", "SELECT * FROM generate('d', target => 300)"
    )
    filters = [{"col": "cut", "op": "==", "val": "Fair"}]
    rows, sql = superset.chart(dataset, columns=["cut"], metrics=COUNT, filters=filters)
    assert "AS virtual_table" in sql and "WHERE cut = 'Fair'" in sql
    assert rows == [{"cut": "Fair", "rows": 300}]

    filters = [{"col": "cut", "op": "IN", "val": ["Fair", "Good"]}]
    rows, _ = superset.chart(dataset, columns=["cut"], metrics=COUNT, filters=filters)
    assert {row["cut"] for row in rows} <= {"Fair", "Good"}
    assert sum(row["rows"] for row in rows) == 300

    # a custom SQL WHERE beside a simple filter, and a breakdown ordered by the metric
    filters = [{"col": "cut", "op": "==", "val": "Fair"}]
    extras = {"where": "price > 1000"}
    rows, _ = superset.chart(dataset, columns=[], metrics=COUNT, filters=filters, extras=extras)
    assert rows == [{"rows": 300}]
    order = [[COUNT[0], False]]
    rows, sql = superset.chart(
        dataset, columns=["color"], metrics=COUNT, filters=filters, orderby=order, row_limit=3
    )
    # the LIMIT is on groups, not a row cap: the top 3 of 7 colours hold at least 3/7 of 300 rows
    assert len(rows) == 3 and "LIMIT 3" in sql
    assert sum(row["rows"] for row in rows) >= 129


def test_chart_row_limit_caps_raw_records(superset, database):
    dataset = superset.dataset(
        database, "synthetic_raw", "SELECT * FROM generate('d', target => 300)"
    )
    filters = [{"col": "cut", "op": "==", "val": "Good"}]
    rows, _ = superset.chart(
        dataset, columns=["cut", "carat", "price"], filters=filters, row_limit=10
    )
    assert len(rows) == 10 and {row["cut"] for row in rows} == {"Good"}


def test_chart_on_a_view_over_generate_counts_the_views_target(superset, database):
    dataset = superset.dataset(database, "fair_diamonds")
    rows, _ = superset.chart(dataset, columns=["cut"], metrics=COUNT)
    assert rows == [{"cut": "Fair", "rows": 40}]
