"""The catalog: versions, drop, export/import, reopening, and all-or-nothing training."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import DIAMONDS_TABLE

import duck_synth
from duck_synth import SynthError

SMALL = "nrows => 3000, epochs => 2, max_time => 600, seed => 1"


@pytest.fixture
def fresh(tmp_path):
    s = duck_synth.connect(str(tmp_path / "fresh.duckdb"))
    s.sql(DIAMONDS_TABLE)
    yield s
    s.close()


def test_a_plain_database_gets_the_catalog(tmp_path):
    path = tmp_path / "plain.duckdb"
    plain = duckdb.connect(str(path))
    plain.execute("CREATE TABLE t AS SELECT 1 AS x")
    plain.close()
    s = duck_synth.connect(str(path))
    tables = {
        r[0]
        for r in s.sql(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'synth'"
        ).fetchall()
    }
    assert tables == {
        "meta",
        "models",
        "runs",
        "generations",
        "batch_runs",
        "workflows",
        "checkpoints",
        "pipelines",
        "deployments",
        "inference_logs",
        "user_models",
    }
    assert s.sql("SELECT value FROM synth.meta WHERE key = 'schema_version'").fetchone() == ("5",)
    assert s.sql("FROM t").fetchall() == [(1,)]


def test_an_old_catalog_is_migrated_keeping_its_log(tmp_path):
    from duck_synth.catalog import migrations

    path = tmp_path / "v1.duckdb"
    old = duckdb.connect(str(path))
    old.execute(dict(migrations())[1])
    old.execute("INSERT INTO synth.meta VALUES ('schema_version', '1')")
    old.execute("INSERT INTO synth.generations VALUES (1, 'm', 1, '{}', 7, 200, 100, 0.5, now())")
    old.close()
    s = duck_synth.connect(str(path))
    assert s.sql("SELECT value FROM synth.meta WHERE key = 'schema_version'").fetchone() == ("5",)
    row = s.sql("SELECT rows_drawn, rows_passed, rows_returned, acceptance FROM generations()")
    assert row.fetchall() == [(200, None, 100, 0.5)]
    s.close()


def test_every_training_is_a_new_version_and_reopening_finds_them(fresh, tmp_path):
    first = fresh.sql(f"FROM train('m', 'diamonds', {SMALL})").df()
    second = fresh.sql(f"FROM train('m', 'SELECT carat, cut, price FROM diamonds', {SMALL})").df()
    assert (first.version[0], second.version[0]) == (1, 2)
    fresh.close()
    again = duck_synth.connect(str(tmp_path / "fresh.duckdb"))
    assert again.sql("SELECT name, version FROM models()").fetchall() == [("m", 1), ("m", 2)]
    assert again.sql("FROM generate('m', target => 3)").columns == ["carat", "cut", "price"]
    assert len(again.sql("FROM generate('m@1', target => 3)").columns) == 10
    again.close()


def test_drop_a_version_then_the_model_and_versions_are_never_reused(fresh):
    fresh.sql(f"FROM train('m', 'diamonds', {SMALL})")
    fresh.sql(f"FROM train('m', 'diamonds', {SMALL})")
    assert fresh.sql("FROM drop_model('m', version => 2)").fetchall() == [("m", 2, True)]
    assert fresh.sql("SELECT version FROM models()").fetchall() == [(1,)]
    assert fresh.sql(f"FROM train('m', 'diamonds', {SMALL})").df().version[0] == 3
    fresh.sql("FROM drop_model('m')")
    assert fresh.sql("FROM models()").fetchall() == []
    with pytest.raises(SynthError, match="unknown model 'm'"):
        fresh.sql("FROM drop_model('m')")


def test_export_import_round_trip_shares_no_real_row(fresh, tmp_path):
    fresh.sql(f"FROM train('m', 'diamonds', {SMALL})")
    path = tmp_path / "m.safetensors"
    fresh.sql(f"FROM export_model('m', '{path}')")
    data = path.read_bytes()
    assert b"pickle" not in data and b"__reduce__" not in data
    other = duck_synth.connect(str(tmp_path / "other.duckdb"))
    assert other.sql(f"FROM import_model('{path}', name => 'copy')").fetchall() == [
        ("copy", 1, str(path))
    ]
    a = fresh.sql("FROM generate('m', target => 200, seed => 3)").arrow()
    b = other.sql("FROM generate('copy', target => 200, seed => 3)").arrow()
    assert a.equals(b)
    other.close()


def test_import_refuses_a_file_that_is_not_a_model(tmp_path, fresh):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a model")
    with pytest.raises(SynthError, match="not a duck_synth model file"):
        fresh.sql(f"FROM import_model('{bogus}')")


def test_describe_model_shows_protected_statistics(fresh):
    fresh.sql(f"FROM train('m', 'diamonds', {SMALL})")
    rows = fresh.sql("SELECT \"column\", kind, type, summary FROM describe_model('m')").fetchall()
    assert [r[0] for r in rows] == [
        "carat",
        "cut",
        "color",
        "clarity",
        "depth",
        "table",
        "price",
        "x",
        "y",
        "z",
    ]
    assert rows[1][1:3] == ("categorical", "ENUM('Fair', 'Good', 'Very Good', 'Premium', 'Ideal')")
    real_max = fresh.sql("SELECT max(price) FROM diamonds").fetchone()[0]
    assert json.loads(rows[6][3])["high"] < real_max


def test_train_summary_and_run_are_recorded(fresh):
    summary = fresh.train("m", "diamonds", nrows=2000, epochs=3, max_time=600, seed=5)
    assert (
        summary["rows"] == 2000 and summary["epochs"] <= 3 and summary["method"] == "autoregressive"
    )
    run = fresh.sql(
        "SELECT status, progress, epochs, json_array_length(losses) FROM synth.runs"
    ).fetchone()
    assert run[0] == "succeeded" and run[1] == 1.0 and run[2] == run[3] == summary["epochs"]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM train('m', 'no_such_table')", "unknown table or view 'no_such_table'"),
        ("FROM train('m', 'diamonds', columns => ['carat', 'nope'])", "unknown column 'nope'"),
        ("FROM train('m', 'diamonds', exclude => ['nope'])", "unknown column 'nope'"),
        ("FROM train('m', 'diamonds', epochs => 'ten')", "epochs must be an integer"),
        ("FROM train('m', 'diamonds', method => 'magic')", "unknown method 'magic'"),
        ("FROM train('m', 'diamonds', method => 'transformer')", "not attention-based"),
        (
            "FROM train('m', 'diamonds', encoding => {'cut': 'numeric'})",
            "cannot be encoded as numeric",
        ),
        ("FROM train('m', 'diamonds', speed => 3)", "unknown argument 'speed'"),
        ("FROM train('m', 'SELECT * FROM diamonds WHERE price < 0')", "is empty"),
        (
            "FROM train('m', 'SELECT [1, 2] AS tags, carat FROM diamonds')",
            "column 'tags': type INTEGER\\[\\] cannot be modelled",
        ),
        ("FROM train('bad name!', 'diamonds')", "model name must be"),
    ],
)
def test_bad_train_calls_fail_on_one_line_and_change_nothing(fresh, refused, sql, message):
    refused(fresh, sql, message)


def test_a_failing_training_is_recorded_and_adds_no_model(fresh, monkeypatch):
    from duck_synth.models.autoregressive import AutoregressiveModel

    def broken_fit(self, tokens, config, progress):
        progress(
            {"epoch": 1, "val_loss": 1.0, "train_loss": 1.0, "elapsed": 0.1, "done": 1.0}
            | {"epoch_done": True}
        )
        raise RuntimeError("out of memory on purpose")

    monkeypatch.setattr(AutoregressiveModel, "fit", broken_fit)
    with pytest.raises(SynthError, match="out of memory on purpose"):
        fresh.sql("FROM train('m', 'diamonds', nrows => 500, epochs => 1)")
    assert fresh.sql("FROM models()").fetchall() == []
    assert fresh.sql("SELECT status, error FROM synth.runs").fetchall() == [
        ("failed", "out of memory on purpose")
    ]


def test_a_cancelled_training_is_recorded_and_adds_no_model(fresh):
    from duck_synth import caller

    def cancel_soon(self, tokens, config, progress):
        caller.current().cancel()  # the statement's call, as Session.interrupt() cancels it
        progress({"epoch": 1, "step": 1, "steps": 1, "elapsed": 0.0, "done": 0.1})

    from duck_synth.models.autoregressive import AutoregressiveModel

    original = AutoregressiveModel.fit
    AutoregressiveModel.fit = cancel_soon
    try:
        with pytest.raises(SynthError, match="cancelled; no model was added"):
            fresh.sql("FROM train('m', 'diamonds', nrows => 500, epochs => 1)")
    finally:
        AutoregressiveModel.fit = original
    assert fresh.sql("FROM models()").fetchall() == []
    assert fresh.sql("SELECT status FROM synth.runs").fetchall() == [("cancelled",)]


def test_generation_log_records_arguments_seed_and_counts(fresh):
    fresh.sql(f"FROM train('m', 'diamonds', {SMALL})")
    fresh.sql("SELECT * FROM generate('m', target => 25, seed => 9) WHERE cut = 'Good'")
    row = fresh.sql(
        "SELECT model, version, arguments, seed, rows_drawn, rows_returned FROM synth.generations"
    ).fetchone()
    assert row[0:2] == ("m", 1) and row[3:] == (9, 25, 25)
    assert json.loads(row[2])["filter"] == "cut = 'Good'"
