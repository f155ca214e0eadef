"""The README's first command, the demo, runs end to end (short training budget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duck_synth

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_runs_and_leaves_its_models_in_the_database(tmp_path):
    database = tmp_path / "demo.duckdb"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--database", str(database), "--max-time", "5"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "100 Fair diamonds" in done.stdout and "session fidelity" in done.stdout
    assert "A/B of the first model" in done.stdout and "arm model_b@1's logged rows" in done.stdout
    for model in ("diamonds_model", "careers"):  # each model trained is judged three ways
        titles = [line for line in done.stdout.splitlines() if line.startswith(f"-- {model}: ")]
        assert [t[t.rindex("(") :] for t in titles] == ["(evaluate)", "(validate)", "(report)"]
        assert (tmp_path / f"{model}_report.html").stat().st_size > 10_000
    explains = done.stdout.count("\n-- runs as:")
    assert explains == 2 and done.stdout.count("\nEXPLAIN SELECT") == explains
    session = duck_synth.connect(str(database))
    models = {name for (name,) in session.sql("SELECT name FROM models()").fetchall()}
    assert models == {"diamonds_model", "careers", "airline_db"}
    assert "dangling" in done.stdout and "generate_tables()" in done.stdout
    session.close()
