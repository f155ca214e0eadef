"""Shared fixtures: a real DuckDB file with real data, and models trained once per test run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import duck_synth

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
DIAMONDS = DATA / "diamonds.parquet"

DIAMONDS_TABLE = f"""
CREATE TABLE diamonds AS
SELECT carat,
       cut::ENUM('Fair', 'Good', 'Very Good', 'Premium', 'Ideal') AS cut,
       color::ENUM('J', 'I', 'H', 'G', 'F', 'E', 'D') AS color,
       clarity::ENUM('I1', 'SI2', 'SI1', 'VS2', 'VS1', 'VVS2', 'VVS1', 'IF') AS clarity,
       depth, "table", price::INTEGER AS price, x, y, z
FROM '{DIAMONDS}'
"""


@pytest.fixture(scope="session")
def diamonds_path(tmp_path_factory) -> Path:
    """A database file with the diamonds table and model 'd' trained on it (once per run)."""
    path = tmp_path_factory.mktemp("diamonds") / "diamonds.duckdb"
    session = duck_synth.connect(str(path))
    session.sql(DIAMONDS_TABLE)
    session.sql("FROM train('d', 'diamonds', epochs => 12, max_time => 240, seed => 7)")
    session.close()
    return path


@pytest.fixture(scope="session")
def session(diamonds_path):
    s = duck_synth.connect(str(diamonds_path))
    yield s
    s.close()


@pytest.fixture
def checksum():
    """Call with a session: a digest of every catalog table."""
    return catalog_checksum


def catalog_checksum(s: duck_synth.Session) -> str:
    """A digest of every catalog table, to show a failed statement changed nothing."""
    digest = hashlib.sha256()
    for table in ("models", "runs", "generations", "meta"):
        rows = s.con.execute(f"SELECT * FROM synth.{table} ORDER BY ALL").fetchall()
        digest.update(repr(rows).encode())
    return digest.hexdigest()
