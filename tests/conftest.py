"""Shared fixtures: a real DuckDB file with real data, and models trained once per test run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import duck_synth

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


@pytest.fixture(scope="session")
def diamonds_path(tmp_path_factory) -> Path:
    """A database file with the diamonds table and model 'd' trained on it (once per run)."""
    path = tmp_path_factory.mktemp("diamonds") / "diamonds.duckdb"
    session = duck_synth.connect(str(path))
    session.sql(DIAMONDS_TABLE)
    session.sql("FROM train('d', 'diamonds', epochs => 16, max_time => 240, seed => 7)")
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
