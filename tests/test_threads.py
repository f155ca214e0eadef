"""Training threads: the cores other processes leave free, or the number asked for."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch

import duck_synth
from duck_synth import threads


def spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")
def test_a_machine_whose_cores_are_all_busy_trains_on_one_thread():
    stop_at = time.monotonic() + 3
    burners = [
        multiprocessing.Process(target=spin, args=(stop_at,)) for _ in range(os.cpu_count() or 1)
    ]
    for burner in burners:
        burner.start()
    try:
        time.sleep(0.5)
        assert threads.free_cores() == 1
    finally:
        for burner in burners:
            burner.join()


def test_the_option_and_the_variable_fix_the_number(monkeypatch):
    assert threads.training_threads(3) == 3
    monkeypatch.setenv(threads.VARIABLE, "1")
    assert threads.training_threads(None) == 1
    monkeypatch.delenv(threads.VARIABLE)
    assert 1 <= threads.training_threads(None) <= torch.get_num_threads()


def test_a_training_says_how_many_threads_it_ran_on_and_leaves_the_setting(tmp_path):
    s = duck_synth.connect(str(tmp_path / "t.duckdb"))
    s.sql("CREATE TABLE t AS SELECT range % 7 AS a, range % 3 AS b FROM range(500)")
    before = torch.get_num_threads()
    row = s.sql("FROM train('m', 't', epochs => 1, max_time => 600, seed => 1, threads => 1)")
    assert row.df()["threads"].tolist() == [1]
    assert torch.get_num_threads() == before
    metrics = s.sql("SELECT metrics->>'threads', fingerprint FROM models()").fetchone()
    s.sql("FROM train('m', 't', epochs => 1, max_time => 600, seed => 1, threads => 2)")
    again = s.sql("SELECT metrics->>'threads', fingerprint FROM models() WHERE version = 2")
    assert metrics[0] == "1" and again.fetchone() == ("2", metrics[1])  # same data and options
    s.close()
