"""generate_into(engine => 'ray'): batches drawn by tasks on a real local Ray (2 CPUs), the same
rows as the local engine whatever the number of workers; a killed worker's batch redone once;
Parquet parts; a run stopped on one engine resumed on the other; a server's cluster; a real
two-node cluster (ray.cluster_utils); and the one-line error without Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import DIAMONDS_TABLE, MALES_TABLE

import duck_synth
from duck_synth.distributed import cluster

ray = cluster.require_ray("tests")  # as duck_synth imports it: bound to 127.0.0.1

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module: 2 CPUs, a small object store (containers' /dev/shm)."""
    cluster.start_local(ray, cpus=2, object_store_bytes=100 * 1024 * 1024)
    yield ray
    cluster.stop_local()


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    """Model 'small' (a key and three columns of diamonds) and 'careers' (Males' sessions)."""
    path = tmp_path_factory.mktemp("ray") / "ray.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql(MALES_TABLE)
    s.sql(
        "CREATE TABLE keyed AS SELECT row_number() OVER () AS id, cut, color, price FROM diamonds"
    )
    s.sql("FROM train('small', 'keyed', epochs => 1, seed => 1)")
    s.sql(
        "FROM train('careers', 'males', session_key => 'nr', order_by => 'year', epochs => 2, "
        "seed => 1)"
    )
    s.close()
    return path


@pytest.fixture
def s(database):
    session = duck_synth.connect(str(database))
    yield session
    session.close()


def rows(s, table: str) -> pa.Table:
    return s.sql(f"SELECT * FROM {table} ORDER BY rowid").arrow()


def into(s, table: str, arguments: str) -> dict:
    result = s.sql(f"FROM generate_into('{table}', {arguments})").fetchall()
    names = ["table", "model", "version", "target", "rows", "batches", "resumed_from"]
    return dict(zip(names, result[0], strict=False))


def test_one_and_two_workers_write_the_rows_of_the_local_engine(s):
    arguments = "'small', target => 30000, batch_size => 4000, seed => 5"
    into(s, "r_local", arguments)
    one = into(s, "r_one", arguments + ", engine => 'ray', workers => 1")
    into(s, "r_two", arguments + ", engine => 'ray', workers => 2")
    local = rows(s, "r_local")
    assert local.num_rows == 30000 and one["batches"] == 8
    assert rows(s, "r_one").equals(local)
    assert rows(s, "r_two").equals(local)
    # key values continue from batch to batch: 1..30000, each once
    assert s.sql("SELECT count(DISTINCT id), min(id), max(id) FROM r_two").fetchone() == (
        30000,
        1,
        30000,
    )


def test_where_pushdown_and_unique_values_under_ray_are_the_local_rows(s):
    arguments = (
        "'small', target => 5000, batch_size => 2000, seed => 9, filter => 'cut = ''Ideal'' "
        "AND price > 2000', unique_columns => ['price']"
    )
    into(s, "u_local", arguments)
    into(s, "u_ray", arguments + ", engine => 'ray'")
    ray_rows = rows(s, "u_ray")
    assert ray_rows.equals(rows(s, "u_local"))
    assert ray_rows.num_rows == 5000
    assert s.sql(
        "SELECT bool_and(cut = 'Ideal' AND price > 2000), count(DISTINCT price) FROM u_ray"
    ).fetchone() == (True, 5000)


def test_equalize_under_ray_is_the_local_rows_and_refused_under_a_filter(s, refused):
    arguments = "'small', target => 7000, batch_size => 3000, seed => 2, equalize => 'cut'"
    into(s, "q_local", arguments)
    into(s, "q_ray", arguments + ", engine => 'ray'")
    assert rows(s, "q_ray").equals(rows(s, "q_local"))
    counts = s.sql("SELECT count(*) FROM q_ray GROUP BY cut").fetchall()
    assert sorted(c for (c,) in counts) == [1400] * 5
    refused(
        s,
        "FROM generate_into('q_refused', " + arguments + ", engine => 'ray', filter => "
        "'price > 1000 OR color = ''E''')",
        "equalize and rebalance under a filter or unique values depend on every batch before: "
        "give engine => 'local'",
    )
    assert (
        s.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'q_refused'").fetchone()[0]
        == 0
    )


def test_sessions_under_ray_are_the_local_sessions(s):
    arguments = "'careers', target => 150, batch_size => 400, seed => 4"
    into(s, "c_local", arguments)
    summary = into(s, "c_ray", arguments + ", engine => 'ray', workers => 2")
    assert summary["batches"] > 2
    assert rows(s, "c_ray").equals(rows(s, "c_local"))
    assert s.sql("SELECT count(DISTINCT nr), max(nr) FROM c_ray").fetchone() == (150, 150)


def test_a_killed_workers_batch_is_redone_and_written_once(s):
    """A worker process is killed with SIGKILL while it draws; Ray runs its task again."""
    killed: list[int] = []
    done = threading.Event()

    ours = cluster.local_folder().encode()  # in its raylet's arguments: this test's Ray

    def kill_one_drawing_worker() -> None:
        while not done.is_set() and not killed:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
                    raylet = Path(f"/proc/{parent}/cmdline").read_bytes()
                except (OSError, IndexError):
                    continue
                if title.startswith(b"ray::draw_batch") and ours in raylet:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            time.sleep(0.005)

    arguments = "'small', target => 200000, batch_size => 20000, seed => 3"
    killer = threading.Thread(target=kill_one_drawing_worker)
    killer.start()
    try:
        into(s, "k_ray", arguments + ", engine => 'ray', workers => 2")
    finally:
        done.set()
        killer.join()
    assert killed, "no drawing worker was seen to kill"
    into(s, "k_local", arguments)
    assert rows(s, "k_ray").equals(rows(s, "k_local"))
    assert s.sql("SELECT count(*), count(DISTINCT id) FROM k_ray").fetchone() == (200000, 200000)


def test_a_tasks_error_reaches_the_caller_as_its_own_one_line(s):
    from duck_synth.distributed.generation import taken

    def fails() -> None:
        raise duck_synth.SynthError("column 'x' of the batch is wrong")

    with pytest.raises(duck_synth.SynthError) as raised:
        taken(ray, ray.remote(max_retries=0)(fails).remote())
    assert str(raised.value) == "column 'x' of the batch is wrong"


def test_target_zero_into_parts_makes_an_empty_view(s, tmp_path):
    summary = into(s, "p_empty", f"'small', target => 0, path => '{tmp_path / 'none'}'")
    assert summary["rows"] == 0
    assert s.sql("SELECT count(*) FROM p_empty").fetchone() == (0,)
    assert [c[0] for c in s.sql("DESCRIBE p_empty").fetchall()] == ["id", "cut", "color", "price"]


def test_parts_hold_each_batch_once_behind_a_view(s, tmp_path, refused):
    folder = tmp_path / "parts"
    arguments = "'small', target => 9000, batch_size => 4000, seed => 6"
    into(s, "p_local", arguments)
    summary = into(s, "p_view", arguments + f", engine => 'ray', path => '{folder}'")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["part-00000000.parquet", "part-00000001.parquet", "part-00000002.parquet"]
    assert summary["rows"] == 9000
    assert s.sql(
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'p_view'"
    ).fetchone() == ("VIEW",)
    # the view reads the parts in batch order: the local engine's rows, in its order
    assert s.sql("SELECT * FROM p_view").arrow().equals(rows(s, "p_local"))
    refused(
        s,
        f"FROM generate_into('p_other', {arguments}, path => '{folder}')",
        "holds Parquet parts already; give an empty folder, or delete them",
    )


def test_a_run_stopped_on_ray_resumes_on_the_local_engine_to_the_same_rows(s):
    arguments = "'small', target => 300000, batch_size => 10000, seed => 8"
    reader = s.con.cursor()

    def interrupt_after_two_batches() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                count = reader.execute("SELECT count(*) FROM i_ray").fetchone()[0]
            except Exception:  # the table is not there yet
                count = 0
            if count >= 20000:
                s.interrupt()
                return
            time.sleep(0.01)

    stopper = threading.Thread(target=interrupt_after_two_batches)
    stopper.start()
    with pytest.raises(duck_synth.SynthError, match="cancelled"):
        into(s, "i_ray", arguments + ", engine => 'ray', workers => 2")
    stopper.join()
    written = s.sql("SELECT count(*) FROM i_ray").fetchone()[0]
    assert 0 < written < 300000 and written % 10000 == 0
    resumed = into(s, "i_ray", arguments)  # the local engine, where the Ray run stopped
    assert resumed["resumed_from"] == written
    into(s, "i_local", arguments)
    assert rows(s, "i_ray").equals(rows(s, "i_local"))


def test_a_server_sends_generation_to_its_cluster_and_refuses_without_one(database, tmp_path):
    """duck-synth serve --ray ADDRESS: the workers of the test's own Ray, reached at its GCS
    address; a server started without --ray refuses engine => 'ray' in one line."""
    from test_serve import adbc, start_with_tokens, stop

    served = tmp_path / "served.duckdb"
    served.write_bytes(database.read_bytes())
    call = (
        "FROM generate_into('srv', 'small', target => 20000, batch_size => 5000, seed => 5, "
        "engine => 'ray')"
    )
    address = ray.get_runtime_context().gcs_address
    process, url, _ = start_with_tokens(served, "--ray", address)
    try:
        with adbc(url) as conn, conn.cursor() as cur:
            cur.execute(call)
            assert cur.fetchall()[0][4] == 20000
            cur.execute("SELECT count(*), count(DISTINCT id) FROM srv")
            assert cur.fetchone() == (20000, 20000)
    finally:
        stop(process)
    process, url, _ = start_with_tokens(served)
    try:
        with adbc(url) as conn, conn.cursor() as cur, pytest.raises(Exception) as error:
            cur.execute(call.replace("'srv'", "'srv2'"))
            cur.fetchall()
        message = str(error.value)
        assert "this server sends no work to Ray; start it with duck-synth serve --ray" in message
        assert "Traceback" not in message
    finally:
        stop(process)


def test_two_nodes_of_a_real_cluster_write_the_local_rows(database, tmp_path):
    """ray.cluster_utils.Cluster: a head and a second node (one CPU each), in a process of its
    own (a process joins one Ray), reached by connect(ray => its address)."""
    copy = tmp_path / "nodes.duckdb"
    copy.write_bytes(database.read_bytes())
    code = textwrap.dedent(
        f"""
        import json
        from duck_synth.distributed import cluster
        ray = cluster.require_ray("test")
        from ray.cluster_utils import Cluster
        nodes = Cluster(initialize_head=True, head_node_args={{
            "num_cpus": 1, "object_store_memory": 100 * 1024 * 1024}})
        nodes.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        import duck_synth
        s = duck_synth.connect({str(copy)!r}, ray=nodes.address)
        arguments = "'small', target => 24000, batch_size => 3000, seed => 11"
        s.sql(f"FROM generate_into('n_ray', {{arguments}}, engine => 'ray', workers => 2)")
        alive = sum(1 for n in ray.nodes() if n["Alive"])
        s.sql(f"FROM generate_into('n_local', {{arguments}})")
        same = s.sql("SELECT * FROM n_ray ORDER BY rowid").arrow().equals(
            s.sql("SELECT * FROM n_local ORDER BY rowid").arrow())
        print(json.dumps({{"alive": alive, "same": same,
                          "rows": s.sql("SELECT count(*) FROM n_ray").fetchone()[0]}}))
        s.close()
        ray.shutdown()
        nodes.shutdown()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == '{"alive": 2, "same": true, "rows": 24000}'


def test_without_ray_installed_engine_ray_is_one_line_and_writes_nothing(database, tmp_path):
    copy = tmp_path / "noray.duckdb"
    copy.write_bytes(database.read_bytes())
    code = textwrap.dedent(
        f"""
        import sys
        for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
            del sys.modules[name]
        sys.modules["ray"] = None  # import ray fails, as where it is not installed
        import duck_synth
        s = duck_synth.connect({str(copy)!r})
        try:
            s.sql("FROM generate_into('nr', 'small', target => 10, engine => 'ray')")
        except duck_synth.SynthError as error:
            print(str(error))
        print(s.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'nr'").fetchone())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "generate_into(engine => 'ray'): Ray is not installed; pip install 'duck_synth[ray]' "
        "(or give engine => 'local')",
        "(0,)",
    ]
