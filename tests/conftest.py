"""Shared fixtures: a real DuckDB file with real data, and models trained once per test run."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import duck_synth
import duck_synth.fitting
from duck_synth import threads
from duck_synth.distributed import cluster

# before any test module imports ray: a local Ray binds 127.0.0.1, as duck_synth starts it
cluster.prepare_environment()
# every training of the suite (its servers' and CLIs' too) on torch's default threads, however
# busy the machine: weights are bit-identical only on one number of threads (threads.py), and
# the reproducibility and resume tests compare processes started at different loads
os.environ.setdefault(threads.VARIABLE, str(torch.get_num_threads()))

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
DIAMONDS = DATA / "diamonds.parquet"

DIAMONDS_TABLE = (DATA / "diamonds.sql").read_text().format(parquet=DIAMONDS)
# plm's Males panel and SLID as tables (R's row index dropped)
MALES_TABLE = (
    f"CREATE TABLE males AS SELECT * EXCLUDE (column00) FROM read_csv('{DATA / 'Males.csv'}')"
)
SLID_TABLE = (
    "CREATE TABLE slid AS SELECT * EXCLUDE (column0) "
    f"FROM read_csv('{DATA / 'SLID.csv'}', nullstr = 'NA')"
)


# --- every training in a test has a fixed number of epochs ------------------------------------
# Without ``epochs =>`` a training runs the method's default epochs until max_time, so what it
# learns depends on how fast the machine is (on a busy 2-core machine: a weaker model and
# failed thresholds). The guard wraps the code every in-process training runs through
# (duck_synth.train: the default epochs are only asked for when none were given, and fit_recorded):
# a training without epochs fails the test, and so does a training that max_time stopped
# (its epochs were cut: max_time must be a safety cap, never the limit). Tests about max_time
# itself say so with @pytest.mark.max_time. Trainings in other processes (the CLI, servers) are
# checked in their SQL text by tests/test_conftest_guard.py.
MAX_TIME_MARK = "max_time"
# methods whose fit takes no epochs and no time limit (PrivBayes counts in one pass)
NO_EPOCHS = {"privbayes"}
_current: dict[str, pytest.Item | None] = {"item": None}
# per test (node id): what the guard found, reported when the test ends
violations: dict[str, list[str]] = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MAX_TIME_MARK}: the test is about max_time itself: its trainings may run without "
        "epochs => and may be stopped by max_time (conftest's epochs guard lets them)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["item"] = item  # session and module fixtures train in the first test's set-up
    try:
        return (yield)
    finally:
        _current["item"] = None


def _unguarded() -> bool:
    item = _current["item"]
    return item is None or item.get_closest_marker(MAX_TIME_MARK) is not None


def _record(message: str) -> str:
    item = _current["item"]
    text = f"{item.nodeid}: {message}"
    violations.setdefault(item.nodeid, []).append(text)
    return text


class TrainingWithoutEpochs(AssertionError):
    pass


@pytest.fixture(scope="session", autouse=True)
def _epochs_guard():
    default_epochs, fit = duck_synth.fitting.default_epochs, duck_synth.fitting.fit_recorded

    def guarded_default_epochs(method: str) -> int:
        if method not in NO_EPOCHS and not _unguarded():
            raise TrainingWithoutEpochs(
                _record(
                    f"a '{method}' training without epochs => (it would run until max_time: "
                    "its result depends on the machine's speed); give epochs => N, or mark the "
                    f"test @pytest.mark.{MAX_TIME_MARK} if it is about max_time"
                )
            )
        return default_epochs(method)

    def guarded_fit(con, run_id, model, data, config):
        fitted = fit(con, run_id, model, data, config)
        if fitted.get("stopped") == "max_time" and not _unguarded():
            _record(
                f"max_time => {config.max_time:.0f} s stopped a training of epochs => "
                f"{config.epochs} after {fitted.get('epochs')} epochs (its result depends on the "
                f"machine's speed); give it a max_time that never cuts it, or mark the test "
                f"@pytest.mark.{MAX_TIME_MARK} if it is about max_time"
            )
        return fitted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(duck_synth.fitting, "default_epochs", guarded_default_epochs)
        patch.setattr(duck_synth.fitting, "fit_recorded", guarded_fit)
        yield


@pytest.fixture(autouse=True)
def _epochs_checked(request, _epochs_guard):
    """Fails the test if a training in it (or in a fixture it set up) broke the guard's rules,
    even where the error was caught (a server thread, pytest.raises)."""
    yield
    found = violations.pop(request.node.nodeid, [])
    if found:
        pytest.fail("\n".join(found), pytrace=False)


@pytest.fixture(scope="session")
def diamonds_path(tmp_path_factory) -> Path:
    """A database file with the diamonds table and model 'd' trained on it (once per run).
    16 epochs, max_time only a cap: on 2 cores they took 167 s at load 5 and 1,165 s at load 16
    (a cap that cut them would fail the test: the guard). The model's tests have margins: seed
    rows' price ratio 5.95 (> 3), resample's carat~price correlation 0.91 (> 0.8), its mean
    price 5% off (< 15%)."""
    path = tmp_path_factory.mktemp("diamonds") / "diamonds.duckdb"
    session = duck_synth.connect(str(path))
    session.sql(DIAMONDS_TABLE)
    session.sql("FROM train('d', 'diamonds', epochs => 16, max_time => 3600, seed => 7)")
    session.close()
    return path


@pytest.fixture(scope="session")
def session(diamonds_path):
    s = duck_synth.connect(str(diamonds_path))
    yield s
    s.close()


@pytest.fixture(scope="session")
def careers(session) -> str:
    """Model 'careers_small' in the shared database: Males' careers as sessions (a quick fit,
    for behaviour rather than quality)."""
    session.sql(MALES_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    session.sql(
        "FROM train('careers_small', 'males', session_key => 'nr', order_by => 'year', "
        "epochs => 4, seed => 1)"
    )
    return "careers_small"


@pytest.fixture
def refused():
    """``refused(session, sql, message)``: the statement fails with one line matching
    ``message``, and the catalog is left exactly as it was."""

    def check(s: duck_synth.Session, sql: str, message: str) -> None:
        before = catalog_checksum(s)
        with pytest.raises(duck_synth.SynthError, match=message) as raised:
            s.sql(sql)
        assert "\n" not in str(raised.value)
        assert catalog_checksum(s) == before

    return check


def catalog_checksum(s: duck_synth.Session) -> str:
    """A digest of every catalog table, to show a failed statement changed nothing."""
    digest = hashlib.sha256()
    for table in ("models", "runs", "generations", "meta"):
        rows = s.con.execute(f"SELECT * FROM synth.{table} ORDER BY ALL").fetchall()
        digest.update(repr(rows).encode())
    return digest.hexdigest()


def own_venv(requirements: Path, venv: Path, what: str) -> Path:
    """A virtual environment of its own for a tool whose pins clash with the project's (Apache
    Superset, SDMetrics), built from ``requirements`` on first use and rebuilt when that file
    changes (under a lock, so that two test runs never build it at the same time). A failed
    build fails the test under CI; elsewhere it skips, saying why: the first run needs PyPI."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / "duck_synth-requirements.sha256"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == digest:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run(
            [venv / "bin" / "python", "-m", "pip", "install", "-q", "-r", requirements],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            why = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
            message = f"{what} could not be installed ({why})"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(f"{message}: this test needs PyPI once, then uses {venv}")
        stamp.write_text(digest)
    return venv


def noise(frame, rows: int, seed: int):
    """Each column drawn independently: numbers uniform over the real range, categories uniform."""
    rng = np.random.default_rng(seed)
    out = frame.head(0).copy()
    for name in frame.columns:
        values = frame[name]
        if values.dtype.kind in "fi":
            out[name] = rng.uniform(values.min(), values.max(), rows).astype(values.dtype)
        else:
            out[name] = rng.choice(values.dropna().unique(), rows)
    return out


NYCFLIGHTS = DATA / "nycflights13"


def load_nycflights_chain(run) -> None:
    """The linked nycflights13 subset (airlines, airports, planes, flights) and a three-level
    chain derived from it with declared keys: carriers -> fleet (planes by each one's main
    carrier) -> trips (the flights of those planes). ``run`` executes one SQL statement."""
    for table in ("airlines", "airports", "planes", "flights"):
        run(f"CREATE TABLE {table} AS FROM '{NYCFLIGHTS / table}.parquet'")
    run("CREATE TABLE carriers (carrier VARCHAR PRIMARY KEY, name VARCHAR)")
    run("INSERT INTO carriers FROM airlines")
    run(
        "CREATE TABLE fleet (tailnum VARCHAR PRIMARY KEY, "
        "carrier VARCHAR REFERENCES carriers (carrier), seats INTEGER)"
    )
    run(
        "INSERT INTO fleet SELECT p.tailnum, arg_max(f.carrier, n), any_value(p.seats) FROM "
        "planes p JOIN (SELECT tailnum, carrier, count(*) AS n FROM flights GROUP BY ALL) f "
        "USING (tailnum) GROUP BY p.tailnum"
    )
    run("CREATE TABLE trips (tailnum VARCHAR REFERENCES fleet (tailnum), dep_delay DOUBLE)")
    run(
        "INSERT INTO trips SELECT tailnum, dep_delay FROM flights WHERE tailnum IN "
        "(SELECT tailnum FROM fleet)"
    )
