"""generate_into() on Ray against the local engine, on this machine (issue 24).

    python benchmarks/ray_generation.py             # 2,000,000 rows of diamonds, batches of 100k
    python benchmarks/ray_generation.py --quick     # 400,000 rows: a smoke run

One process, duck_synth only. A diamonds model (8 epochs, seed 1) writes the same seeded rows
(checked identical) with:
- the local engine at one sampling thread (torch and duck_synth's sampling pool at 1);
- Ray with 1 and 2 workers, one CPU and one thread each (a local Ray of 2 CPUs).
It reports rows/s, Ray's overhead at one worker, the scaling efficiency at two, and what a
cluster would do: the per-batch cost on a worker (draw and screen) and on the driver (take,
append to DuckDB, or write a Parquet part), measured batch by batch in this process, and the
rows/s they allow (workers x a worker's rows/s, up to the driver's rows/s). The report goes to
benchmarks/results/ray_generation.md and .json and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ["DUCK_SYNTH_SAMPLE_THREADS"] = "1"  # the local engine at one thread, as a worker

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import duck_synth  # noqa: E402
from duck_synth import spool  # noqa: E402
from duck_synth.distributed import cluster  # noqa: E402
from duck_synth.generate import prepare  # noqa: E402
from duck_synth.options import GenerateOptions  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "examples" / "data"
BATCH = 100_000


def timed_into(s, table: str, arguments: str) -> float:
    started = time.perf_counter()
    s.sql(f"FROM generate_into('{table}', 'd', {arguments})").fetchall()
    return time.perf_counter() - started


def batch_costs(s, batches: int) -> dict:
    """Seconds per batch: a worker's draw and screen, the driver's append and Parquet write."""
    generator = prepare(s.con, "d", GenerateOptions(batch_size=BATCH, seed=3))
    generator.set_target(batches * BATCH)
    types = generator.loaded.column_types()
    s.sql("CREATE OR REPLACE TABLE costs AS SELECT * FROM syn_local LIMIT 0")
    draw = append = parquet = 0.0
    folder = tempfile.mkdtemp()
    for batch in range(batches):
        started = time.perf_counter()
        rows = generator.admit(generator.screen(generator.draw(BATCH, batch)))
        middle = time.perf_counter()
        s.con.register("batch_rows", rows)
        s.con.execute(f"INSERT INTO costs {spool.cast_sql('batch_rows', types)}")
        typed = s.con.execute(spool.cast_sql("batch_rows", types)).to_arrow_table()
        appended = time.perf_counter()
        pq.write_table(typed, os.path.join(folder, f"{batch}.parquet"), compression="snappy")
        draw += middle - started
        append += appended - middle
        parquet += time.perf_counter() - appended
        s.con.unregister("batch_rows")
    return {"draw": draw / batches, "append": append / batches, "parquet": parquet / batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400,000 rows")
    args = parser.parse_args()
    target = 400_000 if args.quick else 2_000_000
    torch.set_num_threads(1)
    ray = cluster.require_ray("benchmark")

    cluster.start_local(ray, cpus=2, object_store_bytes=512 * 1024 * 1024)
    work = Path(tempfile.mkdtemp())
    s = duck_synth.connect(str(work / "bench.duckdb"))
    s.sql((DATA / "diamonds.sql").read_text().format(parquet=DATA / "diamonds.parquet"))
    s.sql("FROM train('d', 'diamonds', epochs => 8, max_time => 3600, seed => 1)").fetchall()
    arguments = f"target => {target}, batch_size => {BATCH}, seed => 3"
    load = os.getloadavg()[0]
    seconds = {"local": timed_into(s, "syn_local", arguments)}
    for workers in (1, 2):
        extra = f", engine => 'ray', workers => {workers}"
        seconds[f"ray_{workers}"] = timed_into(s, f"syn_ray_{workers}", arguments + extra)
    local = s.sql("SELECT * FROM syn_local ORDER BY rowid").arrow()
    same = all(
        s.sql(f"SELECT * FROM syn_ray_{w} ORDER BY rowid").arrow().equals(local) for w in (1, 2)
    )
    costs = batch_costs(s, 5)
    rate = {k: target / v for k, v in seconds.items()}
    worker_rate = BATCH / costs["draw"]
    driver_rate = BATCH / costs["append"]
    report = {
        "rows": target,
        "batch_size": BATCH,
        "cpus": os.cpu_count(),
        "load_before": load,
        "identical_rows": same,
        "seconds": seconds,
        "rows_per_second": rate,
        "ray_overhead_at_1_worker": seconds["ray_1"] / seconds["local"],
        "scaling_efficiency_2_workers": rate["ray_2"] / (2 * rate["ray_1"]),
        "per_batch_seconds": costs,
        "worker_rows_per_second": worker_rate,
        "driver_append_rows_per_second": driver_rate,
        "driver_parquet_rows_per_second": BATCH / costs["parquet"],
        "workers_the_driver_feeds": driver_rate / worker_rate,
    }
    s.close()
    cluster.stop_local()
    write(report)


def write(report: dict) -> None:
    r, c = report["rows_per_second"], report["per_batch_seconds"]
    lines = [
        "# generate_into on Ray vs the local engine (benchmarks/ray_generation.py)",
        "",
        f"{report['rows']:,} rows of diamonds in batches of {report['batch_size']:,}; "
        f"{report['cpus']} CPUs, load {report['load_before']:.2f} before; rows identical on "
        f"every engine: {report['identical_rows']}.",
        "",
        "| engine | seconds | rows/s |",
        "|---|---:|---:|",
        *(
            f"| {k} | {report['seconds'][k]:.1f} | {r[k]:,.0f} |"
            for k in ("local", "ray_1", "ray_2")
        ),
        "",
        f"- Ray's overhead at 1 worker: {report['ray_overhead_at_1_worker']:.2f}x the local "
        "engine's time (both at one thread)",
        f"- scaling efficiency at 2 workers: {report['scaling_efficiency_2_workers']:.2f}",
        f"- per batch: a worker draws and screens in {c['draw']:.3f} s "
        f"({report['worker_rows_per_second']:,.0f} rows/s per worker); the driver appends to "
        f"DuckDB in {c['append']:.3f} s ({report['driver_append_rows_per_second']:,.0f} rows/s)"
        f" or writes a Parquet part in {c['parquet']:.3f} s "
        f"({report['driver_parquet_rows_per_second']:,.0f} rows/s)",
        f"- projection: a cluster gains rows/s with each worker up to about "
        f"{report['workers_the_driver_feeds']:.1f} workers, where the driver's DuckDB append "
        "(one writer) is the limit",
    ]
    text = "\n".join(lines) + "\n"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "ray_generation.md").write_text(text)
    (out / "ray_generation.json").write_text(json.dumps(report, indent=2))
    print(text)


if __name__ == "__main__":
    main()
