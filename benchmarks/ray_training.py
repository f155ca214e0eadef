"""Distributed training against one process: diamonds trained by the autoregressive method
in-process and on 2 Ray workers (``engine => 'ray', workers => 2``) at the same fixed epochs,
each model's fit seconds and SDMetrics quality (as the foundation benchmark measures it).

    python benchmarks/ray_training.py                # about 10 minutes on 2 cores
    python benchmarks/ray_training.py --epochs 8     # quicker, while developing
    python benchmarks/ray_training.py --data /path/to/diamonds.csv   # default: shared/bench/data/

Targets (issue 24): the distributed model's SDMetrics overall within 0.01 of the in-process
one's, which must itself be ≥ 0.93. The local Ray has 2 CPUs: each worker one CPU and one torch
thread; the in-process fit uses torch's default threads (the 2 cores). Writes
benchmarks/results/ray_training.md (and a .json beside it).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

from foundation import CATEGORICAL, HERE, HOLDOUT_SHARE, LEVELS, SEED, venv_python
from peers_duck import split

import duck_synth
from duck_synth.distributed import cluster

RESULTS = HERE / "results"
DATA = HERE.parent.parent / "shared" / "bench" / "data" / "diamonds.csv"
TABLE = "diamonds"
TARGET_QUALITY, TARGET_GAP = 0.93, 0.01


def load(session: duck_synth.Session, path: Path) -> None:
    """The train split as a table, the ordered categoricals as ENUMs (as foundation.py)."""
    casts = []
    for column, values in LEVELS.items():
        items = ", ".join(f"'{v}'" for v in values)
        session.con.execute(f"CREATE TYPE {column}_level AS ENUM ({items})")
        casts.append(f'"{column}"::{column}_level AS "{column}"')
    session.con.execute(
        f"CREATE TABLE {TABLE} AS SELECT * REPLACE ({', '.join(casts)}) FROM read_parquet('{path}')"
    )


def fit_and_sample(session, engine: str, epochs: int, rows: int, work: Path) -> dict:
    """Train on ``engine``, timed; sample as many rows as the train split to Parquet."""
    query = (
        f"FROM train('m_{engine}', '{TABLE}', method => 'autoregressive', engine => '{engine}', "
        f"workers => 2, epochs => {epochs}, seed => {SEED}, max_time => 36000)"
    )
    result = session.sql(query)
    summary = dict(zip(result.columns, result.fetchone(), strict=True))
    output = work / f"synthetic_{engine}.parquet"
    session.sql(f"COPY (FROM generate('m_{engine}', target => {rows}, seed => 1)) TO '{output}'")
    return {
        "query": query,
        "seconds": summary["seconds"],  # train()'s own: reading and encoding included
        "epochs": summary["epochs"],
        "val_loss": summary["val_loss"],
        "synthetic": str(output),
    }


def quality(python: str, real: Path, synthetic: str, work: Path, name: str) -> dict:
    """SDMetrics QualityReport in its own venv (peers_sdv.py's quality step)."""
    args, out = work / f"quality_{name}.args.json", work / f"quality_{name}.json"
    args.write_text(
        json.dumps({"real": str(real), "synthetic": synthetic, "categorical": CATEGORICAL})
    )
    step = [python, str(HERE / "peers_sdv.py"), "quality", str(args), str(out)]
    subprocess.run(step, check=True, cwd=HERE)
    return json.loads(out.read_text())


def report(figures: dict) -> str:
    local, ray = figures["local"], figures["ray"]
    gap = ray["overall"] - local["overall"]
    met = local["overall"] >= TARGET_QUALITY and abs(gap) <= TARGET_GAP
    lines = [
        "# Distributed training (Ray Train, 2 workers) against one process: diamonds",
        "",
        f"Train split {figures['rows']:,} rows, autoregressive, epochs => {figures['epochs']}, "
        f"seed {SEED}; synthetic rows as many as the train split; SDMetrics QualityReport "
        "against the train split. Local Ray with 2 CPUs (a worker: one CPU, one torch thread); "
        f"in-process: torch's default threads. Machine: {figures['machine']}, 2 cores, "
        "shared with other work. Train seconds are train()'s own (reading, encoding, and for "
        "Ray its start-up, about 25 s, included).",
        "",
        "| engine | train seconds | epochs | val_loss | SDMetrics overall | shapes | pair trends |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in (("in-process", local), ("ray, 2 workers", ray)):
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['epochs']} | {row['val_loss']:.4f} | "
            f"{row['overall']:.4f} | {row['column_shapes']:.4f} | {row['column_pair_trends']:.4f} |"
        )
    lines += [
        "",
        f"Overall gap (ray − in-process): {gap:+.4f}; target: in-process ≥ {TARGET_QUALITY} and "
        f"|gap| ≤ {TARGET_GAP}: {'met' if met else 'NOT met'}.",
        "",
        "Reproduce: `python benchmarks/ray_training.py"
        + (f" --epochs {figures['epochs']}`" if figures["epochs"] else "`"),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=30)
    options = parser.parse_args()
    work = RESULTS / "ray_training"
    work.mkdir(parents=True, exist_ok=True)
    train, holdout = work / "train.parquet", work / "holdout.parquet"
    parts = {"csv": str(options.data), "seed": SEED, "holdout_share": HOLDOUT_SHARE}
    rows = split(parts | {"train": str(train), "holdout": str(holdout)})["train_rows"]
    python = venv_python("sdv")
    ray = cluster.require_ray("benchmark")
    cluster.start_local(ray, cpus=2)
    session = duck_synth.connect()
    load(session, train)
    figures: dict = {"rows": rows, "epochs": options.epochs, "machine": platform.platform()}
    for engine in ("local", "ray"):
        fitted = fit_and_sample(session, engine, options.epochs, rows, work)
        # the fit's figures last: the quality step's own "seconds" (SDMetrics') must not hide them
        figures[engine] = quality(python, train, fitted["synthetic"], work, engine) | fitted
        print(engine, json.dumps(figures[engine]), file=sys.stderr)
    session.close()
    cluster.stop_local()
    (RESULTS / "ray_training.json").write_text(json.dumps(figures, indent=2, default=str))
    text = report(figures)
    (RESULTS / "ray_training.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
