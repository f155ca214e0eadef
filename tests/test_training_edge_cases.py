"""Training on degenerate tables (an all-NULL column, one row, nothing but constants), filters
on constant columns, bad max_time, and a training whose result cannot be written."""

from __future__ import annotations

import pyarrow.parquet
import pytest

import duck_synth
from duck_synth import SynthError

METHODS = ["autoregressive", "tabgan", "privbayes", "auto"]
TABLES = {
    # a modelled column beside all-NULL columns of several types
    "with_nulls": "CREATE TABLE with_nulls AS SELECT i % 7 AS a, "
    "CASE WHEN i % 3 = 0 THEN 'x' ELSE 'y' END AS b, NULL::INTEGER AS n_int, "
    "NULL::VARCHAR AS n_text, NULL::DATE AS n_date FROM range(200) t(i)",
    "one_row": "CREATE TABLE one_row AS SELECT 3 AS a, 'x' AS b, 2.5::DOUBLE AS c, "
    "DATE '2020-01-02' AS d",
    "constants": "CREATE TABLE constants AS SELECT 3 AS a, 'k' AS b, DATE '2020-01-02' AS d, "
    "true AS flag FROM range(50)",
    "with_constants": "CREATE TABLE with_constants AS SELECT i % 7 AS a, 'k' AS const_col, "
    "5 AS const_int FROM range(200) t(i)",
}


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    session = duck_synth.connect(str(tmp_path_factory.mktemp("edges") / "edges.duckdb"))
    for sql in TABLES.values():
        session.sql(sql)
    yield session
    session.close()


def types_of(s, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in s.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def trained(s, table: str, method: str) -> str:
    name = f"{table}_{method}"
    s.sql(f"FROM train('{name}', '{table}', method => '{method}', epochs => 2, seed => 1)")
    return name


@pytest.mark.parametrize("max_time", ["0", "-5", "0.0"])
def test_max_time_of_zero_or_less_is_refused(s, refused, max_time):
    refused(
        s,
        f"FROM train('never', 'with_nulls', max_time => {max_time})",
        "^train\\(\\): max_time must be more than 0 seconds$",
    )
    assert s.sql("SELECT count(*) FROM synth.models WHERE name = 'never'").fetchone()[0] == 0


@pytest.mark.parametrize("method", METHODS)
def test_all_null_columns_train_and_stay_null_of_their_type(s, method):
    name = trained(s, "with_nulls", method)
    # the filter sends batches through DuckDB and back: the NULL columns must keep their type
    generated = f"(SELECT * FROM generate('{name}', target => 40, seed => 2) WHERE a >= 2)"
    assert types_of(s, generated) == types_of(s, "with_nulls")
    rows, nulls, low = s.sql(
        "SELECT count(*), count(*) FILTER (WHERE n_int IS NULL AND n_text IS NULL "
        f"AND n_date IS NULL), min(a) FROM {generated}"
    ).fetchone()
    assert rows == nulls == 40 and low >= 2


@pytest.mark.parametrize("method", METHODS)
def test_a_one_row_table_trains_and_generates_rows_of_its_shape(s, method):
    """One row is below every protection threshold, so its values are withheld (NULL) rather
    than copied; the rows keep the table's columns and types."""
    name = trained(s, "one_row", method)
    generated = f"generate('{name}', target => 5, seed => 2)"
    assert types_of(s, generated) == types_of(s, "one_row")
    real = s.sql("FROM one_row").fetchone()
    for row in s.sql(f"FROM {generated}").fetchall():
        assert all(v is None or v == r for v, r in zip(row, real, strict=True))
    assert s.sql(f"SELECT training_rows FROM synth.models WHERE name = '{name}'").fetchone() == (1,)


@pytest.mark.parametrize("method", METHODS)
def test_a_table_of_constants_trains_and_generates_the_constants(s, method):
    name = trained(s, "constants", method)
    generated = f"generate('{name}', target => 30, seed => 2)"
    assert types_of(s, generated) == types_of(s, "constants")
    assert (
        s.sql(f"SELECT DISTINCT * FROM {generated}").fetchall()
        == s.sql("SELECT DISTINCT * FROM constants").fetchall()
    )


@pytest.fixture(scope="module")
def constants_model(s) -> str:
    """A model of a varying column beside a constant string and a constant integer."""
    s.sql("FROM train('with_constants', 'with_constants', epochs => 2, seed => 1)")
    return "with_constants"


@pytest.mark.parametrize(
    "where", ["const_col = 'k'", "const_int = 5", "const_col IN ('k', 'z') AND a > 3"]
)
def test_a_filter_on_a_constant_column_it_satisfies_returns_the_target(s, constants_model, where):
    rows = s.sql(
        f"SELECT * FROM generate('{constants_model}', target => 10, seed => 3) WHERE {where}"
    ).df()
    assert len(rows) == 10
    assert (rows.const_col == "k").all() and (rows.const_int == 5).all()


@pytest.mark.parametrize(
    "where, column",
    [("const_col = 'z'", "const_col"), ("const_int IN (1, 2)", "const_int")],
)
def test_a_filter_on_a_constant_column_it_never_has_is_refused(
    s, constants_model, refused, where, column
):
    refused(
        s,
        f"SELECT * FROM generate('{constants_model}', target => 10) WHERE {where}",
        f"found 0 rows: no value of column '{column}' the model can generate satisfies",
    )


def test_a_training_whose_result_cannot_be_written_adds_no_model(s, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pyarrow.parquet, "write_table", disk_full)
    with pytest.raises(SynthError, match="No space left on device") as raised:
        s.sql("FROM train('no_space', 'with_nulls', epochs => 2, seed => 1)")
    assert "\n" not in str(raised.value)
    assert s.sql("SELECT count(*) FROM synth.models WHERE name = 'no_space'").fetchone()[0] == 0
    status, error = s.sql(
        "SELECT status, error FROM synth.runs WHERE model = 'no_space'"
    ).fetchone()
    assert status == "failed" and "No space left on device" in error
    monkeypatch.undo()
    summary = s.sql("FROM train('no_space', 'with_nulls', epochs => 2, seed => 1)").df()
    assert s.sql("SELECT version FROM synth.models WHERE name = 'no_space'").fetchone() == (
        summary.version[0],
    )
