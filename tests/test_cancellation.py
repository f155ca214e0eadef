"""Cancelling a running statement: Session.interrupt() from another thread, a Flight SQL client's
cancel, a remote session's interrupt() and a client that goes away all stop the work within
seconds, record a training as cancelled and add nothing. One Session shared by threads gives
each call its own result. Real parts: a DuckDB file with the diamonds data, a real server
process (as tests/test_serve.py starts one)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pyarrow.flight as flight
import pytest
from conftest import DIAMONDS_TABLE
from test_serve import ADMIN, adbc, start_server, stop

import duck_synth
from duck_synth import SynthError
from duck_synth.serve import messages

pytestmark = pytest.mark.slow

LONG_TRAIN = "FROM train('{name}', 'diamonds', epochs => 10000, max_time => 600, seed => 1)"
# generous: the suite runs on a busy 2-core machine, where one training step can take seconds
STOPS_WITHIN_S = 15
CANCELLED = re.compile(r"train\('(\w+)'\): cancelled; no model was added \(run \d+\)$")


def wait_until(condition, timeout: float = 180, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class InThread:
    """``function()`` run on a thread of its own: its result or error, and when it ended."""

    def __init__(self, function):
        self.result = self.error = self.ended = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function) -> None:
        try:
            self.result = function()
        except BaseException as error:  # noqa: BLE001  the test looks at it
            self.error = error
        self.ended = time.monotonic()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout} s"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cancel.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    yield s
    s.close()


def local_runs(s: duck_synth.Session, name: str) -> list[tuple]:
    """(status, error) of ``name``'s runs, read on a cursor of its own (the session's lock is
    held by the statement running)."""
    cursor = s.con.cursor()
    try:
        return cursor.execute(
            "SELECT status, error FROM synth.runs WHERE model = ? ORDER BY run_id", [name]
        ).fetchall()
    finally:
        cursor.close()


def local_models(s: duck_synth.Session, name: str) -> int:
    cursor = s.con.cursor()
    try:
        return cursor.execute(
            "SELECT count(*) FROM synth.models WHERE name = ?", [name]
        ).fetchone()[0]
    finally:
        cursor.close()


# -- a local session -----------------------------------------------------------------------
def test_session_interrupt_stops_a_long_training(db):
    training = InThread(lambda: db.sql(LONG_TRAIN.format(name="long")))
    wait_until(lambda: local_runs(db, "long") == [("running", None)], what="the run to start")
    time.sleep(1.0)  # into the steps
    asked = time.monotonic()
    db.interrupt()
    assert time.monotonic() - asked < 1.0  # interrupt() never waits for the statement
    training.join(STOPS_WITHIN_S + 30)
    print(f"Session.interrupt(): training stopped {training.ended - asked:.2f} s after")
    assert training.ended - asked < STOPS_WITHIN_S
    assert isinstance(training.error, SynthError), training.error
    assert CANCELLED.match(str(training.error)), training.error
    assert local_runs(db, "long") == [("cancelled", "training was cancelled")]
    assert local_models(db, "long") == 0
    # the session goes on; the next statement is not cancelled
    assert db.sql("SELECT count(*) FROM diamonds").fetchone() == (53940,)


def test_interrupt_does_not_wait_for_a_statement_queued_behind_the_running_one(db):
    training = InThread(lambda: db.sql(LONG_TRAIN.format(name="queued")))
    wait_until(lambda: local_runs(db, "queued") == [("running", None)], what="the run to start")
    waiting = InThread(lambda: db.sql("SELECT count(*) AS n FROM diamonds WHERE cut = 'Fair'"))
    time.sleep(0.5)  # the second call waits for the session
    assert waiting.ended is None
    asked = time.monotonic()
    db.interrupt()
    assert time.monotonic() - asked < 1.0
    training.join(STOPS_WITHIN_S + 30)
    waiting.join(60)
    assert CANCELLED.match(str(training.error)), training.error
    # the queued call was not running when the interrupt came: it runs, with its own result
    assert waiting.error is None, waiting.error
    assert waiting.result.fetchall() == [(1610,)]
    assert local_models(db, "queued") == 0


def test_two_threads_on_one_session_each_get_their_own_result(db):
    def query(k: int) -> list[tuple]:
        return db.sql(
            f"SELECT {k} AS k, count(*) AS n, sum(price) AS total FROM diamonds "
            f"WHERE price % 7 = {k % 7}"
        ).fetchall()

    expected = {k: query(k) for k in range(14)}
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(60):
            k = (i + offset) % 14
            try:
                got = query(k)
            except Exception as error:  # noqa: BLE001  reported below
                failures.append(f"{k}: {error}")
                continue
            if got != expected[k]:
                failures.append(f"{k}: got {got}, expected {expected[k]}")

    threads = [threading.Thread(target=worker, args=(n * 5,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert failures == []


def test_session_interrupt_stops_a_large_generation(db):
    db.sql("FROM train('quick', 'diamonds', epochs => 1, nrows => 2000, seed => 1)")
    generations = db.sql("SELECT count(*) FROM synth.generations").fetchone()[0]
    generating = InThread(
        lambda: db.sql("SELECT count(*) FROM generate('quick', target => 100000000)")
    )
    time.sleep(2.0)  # into the batches
    asked = time.monotonic()
    db.interrupt()
    generating.join(STOPS_WITHIN_S + 30)
    print(f"Session.interrupt(): generation stopped {generating.ended - asked:.2f} s after")
    assert generating.ended - asked < STOPS_WITHIN_S
    assert isinstance(generating.error, SynthError), generating.error
    assert "cancelled" in str(generating.error)
    assert db.sql("SELECT count(*) FROM synth.generations").fetchone()[0] == generations

    # generate_into (run by the session itself, outside a DuckDB statement) stops between
    # batches: whole batches stay, and the run can be resumed
    appending = InThread(
        lambda: db.sql(
            "FROM generate_into('big', 'quick', target => 100000000, batch_size => 20000)"
        )
    )
    wait_until(
        lambda: (
            db.con.cursor()
            .execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'big'")
            .fetchone()[0]
        ),
        what="the table to be made",
    )
    time.sleep(1.0)
    asked = time.monotonic()
    db.interrupt()
    appending.join(STOPS_WITHIN_S + 30)
    print(f"Session.interrupt(): generate_into stopped {appending.ended - asked:.2f} s after")
    assert appending.ended - asked < STOPS_WITHIN_S
    assert "cancelled" in str(appending.error), appending.error
    rows, status = db.sql(
        "SELECT (SELECT count(*) FROM big), status FROM synth.batch_runs"
    ).fetchone()
    assert rows % 20000 == 0 and rows < 100000000 and status == "running"


# -- over Flight SQL, on a real server ------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("cancel_served") / "served.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.close()
    process, url, _ = start_server(path, "--port", "0", "--no-quack", "--token", ADMIN)
    yield url
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def remote_runs(url: str, name: str) -> list[tuple]:
    with adbc(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT status FROM synth.runs WHERE model = '{name}' ORDER BY run_id")
        runs = [r[0] for r in cur.fetchall()]
        cur.execute(f"SELECT count(*) FROM synth.models WHERE name = '{name}'")
        return runs, cur.fetchone()[0]


def wait_for_run(url: str, name: str) -> None:
    wait_until(lambda: remote_runs(url, name)[0] == ["running"], what="the run to start")
    time.sleep(1.0)  # into the steps


def stopped_within(url: str, name: str, asked: float) -> float:
    runs, models = wait_until(
        lambda: (r := remote_runs(url, name))[0] != ["running"] and r,
        timeout=STOPS_WITHIN_S + 30,
        what="the run to end",
    )
    took = time.monotonic() - asked
    assert runs == ["cancelled"] and models == 0, (runs, models)
    assert took < STOPS_WITHIN_S
    return took


def test_a_flight_client_cancel_stops_a_training_inside_do_get(server):
    headers = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {ADMIN}".encode())])
    client = flight.connect(server)
    command = messages.pack(
        messages.new("CommandStatementQuery", query=LONG_TRAIN.format(name="flight_cancel"))
    )
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), headers)
    fetching = InThread(lambda: client.do_get(info.endpoints[0].ticket, headers).read_all())
    wait_for_run(server, "flight_cancel")
    asked = time.monotonic()
    request = messages.new("CancelFlightInfoRequest", info=info.serialize())
    canceller = flight.connect(server)
    (answer,) = list(
        canceller.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()), headers)
    )
    assert messages.parse("CancelFlightInfoResult", answer.body.to_pybytes()).status == 1
    took = stopped_within(server, "flight_cancel", asked)
    fetching.join(60)
    print(f"CancelFlightInfo: training stopped within {took:.2f} s")
    assert isinstance(fetching.error, flight.FlightCancelledError), fetching.error
    assert "cancelled; no model was added" in str(fetching.error)
    client.close()
    canceller.close()


def test_a_remote_session_interrupt_stops_a_training(server):
    remote = duck_synth.connect(server, token=ADMIN)
    training = InThread(lambda: remote.sql(LONG_TRAIN.format(name="remote_interrupt")))
    wait_for_run(server, "remote_interrupt")
    asked = time.monotonic()
    remote.interrupt()
    took = stopped_within(server, "remote_interrupt", asked)
    training.join(60)
    print(f"RemoteSession.interrupt(): training stopped within {took:.2f} s")
    assert isinstance(training.error, SynthError), training.error
    # the session goes on
    assert remote.sql("SELECT 42").fetchone() == (42,)
    remote.close()


CLIENT = """
import sys
import duck_synth
session = duck_synth.connect(sys.argv[1], token=sys.argv[2])
session.sql(sys.argv[3])
"""


def test_a_client_that_goes_away_stops_its_training(server):
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, server, ADMIN, LONG_TRAIN.format(name="gone")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_run(server, "gone")
        asked = time.monotonic()
        client.kill()  # its connection closes mid-training
        client.wait(30)
        took = stopped_within(server, "gone", asked)
    finally:
        client.kill()
    print(f"client gone: training stopped within {took:.2f} s")
    # the server goes on
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM diamonds")
        assert cur.fetchone() == (53940,)
