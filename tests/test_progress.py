"""Progress where people look: per step and bounded by max_time, in synth.runs for a server's
clients (runs()), a widget and HTML tables in a notebook; a time-cut epoch reports the mean
loss of the rows it saw."""

from __future__ import annotations

import json
import threading
import time

import nbformat
import pytest
from nbclient import NotebookClient

import duck_synth
from duck_synth.models import loop

TABLE = (
    "CREATE TABLE t AS SELECT range % 11 AS a, (range % 7)::VARCHAR AS b, "
    "(range * 37 % 101) / 10.0 AS c FROM range({rows})"
)


@pytest.mark.max_time  # a deadline reached after three steps (no clock)
def test_a_time_cut_epoch_reports_the_mean_loss_of_the_rows_it_saw(monkeypatch):
    reached = loop.TimeBudget.reached
    calls = []

    def after_three_steps(self):
        reached(self)
        calls.append(1)
        return len(calls) >= 3

    monkeypatch.setattr(loop.TimeBudget, "reached", after_three_steps)
    with duck_synth.connect() as s:
        s.sql(TABLE.format(rows=20_000))
        summary = s.train("m", "t", epochs=5, batch_size=64, seed=1)
        losses = s.sql("SELECT losses FROM synth.runs").fetchone()[0]
    history = json.loads(losses)
    assert summary["stopped"] == "max_time" and len(history) == 1
    # three steps of 64 rows from an untrained network: a loss of a few nats per row, not
    # that divided by all 18,000 training rows (about 0.03)
    assert history[0]["train_loss"] > 1.0


def test_runs_shows_a_training_moving_within_its_first_epoch(tmp_path):
    path = str(tmp_path / "runs.duckdb")
    s = duck_synth.connect(path)
    s.sql(TABLE.format(rows=40_000))
    failure = []

    def train() -> None:
        try:
            s.sql("FROM train('slow', 't', epochs => 1, batch_size => 16, seed => 2)")
        except duck_synth.SynthError as error:
            failure.append(str(error))

    worker = threading.Thread(target=train)
    worker.start()
    watcher = s.con.cursor()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.is_alive():
        rows = watcher.execute("SELECT status, progress FROM runs()").fetchall()
        if rows and rows[0][0] == "running" and rows[0][1] > 0:
            seen.append(rows[0][1])
            if len(seen) >= 2 and seen[-1] > seen[0]:
                break
        time.sleep(0.3)
    s.interrupt()
    worker.join(60)
    watcher.close()
    status = s.sql("SELECT status FROM runs()").fetchone()[0]
    s.close()
    assert len(seen) >= 2 and 0 < seen[0] < seen[-1] < 1, seen
    assert status == "cancelled" and failure and "cancelled" in failure[0]


def test_a_notebook_shows_a_progress_widget_and_html_tables(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import duck_synth\n"
            "s = duck_synth.connect()\n"
            f"s.sql({TABLE.format(rows=2000)!r})\n"
            "s.sql(\"FROM train('m', 't', epochs => 2, seed => 1)\")"
        ),
        nbformat.v4.new_code_cell("s.sql(\"FROM generate('m', target => 3, seed => 1)\")"),
    ]
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute(cwd=str(tmp_path))
    training, generated = (cell.outputs for cell in notebook.cells)
    assert any(
        "application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in training
    ), training
    shown = [o["data"]["text/html"] for o in generated if "text/html" in o.get("data", {})]
    assert shown and "<table" in shown[0] and shown[0].count("<tr") >= 4


pytestmark = pytest.mark.slow
