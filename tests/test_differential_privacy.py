"""Differential privacy: train(..., epsilon => ...) spends at most its budget, reports what it
spent as Opacus' accountant counts it, releases no rare value, and resists membership inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DIAMONDS_TABLE, SLID_TABLE
from opacus.accountants import RDPAccountant
from torch.func import functional_call, grad, vmap

import duck_synth
from duck_synth.models.autoregressive import AutoregressiveModel
from duck_synth.privacy import spent_epsilon


@pytest.fixture(scope="module")
def s(tmp_path_factory) -> duck_synth.Session:
    """diamonds, a 3,000-row slice of it, and a table with one rare value and one outlier."""
    s = duck_synth.connect(str(tmp_path_factory.mktemp("dp") / "dp.duckdb"))
    s.sql(DIAMONDS_TABLE)
    s.sql("CREATE TABLE small AS FROM diamonds WHERE hash(rowid, 3) % 18 = 0")
    s.sql(
        "CREATE TABLE people AS SELECT i AS id, "
        "CASE WHEN i = 77 THEN 'Zebulon Quixote' WHEN i % 3 = 0 THEN 'Ann' ELSE 'Bo' END AS name, "
        "CASE WHEN i = 78 THEN 987654321.5 ELSE (i % 100) + 0.25 END AS income "
        "FROM range(4000) t(i)"
    )
    yield s
    s.close()


def privacy(s: duck_synth.Session, model: str) -> dict:
    metrics = s.sql(f"SELECT metrics FROM synth.models WHERE name = '{model}'").fetchone()[0]
    return json.loads(metrics)["privacy"]


def test_ghost_clipping_equals_clipping_per_row_gradients():
    """The clipped sum computed from gradient norms alone equals per-row gradients (torch.func)
    clipped one by one and summed, with and without context columns."""
    torch.manual_seed(0)
    sizes = [3, 5, 8, 6]
    positions = [None, None, np.linspace(-1, 1, 8), np.r_[np.linspace(-1, 1, 5), np.nan]]
    for context in (0, 1):
        model = AutoregressiveModel(sizes, positions=positions, context=context, dropout=0.0)
        net = model.net
        for p in net.parameters():  # directions and shifts start at zero: make every term count
            torch.nn.init.normal_(p, std=0.5)
        generator = torch.Generator().manual_seed(1)
        rows = torch.stack([torch.randint(0, v, (40,), generator=generator) for v in sizes], 1)
        known = model.known_masks(40, generator)
        params = {k: v.detach() for k, v in net.named_parameters()}
        buffers = dict(net.named_buffers())

        def row_loss(params, row, known_cells, net=net, buffers=buffers):
            return functional_call(net, (params, buffers), (row[None], known_cells[None]))

        per_row = vmap(grad(row_loss), in_dims=(None, 0, 0))(params, rows, known)
        norms = sum(g.reshape(40, -1).square().sum(1) for g in per_row.values()).sqrt()
        max_norm = float(norms.median())  # half the rows are clipped
        found = net.clipped_gradients(rows, known, max_norm)
        torch.testing.assert_close(found, norms, rtol=1e-4, atol=1e-5)
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for name, p in net.named_parameters():
            g = per_row[name]
            expected = (g * scale.view(-1, *[1] * (g.dim() - 1))).sum(0)
            torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-5)


def test_reported_epsilon_is_opacus_accountant_for_the_steps_taken(s):
    summary = s.sql(
        "FROM train('dp_small', 'small', epsilon => 1.0, delta => 1e-5, max_grad_norm => 1.5, "
        "epochs => 3, seed => 1)"
    ).df()
    spent = privacy(s, "dp_small")
    training = spent["training"]
    accountant = RDPAccountant()
    accountant.history = [tuple(step) for step in training["history"]]
    assert sum(steps for _, _, steps in accountant.history) == training["steps"] > 0
    assert training["epsilon"] == pytest.approx(accountant.get_epsilon(training["delta"]), 1e-9)
    assert training["max_grad_norm"] == 1.5
    assert spent["epsilon"] == pytest.approx(spent["statistics_epsilon"] + training["epsilon"])
    assert 0.9 < spent["epsilon"] <= 1.0  # the budget is spent, not exceeded
    assert training["delta"] + spent["statistics_delta"] == pytest.approx(1e-5)
    assert summary["epsilon"][0] == pytest.approx(spent["epsilon"])
    listed = s.sql("SELECT epsilon, delta FROM models() WHERE name = 'dp_small'").fetchone()
    assert listed == (pytest.approx(spent["epsilon"]), pytest.approx(1e-5))
    rows = s.sql("SELECT count(*) FROM generate('dp_small', target => 200)").fetchone()[0]
    assert rows == 200


def test_given_noise_multiplier_stops_training_at_the_budget(s):
    summary = s.sql(
        "FROM train('dp_sigma', 'small', epsilon => 1.0, noise_multiplier => 2.0, epochs => 50)"
    ).df()
    training = privacy(s, "dp_sigma")["training"]
    assert summary["stopped"][0] == "epsilon" and summary["epochs"][0] < 50
    assert training["noise_multiplier"] == 2.0
    budget = 1.0 - privacy(s, "dp_sigma")["statistics_epsilon"]
    assert training["epsilon"] <= budget
    one_more = [*map(tuple, training["history"]), (2.0, training["sample_rate"], 1)]
    assert spent_epsilon(one_more, training["delta"]) > budget


@pytest.mark.max_time
def test_max_time_refits_the_noise_and_stays_within_budget(s):
    summary = s.sql(
        "FROM train('dp_timed', 'diamonds', epsilon => 1.0, epochs => 100, max_time => 8)"
    ).df()
    spent = privacy(s, "dp_timed")
    assert summary["stopped"][0] == "max_time"
    assert summary["seconds"][0] < 20
    assert 0.5 < spent["epsilon"] <= 1.0


def test_the_same_request_without_epsilon_is_refused_nothing(s):
    summary = s.sql(
        "FROM train('plain_small', 'small', epochs => 3, max_grad_norm => 1.0, seed => 1)"
    ).df()
    assert summary["epsilon"][0] is None or np.isnan(summary["epsilon"][0])
    assert s.sql("SELECT epsilon FROM models() WHERE name = 'plain_small'").fetchone() == (None,)
    assert "privacy" not in json.loads(
        s.sql("SELECT metrics FROM synth.models WHERE name = 'plain_small'").fetchone()[0]
    )


@pytest.mark.parametrize(
    "method", ["privbayes", "autoregressive"], ids=["privbayes", "autoregressive"]
)
def test_rare_values_and_outliers_are_never_released(s, method):
    """A name one person has and one extreme income appear nowhere in the model (statistics
    included) nor in what it generates: categories clear a noisy threshold, ranges come from a
    noisy histogram."""
    s.sql(
        f"FROM train('people_{method}', 'people', method => '{method}', epsilon => 1.0, "
        "epochs => 1, max_time => 600)"
    )
    stored = s.sql(
        f"SELECT statistics::VARCHAR, options::VARCHAR FROM synth.models "
        f"WHERE name = 'people_{method}'"
    ).fetchone()
    assert "Zebulon" not in stored[0]
    names, top = s.sql(
        f"SELECT list(DISTINCT name), max(income) FROM generate('people_{method}', target => 4000)"
    ).fetchone()
    assert "Zebulon Quixote" not in names and {"Ann", "Bo"} <= set(names)
    assert top < 1_000  # the outlier's magnitude (1e9) never shows
    with pytest.raises(duck_synth.SynthError, match="no value of column 'name'"):
        s.sql(f"FROM generate('people_{method}', target => 5) WHERE name = 'Zebulon Quixote'")


@pytest.mark.parametrize(
    "sql, message",
    [
        (
            "FROM train('x', 'small', method => 'tabgan', epsilon => 1)",
            r"epsilon is supported by methods autoregressive and privbayes",
        ),
        ("FROM train('x', 'small', epsilon => 0)", r"epsilon must be a positive number"),
        ("FROM train('x', 'small', epsilon => 1, delta => 2)", r"delta must be in \(0, 1\)"),
        ("FROM train('x', 'small', noise_multiplier => 1.0)", r"noise_multiplier needs epsilon"),
        (
            "FROM train('x', 'small', epsilon => 1, max_grad_norm => 0)",
            r"max_grad_norm must be positive",
        ),
        (
            "FROM train('x', 'small', epsilon => 1, dp_statistics_share => 1)",
            r"dp_statistics_share must be in \(0, 1\)",
        ),
    ],
)
def test_bad_privacy_requests_are_refused_in_one_line(s, refused, sql, message):
    refused(s, sql, message)


def test_too_little_noise_for_one_step_fails_the_run_and_adds_no_model(s):
    with pytest.raises(duck_synth.SynthError, match="noise_multiplier 0.01 is too small") as raised:
        s.sql("FROM train('x', 'small', epsilon => 1, noise_multiplier => 0.01, epochs => 1)")
    assert "\n" not in str(raised.value)
    assert s.sql("SELECT count(*) FROM synth.models WHERE name = 'x'").fetchone() == (0,)
    assert s.sql("SELECT status FROM synth.runs WHERE model = 'x'").fetchall() == [("failed",)]


def test_sessions_are_refused_under_dp(s, refused):
    s.sql(
        "CREATE TABLE IF NOT EXISTS visits AS SELECT i // 4 AS person, i % 4 AS visit, "
        "(i * 7) % 11 AS amount FROM range(400) t(i)"
    )
    refused(
        s,
        "FROM train('x', 'visits', session_key => 'person', order_by => 'visit', epsilon => 1)",
        r"epsilon",
    )


@pytest.mark.parametrize("data", ["diamonds", "slid"])
def test_membership_inference_fails_on_dp_models(tmp_path, data):
    """The distance attack's AUC stays within 0.05 of a coin toss for DP models of real tables
    (trained on 80%, attacked with the other 20% as non-members)."""
    s = duck_synth.connect(str(tmp_path / "mia.duckdb"))
    s.sql(DIAMONDS_TABLE if data == "diamonds" else SLID_TABLE)
    s.sql(f"CREATE TABLE train_part AS FROM {data} WHERE hash(rowid, 5) % 5 <> 0")
    s.sql(f"CREATE TABLE holdout_part AS FROM {data} WHERE hash(rowid, 5) % 5 = 0")
    for method in ("autoregressive", "privbayes"):
        s.sql(
            f"FROM train('{method}', 'train_part', method => '{method}', epsilon => 1.0, "
            "epochs => 2, max_time => 600, seed => 2)"
        )
        s.sql(f"CREATE TABLE syn_{method} AS FROM generate('{method}', target => 5000, seed => 1)")
        auc = s.sql(
            f"SELECT value FROM evaluate('train_part', 'syn_{method}', holdout => 'holdout_part', "
            "sample => 2000) WHERE metric = 'membership_auc'"
        ).fetchone()[0]
        assert abs(auc - 0.5) < 0.05, (method, auc)
    s.close()


def test_sensitive_needs_a_holdout(s):
    with pytest.raises(duck_synth.SynthError, match="sensitive needs holdout") as raised:
        s.sql("FROM evaluate('small', 'small', sensitive => 'price')")
    assert "\n" not in str(raised.value)
