"""Data shapes are strategies: a shape defined here, outside duck_synth, plugs into the same
interface (duck_synth/shapes/base.Shape) and runs through the same train() and generate()
pipelines as the built-in table and session shapes.

The toy shape (tests/plugins/toy_shape.py) wraps the table shape: it also keeps the (small)
table, and draws rows by bootstrapping it instead of sampling the network. tests/test_surface.py
runs it as a plugin through the CLI, Flight SQL and Quack.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import duck_synth
from duck_synth import generate, shapes, train
from duck_synth.options import TrainOptions
from duck_synth.shapes.table import TableShape
from tests.plugins.toy_shape import BootstrapShape

SMALL = (
    "CREATE TABLE small AS SELECT i::BIGINT AS id, ['a', 'b', 'c'][i % 3 + 1] AS kind, "
    "i * 10 AS score FROM range(12) t(i)"
)


@pytest.fixture()
def small():
    session = duck_synth.connect()
    session.sql(SMALL)
    yield session
    session.close()


def test_a_shape_from_outside_trains_and_generates_through_the_same_pipelines(small):
    toy = BootstrapShape()
    source = {tuple(r.values()) for r in small.sql("FROM small").arrow().to_pylist()}
    with shapes.registered_shape(toy):
        assert shapes.for_training("autoregressive", TrainOptions(epochs=1)) is toy
        summary = (
            small.sql(
                "FROM train('boot', 'small', method => 'autoregressive', epochs => 1, seed => 1)"
            )
            .arrow()
            .to_pylist()[0]
        )
        assert (summary["rows"], summary["columns"], summary["epochs"]) == (12, 3, 1)
        assert generate.load(small.con, "boot").shape is toy
        rows = small.sql("FROM generate('boot', target => 200, seed => 3)").arrow()
        again = small.sql("FROM generate('boot', target => 200, seed => 3)").arrow()
        # the generate pipeline driven directly, with its residual filter and target
        options = json.dumps({"target": 25, "seed": 3, "filter": "score >= 60"})
        direct = pa.concat_tables(list(generate.Rows(small.con, "boot", options)))
    assert rows.num_rows == 200 and rows.equals(again)
    assert {tuple(r.values()) for r in rows.to_pylist()} <= source
    assert len({r["id"] for r in rows.to_pylist()}) > 6  # drawn with replacement from all 12
    assert direct.num_rows == 25 and min(direct.column("score").to_pylist()) >= 60
    # once unregistered, trainings have the built-in shapes again
    assert isinstance(shapes.for_training("autoregressive", TrainOptions()), TableShape)
    assert shapes.for_training("autoregressive", TrainOptions(session_key="id")).name == (
        "sessions"
    )
    assert shapes.for_training("timegan", TrainOptions(session_key="id")).name == ("joint_sessions")
    assert train.fit_and_store.__module__ == "duck_synth.train"


def test_built_in_shapes_keep_their_refusals():
    with pytest.raises(duck_synth.SynthError, match="models sessions; give session_key"):
        shapes.for_training("timegan", TrainOptions())
    with pytest.raises(duck_synth.SynthError, match="models rows, not sessions"):
        shapes.for_training("tabgan", TrainOptions(session_key="id"))
    with pytest.raises(duck_synth.SynthError, match="order_by and metadata describe sessions"):
        shapes.for_training("autoregressive", TrainOptions(order_by="t"))
