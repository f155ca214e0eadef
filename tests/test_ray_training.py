"""train(.., engine => 'ray'): the autoregressive network fitted data-parallel by Ray Train
workers on a local Ray of 2 CPUs (duck_synth/distributed/training.py). Two workers at the same
epochs learn what one process does (validation loss within 5%), the same seed gives the same
weights, the model generates, and what Ray does not train is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import duck_synth
from duck_synth.distributed import blocks, cluster
from duck_synth.distributed.training import split_rows, worker_config
from duck_synth.models.autoregressive import batch_size
from duck_synth.models.base import FitConfig
from tests.conftest import DIAMONDS_TABLE

ray = cluster.require_ray("tests")  # CI installs the ray extra: its absence fails here

# 5,000 diamonds in an order that does not follow price (the table is sorted by it)
SAMPLE = "CREATE TABLE d5 AS SELECT * FROM diamonds ORDER BY hash(rowid) LIMIT 5000"
TRAIN = (
    "FROM train('{name}', 'd5', method => 'autoregressive', engine => '{engine}', "
    "workers => 2, epochs => 4, seed => 11, max_time => 3600)"
)


@pytest.fixture(scope="module")
def local_ray():
    cluster.start_local(ray, cpus=2, object_store_bytes=100 * 1024 * 1024)
    yield ray
    cluster.stop_local()


@pytest.fixture(scope="module")
def trained(local_ray):
    """One session with the sample trained in-process ('one') and twice on 2 Ray workers with
    the same seed ('two', 'again', its rows in smaller blocks): three fits for every check."""
    s = duck_synth.connect()
    s.sql(DIAMONDS_TABLE)
    s.sql(SAMPLE)
    for name, engine in (("one", "local"), ("two", "ray")):
        s.sql(TRAIN.format(name=name, engine=engine))
    # the same seed again, the rows in blocks of 700: 8 blocks, a worker's range across them
    original, blocks.BLOCK_ROWS = blocks.BLOCK_ROWS, 700
    try:
        s.sql(TRAIN.format(name="again", engine="ray"))
    finally:
        blocks.BLOCK_ROWS = original
    yield s
    s.close()


def model_row(s: duck_synth.Session, name: str) -> tuple:
    return s.con.execute(
        "SELECT metrics->>'$.best_val_loss', metrics->>'$.workers', metrics->>'$.epochs', "
        "sha256(weights::VARCHAR) FROM synth.models WHERE name = ?",
        [name],
    ).fetchone()


def test_two_workers_reach_the_loss_of_one_process(trained):
    one, two = model_row(trained, "one"), model_row(trained, "two")
    assert two[1] == "2" and one[1] is None  # the ray fit says how many workers it had
    assert one[2] == two[2] == "4"
    assert abs(float(two[0]) - float(one[0])) / float(one[0]) < 0.05


def test_the_same_seed_gives_the_same_weights_whatever_the_blocks(trained):
    assert model_row(trained, "two")[3] == model_row(trained, "again")[3]
    assert model_row(trained, "two")[3] != model_row(trained, "one")[3]
    temporary = "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__duck_synth%'"
    assert trained.sql(temporary).fetchone()[0] == 0  # the rows' table went with the training


def test_block_ranges_give_each_worker_equal_rows_in_order():
    rows = blocks.TokenBlocks(["a", "b", "c"], [700, 700, 300], digest="")
    shards = rows.ranges(2)
    assert shards == [[("a", 0, 700), ("b", 0, 150)], [("b", 150, 700), ("c", 0, 300)]]
    assert [sum(end - first for _, first, end in shard) for shard in shards] == [850, 850]
    assert rows.ranges(3)[2] == [("b", 432, 700), ("c", 0, 298)]  # 1 row of 1,700 left out
    got = {"a": np.arange(700), "b": np.arange(700, 1400), "c": np.arange(1400, 1700)}
    assert np.array_equal(blocks.joined(shards[1], got.get), np.arange(850, 1700))


def test_the_model_generates_and_is_listed(trained):
    assert trained.sql("SELECT count(*) FROM generate('two', target => 100)").fetchone()[0] == 100
    assert "two" in {row[0] for row in trained.sql("SELECT name FROM models()").fetchall()}
    price = trained.sql("SELECT avg(price) FROM generate('two', target => 2000, seed => 1)")
    real = trained.sql("SELECT avg(price) FROM d5").fetchone()[0]
    assert abs(price.fetchone()[0] - real) / real < 0.35  # four epochs: the scale, not the detail


def test_the_run_records_every_epoch(trained):
    status, epochs, losses = trained.sql(
        "SELECT status, epochs, losses FROM synth.runs WHERE model = 'two' ORDER BY run_id LIMIT 1"
    ).fetchone()
    assert (status, epochs) == ("succeeded", 4)
    assert [entry["epoch"] for entry in json.loads(losses)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("method => 'tabgan'", r"only method 'autoregressive' trains on Ray, not 'tabgan'"),
        ("epsilon => 5", r"differential privacy \(epsilon\) trains in-process"),
        ("resume => true", r"keeps no checkpoints to resume from"),
    ],
)
def test_what_ray_does_not_train_is_refused(trained, refused, options, message):
    sql = f"FROM train('no', 'd5', engine => 'ray', epochs => 1, {options})"
    refused(trained, sql, message)
    runs = trained.sql("SELECT count(*) FROM synth.runs WHERE model = 'no'").fetchone()[0]
    assert runs == 0


def test_shards_have_equal_rows_and_the_batch_is_divided():
    """Equal steps per epoch on every worker (else the all-reduce waits forever), and the
    local fit's global batch."""
    tokens = np.arange(2 * 1003).reshape(1003, 2)
    shards = split_rows(tokens, 2, seed=1)
    assert [len(shard) for shard in shards] == [501, 501]
    assert len(np.intersect1d(shards[0][:, 0], shards[1][:, 0])) == 0
    assert np.array_equal(split_rows(tokens, 2, seed=1)[1], shards[1])
    config = FitConfig(epochs=1, max_time=60.0)
    local = batch_size(config, 1003 - 100)  # the local fit's batch: 100 validation rows
    assert worker_config(config, 1003, 2).batch_size == local // 2
    assert worker_config(FitConfig(1, 60.0, batch_size=512), 1003, 2).batch_size == 256
