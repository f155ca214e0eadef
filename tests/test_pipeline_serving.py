"""Pipelines served: created, versioned and deployed over Flight SQL by an admin, called with
infer() by ADBC clients (bound parameters, bulk input, a deployment token that may do nothing
else), time-outs, random splits with a hash key, generate arms, shadows, undeploy."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
from adbc_driver_manager import Error as AdbcError
from conftest import DIAMONDS_TABLE
from test_serve import ADMIN, READER, adbc, start_with_tokens, stop

import duck_synth

DEPLOYER = "deployment-token-1"  # may call infer() on testdata and ab only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipelines") / "pipelines.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql("FROM train('d', 'diamonds', epochs => 1, max_time => 600, seed => 3)")
    s.sql("CREATE MACRO peek() AS (SELECT max(price) FROM diamonds)")
    s.close()
    process, address, _ = start_with_tokens(path, "--deployment-token", f"{DEPLOYER}=testdata,ab")
    yield address
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def run(url: str, sql: str, parameters=None, token: str = ADMIN) -> list[dict]:
    with adbc(url, token) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table().to_pylist()


def refused(url: str, sql: str, message: str, token: str = ADMIN) -> str:
    with pytest.raises(AdbcError) as raised:
        run(url, sql, token=token)
    text = str(raised.value)
    assert message in text and "Traceback" not in text, text
    return text


@pytest.fixture(scope="module")
def testdata(url):
    """'testdata': a test-data endpoint, diamonds drawn given the caller's rows, cheap ones
    flagged; made over the server in two versions, the second deployed."""
    run(url, "FROM create_pipeline('testdata', steps => [{'generate': 'd'}])")
    run(url, "FROM add_pipeline_step('testdata', {'validation': 'cheap', 'check': 'price >= 800'})")
    run(url, "FROM deploy('testdata')")
    return "testdata"


def test_an_admin_versions_and_deploys_a_pipeline_over_flight_sql(url, testdata):
    listed = run(url, "SELECT version, deployed, change FROM pipelines() WHERE name = 'testdata'")
    assert listed == [
        {"version": 1, "deployed": False, "change": "created"},
        {"version": 2, "deployed": True, "change": "step 2 added"},
    ]
    refused(
        url, "FROM create_pipeline('x', steps => [])", "create_pipeline() is not allowed", READER
    )


def test_a_deployment_token_calls_infer_with_bound_parameters_and_nothing_else(url, testdata):
    rows = run(
        url,
        "SELECT * FROM infer('testdata', input => [{'carat': ?, 'cut': ?}])",
        (2.0, "Ideal"),
        DEPLOYER,
    )
    assert len(rows) == 1 and rows[0]["in.carat"] == rows[0]["out.carat"] == 2.0
    assert rows[0]["out.cut"] == "Ideal" and rows[0]["arm"] == "testdata@2"
    for sql, message in [
        ("FROM infer('elsewhere', input => {'a': 1})", "infer() on 'elsewhere' is not allowed"),
        ("FROM diamonds", "only infer() on its pipelines (testdata, ab), not 'diamonds'"),
        ("FROM generate('d', target => 1)", "not generate()"),
        ("FROM logs('testdata')", "not logs()"),
        ("FROM infer('testdata', input => 'SELECT carat FROM diamonds')", "rows inline"),
        ("FROM infer('testdata', input => 'diamonds')", "give infer() its input rows inline"),
        ("FROM deploy('testdata')", "not deploy()"),
        ("FROM infer(?, input => {'a': 1})", "by a string literal"),
        ("SELECT score('clf', {'carat': 1.0})", "not score()"),
        ("SELECT peek()", "not peek()"),  # a macro may read what the token may not name
    ]:
        refused(url, sql, message, DEPLOYER)
    with adbc(url, DEPLOYER) as conn, conn.cursor() as cur:
        with pytest.raises(AdbcError, match="deployment token: bulk ingest"):
            cur.adbc_ingest("planted", pa.table({"a": [1]}), mode="create")
        with pytest.raises(AdbcError, match="not the database's catalog"):
            conn.adbc_get_objects(depth="tables").read_all()


def test_a_remote_python_session_sends_a_dataframe_as_rows(url, testdata):
    remote = duck_synth.connect(url, token=READER)
    frame = pa.table({"carat": [0.7, 1.7], "cut": ["Premium", "Good"]})
    result = remote.infer("testdata", frame).arrow()
    assert result["in.carat"].to_pylist() == result["out.carat"].to_pylist() == [0.7, 1.7]
    remote.close()


def test_bulk_input_from_an_ingested_table_is_one_call(url, testdata):
    requests = pa.table({"carat": [0.3 + i / 100 for i in range(500)], "cut": ["Good"] * 500})
    with adbc(url) as conn, conn.cursor() as cur:
        cur.adbc_ingest("requests", requests, mode="replace")
    rows = run(
        url,
        "SELECT \"in.carat\", \"out.carat\", check_failures FROM infer('testdata', input => 'requests')",
        token=READER,
    )
    assert [r["in.carat"] for r in rows] == requests["carat"].to_pylist()
    assert all(r["in.carat"] == r["out.carat"] for r in rows)
    last = run(
        url,
        "SELECT input_rows, output_rows, check_failures, failures FROM logs('testdata', max_rows => 1)",
    )[0]
    flagged = sum(1 for r in rows if r["check_failures"])
    assert (last["input_rows"], last["output_rows"], last["check_failures"]) == (500, 500, flagged)
    assert json.loads(last["failures"]) == ({"cheap": flagged} if flagged else {})


def test_a_time_out_over_the_server_is_one_line_and_logged(url):
    run(url, "FROM create_pipeline('slow', steps => [{'generate': 'd', 'target': 9000000}])")
    run(url, "FROM deploy('slow')")
    started = time.monotonic()
    text = refused(
        url,
        "FROM infer('slow', input => {'a': 1}, timeout => 1)",
        "infer('slow'): timed out after 1 s",
    )
    assert time.monotonic() - started < 3.0 and "\n" not in text.strip()
    logged = run(url, "SELECT status FROM logs('slow', failures_only => true)")
    assert logged == [{"status": "timeout"}]


def test_a_random_split_keeps_its_weights_and_each_hash_key_on_one_arm(url):
    for arm in ("arm_a", "arm_b"):
        run(
            url,
            f"FROM create_pipeline('{arm}', steps => [{{'sql': 'SELECT *, ''{arm}'' AS served FROM input'}}])",
        )
    run(
        url,
        "FROM create_pipeline('ab', split => {'random': {'arm_a': 2, 'arm_b': 1}, 'hash_key': 'session_id'})",
    )
    run(url, "FROM deploy('ab')")

    clients = threading.local()  # a connection per client thread, as a service keeps one

    def call(key: int) -> str:
        if not hasattr(clients, "cursor"):
            clients.cursor = adbc(url, DEPLOYER).cursor()
        clients.cursor.execute("SELECT arm FROM infer('ab', input => [{'session_id': ?}])", (key,))
        return clients.cursor.fetchone()[0]

    with ThreadPoolExecutor(4) as pool:
        arms = list(pool.map(call, range(3000)))
    share = arms.count("arm_a@1") / len(arms)
    assert abs(share - 2 / 3) <= 0.03, share
    logged = run(
        url, "SELECT arm, count(*) AS calls FROM logs('ab', max_rows => 10000) GROUP BY arm"
    )
    assert {r["arm"]: r["calls"] for r in logged} == {
        "arm_a@1": arms.count("arm_a@1"),
        "arm_b@1": arms.count("arm_b@1"),
    }
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(call, [key for key in range(100) for _ in range(10)]))
    for key in range(100):
        assert set(again[key * 10 : key * 10 + 10]) == {arms[key]}, key


def test_generate_arms_share_calls_and_a_shadow_only_returns_its_champion(url):
    for name, seed in (("gen_1", 1), ("gen_2", 2)):
        run(
            url,
            f"FROM create_pipeline('{name}', steps => [{{'generate': 'd', 'target': 5, 'seed': {seed}}}])",
        )
    run(url, "FROM create_pipeline('gen_ab', split => {'random': {'gen_1': 1, 'gen_2': 1}})")
    run(
        url,
        "FROM create_pipeline('gen_shadow', split => {'champion': 'gen_1', 'challengers': ['gen_2']})",
    )
    run(url, "FROM deploy('gen_ab')")
    run(url, "FROM deploy('gen_shadow')")
    arms = [
        run(url, "SELECT DISTINCT arm FROM infer('gen_ab', input => {'a': 1})", token=READER)
        for _ in range(100)
    ]
    counts = {"gen_1@1": 0, "gen_2@1": 0}
    for rows in arms:
        assert len(rows) == 1  # a call without a hash key goes to one arm
        counts[rows[0]["arm"]] += 1
    assert min(counts.values()) >= 25, counts  # 1:1 over 100 calls: below 25 is p < 1e-6
    shadowed = run(url, "FROM infer('gen_shadow', input => {'a': 1})", token=READER)
    assert len(shadowed) == 5 and {r["arm"] for r in shadowed} == {"gen_1@1"}
    logged = run(url, "SELECT arm, shadow, output_rows FROM logs('gen_shadow') ORDER BY arm")
    assert logged == [
        {"arm": "gen_1@1", "shadow": False, "output_rows": 5},
        {"arm": "gen_2@1", "shadow": True, "output_rows": 5},
    ]


def test_undeploy_over_the_server_refuses_further_calls(url):
    run(url, "FROM create_pipeline('gone', steps => [{'sql': 'SELECT a FROM input'}])")
    run(url, "FROM deploy('gone')")
    assert run(url, "SELECT \"out.a\" FROM infer('gone', input => {'a': 7})", token=READER) == [
        {"out.a": 7}
    ]
    run(url, "FROM undeploy('gone')")
    refused(url, "FROM infer('gone', input => {'a': 7})", "pipeline 'gone' is not deployed", READER)
