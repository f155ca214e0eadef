"""method => 'privbayes': a Bayesian network learnt and filled in with differential privacy,
with Hazy's parameters, conditional generation and WHERE pushdown."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DIAMONDS_TABLE

import duck_synth
from duck_synth.models.privbayes import PrivBayesModel, _fitting_levels


@pytest.fixture(scope="module")
def s(tmp_path_factory) -> duck_synth.Session:
    s = duck_synth.connect(str(tmp_path_factory.mktemp("privbayes") / "pb.duckdb"))
    s.sql(DIAMONDS_TABLE)
    s.sql("FROM train('pb5', 'diamonds', method => 'privbayes', epsilon => 5.0)")
    yield s
    s.close()


def network(s: duck_synth.Session, model: str) -> list:
    return json.loads(
        s.sql(f"SELECT metrics FROM synth.models WHERE name = '{model}'").fetchone()[0]
    )["network"]


def test_train_reports_the_whole_epsilon_and_is_fast(s):
    row = s.sql(
        "SELECT method, epsilon, delta, metrics->>'$.seconds' FROM models() WHERE name = 'pb5'"
    ).fetchone()
    assert row[:3] == ("privbayes", pytest.approx(5.0), pytest.approx(1e-5))
    assert float(row[3]) < 10  # seconds on CPU for 54k rows
    parents = {column: p for column, p, _ in network(s, "pb5")}
    assert len(parents) == 10 and all(len(p) <= 3 for p in parents.values())


def test_quality_at_epsilon_5_is_close_to_the_data(s):
    s.sql("CREATE OR REPLACE TABLE pb5_rows AS FROM generate('pb5', target => 20000, seed => 1)")
    scores = dict(
        s.sql(
            "SELECT metric, value FROM evaluate('diamonds', 'pb5_rows') "
            "WHERE metric IN ('overall', 'shapes', 'pair_trends')"
        ).fetchall()
    )
    assert scores["overall"] > 0.85, scores
    # the strongest link of the data survives: carat and price move together
    r = s.sql("SELECT corr(carat, price) FROM pb5_rows").fetchone()[0]
    assert r > 0.7


def test_where_is_pushed_down_and_target_rows_all_match(s):
    rows = s.sql(
        "SELECT cut, price FROM generate('pb5', target => 400, seed => 3) "
        "WHERE cut = 'Ideal' AND price > 3000"
    ).fetchall()
    assert len(rows) == 400
    assert all(cut == "Ideal" and price > 3000 for cut, price in rows)
    drawn, returned = s.sql(
        "SELECT rows_drawn, rows_returned FROM generations() ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    assert drawn == returned == 400


def test_hazy_parameters_shape_the_network(s):
    s.sql(
        "FROM train('pb_small', 'diamonds', method => 'privbayes', epsilon => 2.0, "
        "n_parents => 1, n_bins => 8, max_cat => 4, bin_strategy => 'uniform', "
        "sample_parents => 2, seed => 1)"
    )
    assert all(len(p) <= 1 for _, p, _ in network(s, "pb_small"))
    distinct = s.sql(
        "SELECT count(DISTINCT carat), count(DISTINCT clarity) "
        "FROM generate('pb_small', target => 5000, seed => 1)"
    ).fetchone()
    assert distinct[1] <= 4 + 1  # max_cat kept categories (+ the placeholder for the rest)
    assert distinct[0] > 8  # values within the 8 bins are spread, not bin centres


def test_without_epsilon_it_is_deterministic_and_better(s):
    s.sql("FROM train('pb_exact', 'diamonds', method => 'privbayes', seed => 4)")
    first = s.sql("FROM generate('pb_exact', target => 300, seed => 9)").fetchall()
    assert first == s.sql("FROM generate('pb_exact', target => 300, seed => 9)").fetchall()
    assert s.sql("SELECT epsilon FROM models() WHERE name = 'pb_exact'").fetchone() == (None,)


def test_export_and_import_keep_the_tables(s, tmp_path):
    path = tmp_path / "pb5.safetensors"
    s.sql(f"FROM export_model('pb5', '{path}')")
    s.sql(f"FROM import_model('{path}', name => 'pb5_copy')")
    a = s.sql("FROM generate('pb5', target => 200, seed => 2)").fetchall()
    b = s.sql("FROM generate('pb5_copy', target => 200, seed => 2)").fetchall()
    assert a == b


@pytest.mark.parametrize(
    "sql, message",
    [
        (
            "FROM train('x', 'diamonds', method => 'privbayes', bin_strategy => 'kmeans')",
            r"bin_strategy must be 'quantile' or 'uniform', got 'kmeans'",
        ),
        ("FROM train('x', 'diamonds', method => 'privbayes', n_parents => 0)", r"n_parents"),
        ("FROM train('x', 'diamonds', method => 'privbayes', n_bins => 0)", r"n_bins"),
    ],
)
def test_bad_parameters_are_refused(s, refused, sql, message):
    refused(s, sql, message)


def test_parents_are_coarsened_to_fit_the_noise():
    assert _fitting_levels([100, 5], 60) == (12, 5)  # the small parent keeps its 5 values
    assert _fitting_levels([100, 100], 400) == (20, 20)
    assert _fitting_levels([100], 1.5) is None
    model = PrivBayesModel([40, 40, 3])
    tokens = np.random.default_rng(0).integers(0, [40, 40, 3], size=(2000, 3))
    tokens[:, 1] = tokens[:, 0]  # column 1 copies column 0
    model.fit(tokens, _config(), lambda _: None)
    for c, parents, levels in (
        (c, model.params["parents"][c], model.params["levels"][c]) for c in range(3)
    ):
        cells = np.prod(levels) * [40, 40, 3][c] if parents else 0
        assert cells <= 2000


def _config():
    from duck_synth.models.base import FitConfig

    return FitConfig(epochs=1, max_time=60.0, seed=0)
