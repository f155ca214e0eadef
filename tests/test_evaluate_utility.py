"""Utility (TSTR vs TRTR) on real data: a real split trains as well as train, noise does not."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import noise

from duck_synth.errors import SynthError
from duck_synth.evaluate.utility import utility_metrics

ROOT = Path(__file__).resolve().parent.parent
DIAMONDS = ROOT / "examples" / "data" / "diamonds.parquet"
SLID = ROOT / "examples" / "data" / "SLID.csv"


def split(table: str, train: int, holdout: int, synthetic: int) -> tuple[str, str, str]:
    """Disjoint seeded parts of a table (sizes in fiftieths): train, holdout, and another real
    part as 'synthetic'."""
    rows = f"SELECT * EXCLUDE part FROM {table} WHERE part"
    return (
        f"{rows} < {train}",
        f"{rows} >= {train} AND part < {train + holdout}",
        f"{rows} >= {train + holdout} AND part < {train + holdout + synthetic}",
    )


D_TRAIN, D_HOLDOUT, D_SPLIT = split("diamonds", 5, 5, 5)
S_TRAIN, S_HOLDOUT, S_SPLIT = split("slid", 20, 10, 20)


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    part = "hash(row_number() OVER (), 11) % 50 AS part"
    con.execute(f"CREATE TABLE diamonds AS SELECT *, {part} FROM '{DIAMONDS}'")
    # SLID: R's write.csv with NA for missing and an unnamed row-number column first
    con.execute(
        f"CREATE TABLE slid AS SELECT * EXCLUDE (column0), {part} "
        f"FROM read_csv('{SLID}', nullstr = 'NA')"
    )
    con.register("noise_frame", noise(con.execute(D_TRAIN).df(), rows=5_000, seed=3))
    con.execute("CREATE TABLE noise AS FROM noise_frame")
    yield con
    con.close()


def metrics(con, real, synthetic, holdout, target, columns=None, seed=0) -> dict[str, dict]:
    rows = utility_metrics(con, real, synthetic, holdout, target, columns, seed)
    for row in rows:
        assert set(row) == {"metric", "columns", "value", "detail"}
        assert row["columns"] == target and isinstance(row["value"], float)
        json.dumps(row["detail"], allow_nan=False)
    return {row["metric"]: row for row in rows}


@pytest.fixture(scope="module")
def diamonds_split(con):
    return metrics(con, D_TRAIN, D_SPLIT, D_HOLDOUT, "cut")


def test_classification_real_split_trains_as_well_as_train(diamonds_split):
    found = diamonds_split
    assert found["utility_ratio"]["detail"]["task"] == "classification"
    assert set(found) == {
        f"{side}_{m}" for side in ("tstr", "trtr") for m in ("accuracy", "macro_f1", "roc_auc")
    } | {"utility_ratio"}
    assert found["trtr_accuracy"]["value"] > 0.7
    assert found["trtr_roc_auc"]["value"] > 0.85
    for metric in ("accuracy", "macro_f1", "roc_auc"):
        tstr, trtr = found[f"tstr_{metric}"]["value"], found[f"trtr_{metric}"]["value"]
        assert abs(tstr - trtr) < 0.05, metric
    assert 0.9 < found["utility_ratio"]["value"] < 1.1


def test_noise_has_low_utility(con, diamonds_split):
    found = metrics(con, D_TRAIN, "FROM noise", D_HOLDOUT, "cut")
    assert found["trtr_macro_f1"]["value"] == diamonds_split["trtr_macro_f1"]["value"]
    assert found["utility_ratio"]["value"] < 0.5
    assert found["tstr_roc_auc"]["value"] < 0.65


def test_regression_real_split_trains_as_well_as_train(con):
    found = metrics(con, S_TRAIN, S_SPLIT, S_HOLDOUT, "wages")
    detail = found["utility_ratio"]["detail"]
    assert detail["task"] == "regression" and detail["primary"] == "r2"
    # rows with a NULL wage are left out
    assert detail["rows"]["real"] < con.execute(f"SELECT count(*) FROM ({S_TRAIN})").fetchone()[0]
    assert found["trtr_r2"]["value"] > 0.2
    assert abs(found["tstr_r2"]["value"] - found["trtr_r2"]["value"]) < 0.06
    assert 0.85 < found["utility_ratio"]["value"] < 1.15
    assert 0.9 < found["tstr_mae"]["detail"]["ratio"] < 1.1


def test_numeric_target_with_few_values_is_classification(con):
    found = metrics(con, S_TRAIN, S_SPLIT, S_HOLDOUT, "age", columns=["education", "sex"])
    assert found["utility_ratio"]["detail"]["task"] == "regression"
    binary = "SELECT *, (wages > 15)::INTEGER AS high FROM ({})"
    found = metrics(
        con, binary.format(S_TRAIN), binary.format(S_SPLIT), binary.format(S_HOLDOUT), "high",
        columns=["education", "age", "sex"],
    )  # fmt: skip
    assert found["utility_ratio"]["detail"]["task"] == "classification"
    assert found["trtr_roc_auc"]["value"] > 0.7
    assert found["utility_ratio"]["detail"]["features"] == ["education", "age", "sex"]


def test_seeded_and_deterministic(con):
    first = metrics(con, S_TRAIN, S_SPLIT, S_HOLDOUT, "wages", seed=4)
    assert metrics(con, S_TRAIN, S_SPLIT, S_HOLDOUT, "wages", seed=4) == first


def test_feature_null_in_every_synthetic_row_is_ignored_not_an_error(con):
    """A generator that never produces a value for a column still gets a utility score."""
    blank = "SELECT * REPLACE (NULL::DOUBLE AS education, NULL::VARCHAR AS sex) FROM ({})"
    found = metrics(con, S_TRAIN, blank.format(S_SPLIT), S_HOLDOUT, "wages")
    real_only = metrics(con, S_TRAIN, S_SPLIT, S_HOLDOUT, "wages", columns=["age", "language"])
    # education carries most of what predicts wages: without it TSTR falls toward age alone
    assert found["tstr_r2"]["value"] < found["trtr_r2"]["value"] - 0.05
    assert abs(found["tstr_r2"]["value"] - real_only["tstr_r2"]["value"]) < 0.05


@pytest.mark.parametrize(
    ("real", "synthetic", "target", "columns", "message"),
    [
        (D_TRAIN, D_SPLIT, "nope", None, "unknown target column 'nope'"),
        (D_TRAIN, D_SPLIT, "cut", ["nope"], "unknown column 'nope'"),
        (D_TRAIN, D_SPLIT, "cut", ["cut"], "no feature column"),
        (
            f"SELECT * FROM ({D_TRAIN}) WHERE cut = 'Ideal'",
            D_SPLIT,
            "cut",
            None,
            "target 'cut' has a single class",
        ),
        (
            D_TRAIN,
            f"SELECT * FROM ({D_SPLIT}) WHERE false",
            "cut",
            None,
            "synthetic data has no row",
        ),
        (D_TRAIN, "SELECT carat, cut FROM diamonds", "cut", None, "no column 'color'"),
    ],
)
def test_errors_are_one_line(con, real, synthetic, target, columns, message):
    with pytest.raises(SynthError, match=message) as raised:
        utility_metrics(con, real, synthetic, D_HOLDOUT, target, columns, 0)
    assert "\n" not in str(raised.value)
