"""train(engine => 'ray')'s training rows in blocks: the table is never in one process's memory.

DuckDB reads the source once into a temporary table (spilled to disk beyond its memory limit,
``nrows`` sampled as in-process). The encoders are fitted a column at a time from it (one
column in memory, not the table). Then DuckDB streams the rows in a seeded random order, and
each block of BLOCK_ROWS rows is encoded to tokens and put in Ray's object store (which spills
to disk and reaches every node), so the driver holds one block at a time. A worker fetches the
blocks of its range of rows: equal ranges of a random order are random shares of the rows.

Free-text columns are refused here: their model learns from every row's tokens at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..encoding import analyze
from ..errors import SynthError
from ..shapes.base import TrainingPart, TrainingPlan, modelled, read_sql, rows_model, tokens
from ..sqltext import quote_identifier
from .cluster import ray_for

BLOCK_ROWS = 65_536
ROWS_TABLE = "__duck_synth_training_rows"
WHAT = "train(engine => 'ray')"


@dataclass
class TokenBlocks:
    """The training rows as tokens: blocks in Ray's object store, in a seeded random order."""

    refs: list
    sizes: list[int]
    digest: str  # of every block's tokens in order (the model's fingerprint reads it)

    def __len__(self) -> int:
        return sum(self.sizes)

    def ranges(self, workers: int) -> list[list[tuple[object, int, int]]]:
        """Each worker's (block, first row, end row) pieces: equal rows each, in order (the
        rows beyond a multiple of ``workers`` left out)."""
        each = len(self) // workers
        starts = np.cumsum([0, *self.sizes])
        shards = []
        for k in range(workers):
            low, high = k * each, (k + 1) * each
            pieces = []
            for b, ref in enumerate(self.refs):
                first, end = max(low, starts[b]), min(high, starts[b + 1])
                if first < end:
                    pieces.append((ref, int(first - starts[b]), int(end - starts[b])))
            shards.append(pieces)
        return shards


def joined(pieces: list[tuple[object, int, int]], get) -> np.ndarray:
    """A worker's rows from its pieces (``get``: ray.get), one writable array."""
    return np.concatenate([np.asarray(get(ref))[first:end] for ref, first, end in pieces])


def plan_in_blocks(con, relation: str, columns: list[tuple[str, str]], training) -> TrainingPlan:
    """The table shape's plan with the rows in blocks (shapes/table.py's, out of memory)."""
    ray = ray_for(WHAT)
    options, seed = training.options, training.seed
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS {read_sql(relation, columns, options, seed)}"
    )
    try:
        rows = con.execute(f"SELECT count(*) FROM {ROWS_TABLE}").fetchone()[0]
        encoders = []
        for name, duck_type in columns:  # one column in memory at a time
            column = con.execute(
                f"SELECT {quote_identifier(name)} FROM {ROWS_TABLE}"
            ).to_arrow_table()
            # text found as the table shape finds it, then refused: its model is not fitted here
            types, given = {name: duck_type}, options.encoding
            encoder = analyze(column, types, given, training.protection, text_refusal=None)[0]
            if encoder.kind == "text":
                raise SynthError(
                    f"{WHAT}: column '{name}' is free text, whose model trains in-process; give "
                    f"engine => 'local', or exclude => ['{name}']"
                )
            encoders.append(encoder)
        blocks = _token_blocks(ray, con, encoders, seed)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {ROWS_TABLE}")
    learned = bool(modelled(encoders))
    model = rows_model(training.method, encoders)
    return TrainingPlan(
        encoders=encoders,
        columns=[
            {"name": e.name, "type": t, "kind": e.kind}
            for e, (_, t) in zip(encoders, columns, strict=True)
        ],
        parts=[TrainingPart("", model, (blocks,), 1.0, learns=learned)],
        training_rows=rows,
        rows=rows,
    )


def _token_blocks(ray, con, encoders, seed: int) -> TokenBlocks:
    """The rows in a random order fixed by the seed (ties by place), encoded block by block."""
    reader = con.execute(
        f"SELECT * FROM {ROWS_TABLE} ORDER BY hash(rowid + ?), rowid", [seed]
    ).fetch_record_batch(BLOCK_ROWS)
    refs, sizes, digest = [], [], hashlib.sha256()
    for batch in reader:
        block = tokens(encoders, pa.Table.from_batches([batch]))
        digest.update(np.ascontiguousarray(block).tobytes())
        refs.append(ray.put(block))
        sizes.append(len(block))
    return TokenBlocks(refs, sizes, digest.hexdigest())
