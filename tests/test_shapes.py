"""Data shapes are strategies: a shape defined here, outside duck_synth, plugs into the same
interface (duck_synth/shapes/base.Shape) and runs through the same train() and generate()
pipelines as the built-in table and session shapes.

The toy shape wraps the table shape: it also keeps the (small) table, and draws rows by
bootstrapping it instead of sampling the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pytest

import duck_synth
from duck_synth import generate, shapes, train
from duck_synth.options import TrainOptions
from duck_synth.shapes import Loaded, RowSampler, TrainingPlan
from duck_synth.shapes.base import batch_generators, read_sql
from duck_synth.shapes.table import TableShape

SMALL = (
    "CREATE TABLE small AS SELECT i::BIGINT AS id, ['a', 'b', 'c'][i % 3 + 1] AS kind, "
    "i * 10 AS score FROM range(12) t(i)"
)


@dataclass
class BootstrapLoaded(Loaded):
    rows: pa.Table | None = None


class BootstrapSampler(RowSampler):
    """Rows drawn with replacement from the stored table (seeded per batch, as every sampler)."""

    def draw(self, n: int, batch: int, seed_table: pa.Table | None = None) -> pa.Table:
        _, rng = batch_generators(self.seed, batch)
        rows = self.loaded.rows
        return rows.take(pa.array(rng.integers(0, rows.num_rows, n)))


class BootstrapShape(TableShape):
    """A table kept as it is and bootstrapped; everything else as the table shape."""

    name = "bootstrap"

    def claims(self, method: str, options: TrainOptions) -> bool:
        return options.session_key is None

    def owns(self, record) -> bool:
        return "bootstrap" in record.statistics

    def plan(self, con, relation, columns, training) -> TrainingPlan:
        """The table shape's plan (what the catalog checks a stored model against), and the
        rows themselves."""
        plan = super().plan(con, relation, columns, training)
        read = read_sql(relation, columns, training.options, training.seed)
        plan.stored = {"bootstrap": con.execute(read).to_arrow_table().to_pylist()}
        return plan

    def stored(self, plan, params) -> dict:
        return plan.stored

    def load(self, record) -> Loaded:
        loaded = super().load(record)
        rows = pa.Table.from_pylist(record.statistics["bootstrap"])
        return BootstrapLoaded(*vars(loaded).values(), rows=rows)

    def sampler(self, loaded, options, compiled, seed) -> RowSampler:
        return BootstrapSampler(loaded, options, compiled, seed)


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
