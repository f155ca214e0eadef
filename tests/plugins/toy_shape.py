"""A fourth data shape, defined outside duck_synth: a table kept as it is and bootstrapped
(tests/test_shapes.py uses it in process; tests/test_surface.py loads it as a plugin with
DUCK_SYNTH_PLUGINS=toy_shape, so the CLI, the server and a fresh session train and generate
with it). It wraps the table shape: it also stores the (small) table, and draws rows from it
with replacement instead of sampling the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from duck_synth import shapes
from duck_synth.options import TrainOptions
from duck_synth.shapes import Loaded, RowSampler, TrainingPlan
from duck_synth.shapes.base import batch_generators, read_sql
from duck_synth.shapes.table import TableShape


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


if "toy_shape" in os.environ.get("DUCK_SYNTH_PLUGINS", ""):  # loaded as a plugin
    shapes.register(BootstrapShape())
