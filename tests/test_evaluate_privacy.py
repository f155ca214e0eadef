"""Privacy metrics and attacks on real data: a copy of train, a real holdout split, and pure
noise."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import noise

from duck_synth.errors import SynthError
from duck_synth.evaluate.privacy import privacy_metrics

DIAMONDS = Path(__file__).resolve().parent.parent / "examples" / "data" / "diamonds.parquet"
SAMPLE = 2_000

# diamonds in 50 seeded parts: train 40%, holdout 10%, a second real split 10% as "synthetic"
TRAIN = "SELECT * EXCLUDE part FROM diamonds WHERE part < 20"
HOLDOUT = "SELECT * EXCLUDE part FROM diamonds WHERE part BETWEEN 20 AND 24"
SPLIT = "SELECT * EXCLUDE part FROM diamonds WHERE part BETWEEN 25 AND 29"


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE diamonds AS SELECT *, hash(row_number() OVER (), 11) % 50 AS part "
        f"FROM '{DIAMONDS}'"
    )
    con.register("noise_frame", noise(con.execute(TRAIN).df(), rows=5_000, seed=3))
    con.execute("CREATE TABLE noise AS FROM noise_frame")
    yield con
    con.close()


def metrics(con, synthetic: str, **options) -> dict[str, dict]:
    options = {"columns": None, "sample": SAMPLE, "seed": 0} | options
    rows = privacy_metrics(con, TRAIN, synthetic, HOLDOUT, **options)
    for row in rows:
        assert set(row) == {"metric", "columns", "value", "detail"}
        assert row["columns"] == options.get("sensitive", "") or row["columns"] == ""
        assert isinstance(row["value"], float)
        json.dumps(row["detail"], allow_nan=False)
    return {row["metric"]: row for row in rows}


def test_copy_of_train_is_flagged(con):
    found = metrics(con, TRAIN)
    assert found["exact_copy_rate"]["value"] == 1.0
    assert found["exact_copy_rate_holdout"]["value"] < 0.02
    assert found["dcr_share"]["value"] > 0.95
    assert found["nndr_mean"]["value"] < 0.1 < found["nndr_mean_holdout"]["value"]


def test_real_holdout_split_looks_like_unseen_data(con):
    found = metrics(con, SPLIT)
    baseline = found["exact_copy_rate_holdout"]["value"]
    assert abs(found["exact_copy_rate"]["value"] - baseline) < 0.01
    assert 0.45 < found["dcr_share"]["value"] < 0.56
    assert abs(found["nndr_mean"]["value"] - found["nndr_mean_holdout"]["value"]) < 0.05


def test_noise_is_not_nearer_to_train(con):
    found = metrics(con, "FROM noise")
    assert found["exact_copy_rate"]["value"] == 0.0
    assert found["dcr_share"]["value"] < 0.56
    # noise sits far from every real row
    detail = found["dcr_share"]["detail"]
    assert detail["dcr_synthetic_train"]["median"] > 2 * detail["dcr_holdout_train"]["median"]


def test_membership_attack_finds_a_copy_of_train_and_not_unseen_rows(con):
    copied = metrics(con, TRAIN)["membership_auc"]
    assert copied["value"] > 0.95
    assert copied["detail"]["tpr_at_fpr_0.01"] > 0.9
    assert copied["detail"]["members"] == copied["detail"]["non_members"] == SAMPLE
    # real rows the model never saw, or noise: nothing tells members from non-members
    for synthetic in (SPLIT, "FROM noise"):
        assert abs(metrics(con, synthetic)["membership_auc"]["value"] - 0.5) < 0.05


@pytest.mark.parametrize("sensitive", ["price", "cut"])
def test_attribute_inference_reads_a_copied_column_and_measures_against_holdout(con, sensitive):
    copied = metrics(con, TRAIN, sensitive=sensitive)
    members, holdout = (
        copied["attribute_inference"]["value"],
        copied["attribute_inference_holdout"]["value"],
    )
    assert members > 0.99  # every record's nearest synthetic row is the record itself
    assert copied["attribute_inference_risk"]["value"] == pytest.approx(members - holdout)
    assert copied["attribute_inference_risk"]["value"] > 0.1
    assert sensitive not in copied["attribute_inference"]["detail"]["known_columns"]
    unseen = metrics(con, SPLIT, sensitive=sensitive)
    assert abs(unseen["attribute_inference_risk"]["value"]) < 0.05


def test_columns_and_samples(con):
    found = metrics(con, SPLIT, columns=["cut", "price"], sample=500)
    assert found["dcr_share"]["detail"]["samples"]["train"] == 500
    # two columns: many real rows repeat each other exactly
    assert found["exact_copy_rate_holdout"]["value"] > 0.1


def test_seeded_and_deterministic(con):
    first, again = metrics(con, SPLIT, seed=5), metrics(con, SPLIT, seed=5)
    assert first == again
    other = metrics(con, SPLIT, seed=6)
    assert other["dcr_share"]["detail"] != first["dcr_share"]["detail"]


def test_nulls_count_as_values(con):
    with_nulls = (
        f"SELECT * REPLACE (CASE WHEN price % 3 = 0 THEN NULL ELSE cut END AS cut) FROM ({TRAIN})"
    )
    found = privacy_metrics(con, with_nulls, with_nulls, HOLDOUT, None, SAMPLE, 0)
    assert found[0]["metric"] == "exact_copy_rate" and found[0]["value"] == 1.0


@pytest.mark.parametrize(
    ("synthetic", "options", "message"),
    [
        (SPLIT, {"columns": ["nope"]}, "unknown column 'nope'"),
        (SPLIT, {"sample": 0}, "sample must be a positive"),
        (SPLIT, {"sensitive": "nope"}, "sensitive column 'nope' is not an evaluated column"),
        (SPLIT, {"sensitive": "cut", "columns": ["cut"]}, "needs columns besides the sensitive"),
        (f"{SPLIT} AND false", {}, "synthetic data is empty"),
        ("SELECT carat FROM diamonds", {}, "synthetic data has no column 'cut'"),
        ("FROM no_such_table", {}, "no_such_table"),
    ],
)
def test_errors_are_one_line(con, synthetic, options, message):
    with pytest.raises(SynthError, match=message) as raised:
        metrics(con, synthetic, **options)
    assert "\n" not in str(raised.value)


def test_holdout_missing_a_column(con):
    with pytest.raises(SynthError, match="holdout data has no column 'price'") as raised:
        privacy_metrics(
            con, TRAIN, SPLIT, "SELECT carat, cut FROM diamonds", ["cut", "price"], 100, 0
        )
    assert "\n" not in str(raised.value)
