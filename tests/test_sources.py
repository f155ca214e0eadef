"""Sources: what train(), evaluate() and the others accept as their data."""

from __future__ import annotations

from pathlib import Path

import pytest

import duck_synth
from duck_synth import SynthError

DIAMONDS = Path(__file__).resolve().parent.parent / "examples" / "data" / "diamonds.parquet"


@pytest.fixture()
def session():
    s = duck_synth.connect()
    yield s
    s.close()


def test_a_data_file_is_a_source_by_its_name(session):
    session.con.execute(f"CREATE TABLE diamonds AS FROM '{DIAMONDS}'")
    by_file = session.sql(
        f"SELECT metric, value FROM evaluate('{DIAMONDS}', 'diamonds') WHERE metric = 'overall'"
    ).fetchall()
    assert by_file == [("overall", pytest.approx(1.0))]
    glob = str(DIAMONDS.parent / "diamond*.parquet")
    assert session.sql(f"SELECT count(*) FROM evaluate('{glob}', 'diamonds')").fetchone()[0] > 0


def test_a_missing_file_or_table_is_a_one_line_error(session):
    for source, message in (
        ("no_such_file.parquet", "No files found that match the pattern"),
        ("no_such_table", "unknown table or view 'no_such_table'"),
    ):
        with pytest.raises(SynthError, match=message) as caught:
            session.sql(f"FROM evaluate('{source}', '{source}')")
        assert "\n" not in str(caught.value)
