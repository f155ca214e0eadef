"""The same data, options and seed give bit-identical weights and rows in any process, for
every method without epsilon; models() shows the fingerprint that says a model is such a
reproduction, and marks a DP model (its noise comes from the OS) as not reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import duck_synth

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
# every method, on tables and on sessions; two epochs: determinism, not quality
TRAININGS = {
    "autoregressive": "'slid', method => 'autoregressive'",
    "tabgan": "'slid', method => 'tabgan'",
    "privbayes": "'slid', method => 'privbayes'",
    "sessions": "'males', session_key => 'nr', order_by => 'year'",
    "timegan": "'males', method => 'timegan', session_key => 'nr', order_by => 'year'",
}
SCRIPT = f"""
import hashlib, json, sys, duck_synth
s = duck_synth.connect()
s.sql("CREATE TABLE slid AS SELECT * FROM read_csv('{DATA / "SLID.csv"}', nullstr = 'NA') "
      "LIMIT 1500")
s.sql("CREATE TABLE males AS SELECT * FROM read_csv('{DATA / "Males.csv"}') WHERE nr < 1500")
found = {{}}
for name, source in json.loads(sys.argv[1]).items():
    s.sql(f"FROM train('{{name}}', {{source}}, epochs => 2, max_time => 3600, seed => 5)")
    weights, fingerprint = s.con.execute(
        "SELECT weights, metrics->>'$.fingerprint' FROM synth.models WHERE name = ?", [name]
    ).fetchone()
    rows = s.sql(f"FROM generate('{{name}}', target => 40, seed => 1)").fetchall()
    found[name] = [hashlib.sha256(weights).hexdigest(), fingerprint,
                   hashlib.sha256(repr(rows).encode()).hexdigest()]
print(json.dumps(found))
"""


def trained_in_a_fresh_process(trainings: dict[str, str]) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(trainings)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_train_the_same_weights_and_draw_the_same_rows():
    first = trained_in_a_fresh_process(TRAININGS)
    # the other order: no training depends on what ran before it in the process
    again = trained_in_a_fresh_process(dict(reversed(TRAININGS.items())))
    assert first == again
    assert len({weights for weights, _, _ in first.values()}) == len(TRAININGS)


def test_a_fingerprint_tells_data_options_and_seed_apart():
    with duck_synth.connect() as s:
        s.sql("CREATE TABLE t AS SELECT range % 7 AS a, range % 5 AS b FROM range(300)")
        s.sql("CREATE TABLE u AS SELECT range % 7 AS a, range % 4 AS b FROM range(300)")
        for name, source, seed in [("m1", "t", 1), ("m2", "t", 1), ("m3", "t", 2), ("m4", "u", 1)]:
            s.sql(f"FROM train('{name}', '{source}', epochs => 1, seed => {seed})")
        prints = dict(s.sql("SELECT name, fingerprint FROM models()").fetchall())
        reproducible = s.sql("SELECT bool_and(reproducible) FROM models()").fetchone()[0]
    assert prints["m1"] == prints["m2"] and len(prints["m1"]) == 16
    assert len({prints["m1"], prints["m3"], prints["m4"]}) == 3
    assert reproducible


def test_a_differentially_private_model_is_not_reproducible():
    with duck_synth.connect() as s:
        s.sql("CREATE TABLE t AS SELECT range % 7 AS a, range % 5 AS b FROM range(300)")
        s.sql("FROM train('dp', 't', epsilon => 5, epochs => 1, seed => 1)")
        fingerprint, reproducible = s.sql(
            "SELECT fingerprint, reproducible FROM models() WHERE name = 'dp'"
        ).fetchone()
    assert fingerprint is not None and reproducible is False
