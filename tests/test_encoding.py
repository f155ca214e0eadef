"""Encoders: round trips, precision, NULL as a state, value protection, conditions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from duck_synth.encoding import Protection, analyze, from_json
from duck_synth.encoding.categorical import RARE_VALUE
from duck_synth.errors import SynthError

RNG = np.random.default_rng(0)


def fit(values: list, duck_type: str, kind: str | None = None, k: int = 5):
    table = pa.table({"c": pa.array(values)})
    overrides = {"c": kind} if kind else {}
    [encoder] = analyze(table, {"c": duck_type}, overrides, Protection(k, np.random.default_rng(1)))
    return from_json(encoder.to_json())  # everything must survive JSON


def roundtrip(encoder, values: list) -> list:
    tokens = encoder.encode(pa.array(values))
    return encoder.decode(tokens, np.random.default_rng(0)).to_pylist()


def test_categorical_keeps_frequent_values_and_hides_rare_ones():
    values = ["a"] * 50 + ["b"] * 20 + ["secret"] * 2 + [None] * 5
    encoder = fit(values, "VARCHAR")
    assert encoder.categories == ["a", "b"]
    assert roundtrip(encoder, ["a", "b", "secret", None]) == ["a", "b", RARE_VALUE, None]
    assert "secret" not in str(encoder.to_json())


def test_enum_never_samples_the_rare_token_nor_an_unseen_null():
    encoder = fit(["x"] * 30 + ["y"] * 30 + ["z"], "ENUM('x', 'y', 'z')")
    assert encoder.sampling_mask().tolist() == [False, False, True, True]
    with_nulls = fit(["x"] * 30 + ["y"] * 30 + [None], "ENUM('x', 'y', 'z')")
    assert with_nulls.sampling_mask().tolist() == [True, False, True, True]


def test_integers_stay_integers_and_extremes_are_clipped():
    values = list(range(1000)) + [10**9]
    encoder = fit(values, "INTEGER")
    out = encoder.decode(np.arange(encoder.n_tokens), RNG).to_pylist()
    present = [v for v in out if v is not None]
    assert all(isinstance(v, int) for v in present)
    assert max(present) <= 996 and min(present) >= 3  # the k-th extremes, not the real ones
    assert 10**9 not in present


def test_decimals_keep_their_scale():
    values = [round(v, 2) for v in np.random.default_rng(1).uniform(0, 100, 5000)]
    encoder = fit(values, "DECIMAL(9,2)")
    decoded = np.array(
        encoder.decode(np.repeat(np.arange(1, encoder.n_tokens), 20), RNG).to_pylist()
    )
    assert np.allclose(decoded, np.round(decoded, 2))


def test_float_precision_is_inferred_from_the_data():
    values = [round(v, 1) for v in np.random.default_rng(2).normal(60, 2, 5000)]
    encoder = fit(values, "DOUBLE")
    assert encoder.stats["decimals"] == 1


def test_frequent_numeric_values_are_exact_points():
    values = [0.0] * 3000 + list(np.random.default_rng(3).exponential(10, 3000))
    encoder = fit(values, "DOUBLE")
    assert 0.0 in encoder.stats["points"]
    decoded = np.array(roundtrip(encoder, [0.0] * 100))
    assert (decoded == 0.0).all()


def test_numeric_quantiles_reproduce_the_marginal():
    values = list(np.random.default_rng(4).lognormal(8, 1, 20000).round())
    encoder = fit(values, "BIGINT")
    decoded = np.array(roundtrip(encoder, values), dtype=float)
    assert abs(np.median(decoded) - np.median(values)) / np.median(values) < 0.03


def test_null_is_a_token_of_every_kind():
    for values, duck_type in (
        (["a"] * 10 + [None], "VARCHAR"),
        ([1.5, 2.5] * 10 + [None], "DOUBLE"),
        ([dt.date(2020, 1, d) for d in range(1, 29)] + [None], "DATE"),
    ):
        encoder = fit(values, duck_type)
        assert encoder.encode(pa.array([None], type=pa.array(values).type))[0] == 0


def test_dates_timestamps_and_times_round_trip_in_range():
    dates = [
        dt.date(2020, 1, 1) + dt.timedelta(days=int(d))
        for d in np.random.default_rng(5).integers(0, 1000, 500)
    ]
    encoder = fit(dates, "DATE")
    out = [d for d in roundtrip(encoder, dates) if d is not None]
    assert (
        all(isinstance(d, dt.date) for d in out)
        and min(out) >= min(dates)
        and max(out) <= max(dates)
    )
    stamps = [
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=int(m))
        for m in range(0, 50000, 97)
    ]
    ts = fit(stamps, "TIMESTAMP WITH TIME ZONE")
    assert ts.arrow_type() == pa.timestamp("us", tz="UTC")
    assert roundtrip(ts, stamps[:3])[0].tzinfo is not None
    times = [dt.time(h, m) for h in range(24) for m in range(0, 60, 7)]
    assert all(isinstance(t, dt.time) for t in roundtrip(fit(times, "TIME"), times[:5]))


def test_unique_keys_are_regenerated_never_copied():
    ids = [f"cust-{i:06d}" for i in range(500)]
    encoder = fit(ids, "VARCHAR")
    assert encoder.kind == "key"
    fresh = encoder.decode(np.zeros(500), np.random.default_rng(0)).to_pylist()
    assert not set(fresh) & set(ids) and len(set(fresh)) == 500
    assert fit(list(range(100, 600)), "BIGINT").kind == "key"


def test_constant_column_is_emitted_as_is():
    encoder = fit(["same"] * 50, "VARCHAR")
    assert encoder.kind == "constant" and encoder.n_tokens == 0
    assert encoder.decode(np.zeros(3), RNG).to_pylist() == ["same"] * 3


def test_conditions_on_a_constant_compare_values_in_its_type():
    def allowed(encoder, op, value):
        restriction = encoder.restrict(op, value)
        return None if restriction is None else restriction.allowed.tolist()

    number = fit([5] * 50, "INTEGER")
    assert allowed(number, "eq", 5) == allowed(number, "eq", "5") == [True]
    assert allowed(number, "eq", 6) == allowed(number, "in", [1, 2]) == [False]
    assert allowed(number, "ne", 5) == [False] and allowed(number, "ne", 6) == [True]
    assert allowed(number, "eq", "five") is None  # only the residual filter can tell
    day = fit([dt.date(2020, 1, 2)] * 50, "DATE")
    assert allowed(day, "eq", "2020-01-02") == [True]
    assert allowed(day, "eq", "2021-01-02") == [False]
    word = fit(["k"] * 50, "VARCHAR")
    assert allowed(word, "eq", "k") == allowed(word, "is_not_null", None) == [True]
    assert allowed(word, "eq", 5) is None
    empty = fit([None] * 50, "INTEGER")
    assert allowed(empty, "eq", 1) == allowed(empty, "ne", 1) == [False]
    assert allowed(empty, "is_null", None) == [True]
    assert empty.decode(np.zeros(2), RNG).to_pylist() == [None, None]


def test_free_text_is_refused_by_name():
    text = [f"a long review number {i} " + "lorem ipsum " * 12 for i in range(100)] + ["x"]
    with pytest.raises(SynthError, match="column 'c' looks like free text"):
        fit(text, "VARCHAR")


def test_override_to_an_impossible_kind_is_refused():
    with pytest.raises(SynthError, match="cannot be encoded as numeric"):
        fit(["a", "b"] * 10, "VARCHAR", kind="numeric")


def test_range_restriction_selects_bins_and_bounds_decoding():
    values = list(np.random.default_rng(6).uniform(0, 1000, 10000).round())
    encoder = fit(values, "INTEGER")
    restriction = encoder.restrict("gt", 700)
    allowed = np.flatnonzero(restriction.allowed)
    decoded = np.array(encoder.decode(np.repeat(allowed, 50), RNG, restriction).to_pylist())
    assert decoded.min() >= 701 and restriction.low == 701


def test_equality_on_a_category_fixes_the_value():
    encoder = fit(["a"] * 10 + ["b"] * 10, "VARCHAR")
    restriction = encoder.restrict("eq", "b")
    assert restriction.has_fixed and restriction.allowed.sum() == 1
