"""train('m', 'new rows', from_model => 'm@1') continues a version on new data: new categories
seen at least k times join the vocabulary, numeric ranges widen and new frequent values join,
the network grows without forgetting, and the new version records its parent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import duck_synth
from duck_synth.errors import SynthError
from duck_synth.models.autoregressive import AutoregressiveModel

OLD = """CREATE TABLE old AS SELECT
    ['a', 'b', 'c'][1 + range % 3] AS kind,
    (range * 7) % 51 AS size,
    range % 2 = 0 AS flag
FROM range(600)"""
# 'd' is new and frequent, 'e' new but rare (2 rows); sizes reach 90; 'c' is gone
NEW = """CREATE TABLE new AS SELECT
    CASE WHEN range < 2 THEN 'e' ELSE ['a', 'b', 'd'][1 + range % 3] END AS kind,
    20 + (range * 7) % 71 AS size,
    range % 2 = 0 AS flag
FROM range(600)"""
TRAIN = "epochs => 3, seed => 1, max_time => 3600"


@pytest.fixture
def s():
    with duck_synth.connect() as session:
        session.sql(OLD)
        session.sql(NEW)
        session.sql(f"FROM train('m', 'old', {TRAIN})")
        yield session


def test_a_continued_version_learns_new_categories_and_a_wider_range(s):
    summary = (
        s.sql(
            "FROM train('m', 'new', from_model => 'm@1', epochs => 20, seed => 1, max_time => 3600)"
        )
        .df()
        .iloc[0]
    )
    assert summary["version"] == 2 and summary["why"] == "continues m@1"
    changes = json.loads(summary["changes"])
    assert changes["kind"] == {"added": ["d"]}  # 'e' has fewer than k rows
    assert changes["size"]["range"][1][1] > changes["size"]["range"][0][1]
    assert s.sql("SELECT parent FROM models() WHERE version = 2").fetchone() == ("m@1",)
    kinds = dict(
        s.sql(
            "SELECT kind, count(*) FROM generate('m', target => 3000, seed => 2) GROUP BY 1"
        ).fetchall()
    )
    assert kinds.get("d", 0) > 600 and "e" not in kinds
    largest = s.sql("SELECT max(size) FROM generate('m', target => 3000, seed => 2)").fetchone()[0]
    assert largest > 60
    # the version it continued is unchanged
    old_kinds = s.sql(
        "SELECT DISTINCT kind FROM generate('m@1', target => 500, seed => 2)"
    ).fetchall()
    assert {k for (k,) in old_kinds} <= {"a", "b", "c", "_RARE_"}


def test_the_grown_network_starts_where_the_old_one_was():
    """Before any step, a grown column's known tokens keep their probabilities and the new
    tokens share the probability of the token they were drawn as (here the rare token, 1)."""
    torch.manual_seed(0)
    old = AutoregressiveModel([5, 4])
    grown = old.grown([np.arange(5), np.array([0, 1, 2, 3, 1, 1])], [None, None])
    rows = torch.tensor([[3, 2], [4, 0]])
    known = torch.tensor([[True, False], [True, False]])
    with torch.no_grad():
        old.net.eval(), grown.net.eval()
        before = old.net.logits(1, old.net.hidden_all(rows, known)[1]).softmax(-1)
        after = grown.net.logits(1, grown.net.hidden_all(rows, known)[1]).softmax(-1)
    assert torch.allclose(after[:, [0, 2, 3]], before[:, [0, 2, 3]], atol=1e-6)
    assert torch.allclose(after[:, [1, 4, 5]].sum(-1), before[:, 1], atol=1e-6)
    assert torch.allclose(after[:, 4], after[:, 1], atol=1e-6)


def test_new_frequent_numbers_join_the_points():
    with duck_synth.connect() as s:
        s.sql("CREATE TABLE f AS SELECT 1 + range % 11 AS month, range % 7 AS day FROM range(2200)")
        s.sql(
            "CREATE TABLE december AS SELECT 12::BIGINT AS month, range % 7 AS day FROM range(300)"
        )
        s.sql(f"FROM train('m', 'f', {TRAIN})")
        changes = s.sql(f"FROM train('m', 'december', from_model => 'm', {TRAIN})").df()
        assert json.loads(changes["changes"][0])["month"]["added"] == [12.0]
        months = s.sql("SELECT DISTINCT month FROM generate('m', target => 500, seed => 1)")
        assert (12,) in months.fetchall()


def test_continuing_twice_gives_the_same_weights(s):
    for name in ("x", "y"):
        s.sql(f"FROM train('{name}', 'new', from_model => 'm@1', {TRAIN})")
    x, y = (
        s.con.execute("SELECT weights FROM synth.models WHERE name = ?", [n]).fetchone()[0]
        for n in ("x", "y")
    )
    assert x == y
    prints = s.sql("SELECT count(DISTINCT fingerprint) FROM models() WHERE name IN ('x', 'y')")
    assert prints.fetchone()[0] == 1


REFUSED = [
    ("'new', from_model => 'nope'", "unknown model 'nope'"),
    ("'new', from_model => 'm', columns => ['kind']", "columns is the model's own"),
    ("'new', from_model => 'm', method => 'tabgan'", "it is autoregressive, not tabgan"),
    ("'new', from_model => 'g'", "trained with method 'tabgan'"),
    ("'SELECT kind, flag FROM new', from_model => 'm'", "the source has no column 'size'"),
    (
        "'SELECT kind, CAST(size AS VARCHAR) AS size, flag FROM new', from_model => 'm'",
        "column 'size' is VARCHAR in the source, BIGINT in from_model 'm@1'",
    ),
    ("'new', from_model => 'm', epsilon => 1", "epsilon is the model's own"),
]


def test_what_cannot_be_continued_is_refused_in_one_line(s):
    s.sql(f"FROM train('g', 'old', method => 'tabgan', {TRAIN})")
    runs = s.sql("SELECT count(*) FROM runs()").fetchone()[0]
    for call, refusal in REFUSED:
        with pytest.raises(SynthError, match=refusal) as refused:
            s.sql(f"FROM train('m2', {call}, {TRAIN})")
        assert "\n" not in str(refused.value)
    assert s.sql("SELECT count(*) FROM runs()").fetchone()[0] == runs  # nothing recorded
