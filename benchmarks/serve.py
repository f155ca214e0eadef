"""Serving benchmarks (issue 6): streaming over Arrow Flight SQL, and many clients at once.

    python benchmarks/serve.py stream [--rows 10000000]
    python benchmarks/serve.py clients [--clients 16] [--seconds 60]

Both start the real server (``duck-synth serve`` in its own process) on a database holding
diamonds and a model trained on it (``max_time => 60``), and drive it with
adbc_driver_flightsql from this process.

stream: ``SELECT * FROM generate('d', target => N)`` read batch by batch by an ADBC client
(``fetch_record_batch``): seconds to the first batch, rows/s. Then the same N rows made into a
table on the server (``CREATE TABLE generated AS ...``) and read back with ``SELECT * FROM
generated``: rows/s of the table read, and the ratio. The server's peak RSS is read from
/proc/<pid>/status.

clients: one client trains a second model (``max_time`` longer than the run) while ``--clients``
threads, each with its own ADBC connection, run generate() queries in a loop for ``--seconds``
(two shapes in turn: 1,000 rows with a pushed-down WHERE, and an aggregate over 10,000 generated
rows). Reports every error, the queries run, p50/p95/max latency per shape, and the same
latencies from one client alone on an idle server (the reference).

Results: benchmarks/results/serve-<part>.json, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
WORK = RESULTS / "serve"
DIAMONDS = REPO / "examples" / "data" / "diamonds.parquet"
DIAMONDS_SQL = (REPO / "examples" / "data" / "diamonds.sql").read_text()
TOKEN = "bench-token"
SHAPES = {
    "1,000 rows WHERE cut = 'Fair'": (
        "SELECT * FROM generate('d', target => 1000) WHERE cut = 'Fair'"
    ),
    "avg price of 10,000 rows": (
        "SELECT cut, avg(price) FROM generate('d', target => 10000) GROUP BY cut"
    ),
}


def prepare(path: Path, max_time: float) -> None:
    """A database with diamonds and model 'd', made in a process of its own."""
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    code = f"""
import duck_synth
s = duck_synth.connect({str(path)!r})
s.sql({DIAMONDS_SQL.format(parquet=DIAMONDS)!r})
s.sql("FROM train('d', 'diamonds', max_time => {max_time}, seed => 1)")
s.close()
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


class Server:
    """``duck-synth serve`` in its own process, stopped on exit."""

    def __init__(self, database: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "duck_synth.cli", "serve", str(database)]
            + ["--port", "0", "--no-quack", "--token", TOKEN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        line = self.process.stdout.readline()
        match = re.search(r"on (grpc://\S+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.process.stderr.read()}")
        self.url = match.group(1)

    def peak_rss_mib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return 0

    def connect(self):
        kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {TOKEN}"}
        return flightsql.connect(self.url, db_kwargs=kwargs, autocommit=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def read_stream(server: Server, sql: str) -> dict:
    """Runs ``sql`` and reads its result batch by batch, keeping none of it."""
    rows = batches = 0
    started = time.monotonic()
    first = None
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        for batch in cur.fetch_record_batch():
            if first is None:
                first = time.monotonic() - started
            rows += batch.num_rows
            batches += 1
    seconds = time.monotonic() - started
    return {
        "rows": rows,
        "batches": batches,
        "seconds": seconds,
        "first_batch_seconds": first,
        "rows_per_second": rows / seconds,
    }


def stream(rows: int, max_time: float) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "stream.duckdb"
    prepare(path, max_time)
    with Server(path) as server:
        generated = read_stream(server, f"SELECT * FROM generate('d', target => {rows}, seed => 1)")
        started = time.monotonic()
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE generated AS SELECT * FROM generate('d', target => {rows}, seed => 1)"
            )
        into_table = time.monotonic() - started
        table = read_stream(server, "SELECT * FROM generated")
        peak = server.peak_rss_mib()
    assert generated["rows"] == table["rows"] == rows, (generated["rows"], table["rows"])
    return {
        "rows": rows,
        "generate_streamed": generated,
        "generate_into_table_seconds": into_table,
        "generate_into_table_rows_per_second": rows / into_table,
        "table_read": table,
        "streamed_vs_table_read": generated["rows_per_second"] / table["rows_per_second"],
        "server_peak_rss_mib": peak,
    }


def latencies(server: Server, seconds: float, stop: threading.Event | None = None) -> dict:
    """One client's loop over SHAPES for ``seconds``: latencies per shape, errors."""
    times: dict[str, list[float]] = {name: [] for name in SHAPES}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    with server.connect() as conn, conn.cursor() as cur:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            for name, sql in SHAPES.items():
                started = time.monotonic()
                try:
                    cur.execute(sql)
                    result = cur.fetch_arrow_table()
                    if name.startswith("1,000") and (
                        result.num_rows != 1000 or set(result.column("cut").to_pylist()) != {"Fair"}
                    ):
                        errors.append(f"{name}: wrong result ({result.num_rows} rows)")
                except Exception as e:  # every failure is a finding, counted and reported
                    errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0]}")
                times[name].append(time.monotonic() - started)
    return {"times": times, "errors": errors}


def summary(times: list[float]) -> dict:
    if not times:
        return {"queries": 0}
    ordered = sorted(times)
    return {
        "queries": len(ordered),
        "p50_seconds": statistics.median(ordered),
        "p95_seconds": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max_seconds": ordered[-1],
    }


def clients(count: int, seconds: float, max_time: float) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "clients.duckdb"
    prepare(path, max_time)
    with Server(path) as server:
        alone = latencies(server, min(seconds, 20))
        training: dict = {}

        def train() -> None:
            started = time.monotonic()
            try:
                with server.connect() as conn, conn.cursor() as cur:
                    cur.execute(
                        f"FROM train('busy', 'diamonds', max_time => {seconds + 30}, seed => 2)"
                    )
                    cur.fetchall()
                training["seconds"] = time.monotonic() - started
            except Exception as e:
                training["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"

        trainer = threading.Thread(target=train)
        trainer.start()
        time.sleep(3)  # the training has begun its epochs
        results: list[dict] = [{} for _ in range(count)]

        def client(i: int) -> None:
            results[i] = latencies(server, seconds)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        training_running_at_end = trainer.is_alive()
        trainer.join()
        peak = server.peak_rss_mib()
    errors = [e for r in results for e in r["errors"]]
    return {
        "clients": count,
        "seconds": seconds,
        "errors": len(errors),
        "error_samples": errors[:10],
        "training": training,
        "training_still_running_when_clients_ended": training_running_at_end,
        "under_load": {
            name: summary([t for r in results for t in r["times"][name]]) for name in SHAPES
        },
        "one_client_idle_server": {name: summary(alone["times"][name]) for name in SHAPES},
        "one_client_errors": alone["errors"],
        "server_peak_rss_mib": peak,
    }


def report(part: str, result: dict) -> str:
    if part == "stream":
        g, t = result["generate_streamed"], result["table_read"]
        return "\n".join(
            [
                f"{result['rows']:,} rows of diamonds' model over Arrow Flight SQL (ADBC client)",
                "| read | seconds | first batch | rows/s |",
                "| --- | --- | --- | --- |",
                f"| generate() streamed | {g['seconds']:.1f} | {g['first_batch_seconds']:.2f} s "
                f"| {g['rows_per_second']:,.0f} |",
                f"| the same rows from a table | {t['seconds']:.1f} | "
                f"{t['first_batch_seconds']:.2f} s | {t['rows_per_second']:,.0f} |",
                f"streamed generation ÷ table read: {result['streamed_vs_table_read']:.3f}; "
                f"CREATE TABLE AS generate() on the server: "
                f"{result['generate_into_table_rows_per_second']:,.0f} rows/s; "
                f"server peak RSS {result['server_peak_rss_mib']} MiB",
            ]
        )
    lines = [
        f"{result['clients']} clients for {result['seconds']:.0f} s while a training runs: "
        f"{result['errors']} errors; training {result['training']}; "
        f"server peak RSS {result['server_peak_rss_mib']} MiB",
        "| query | queries | p50 | p95 | max | alone: p50 | alone: p95 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in SHAPES:
        u, a = result["under_load"][name], result["one_client_idle_server"][name]
        lines.append(
            f"| {name} | {u['queries']} | {u['p50_seconds']:.2f} s | {u['p95_seconds']:.2f} s | "
            f"{u['max_seconds']:.2f} s | {a['p50_seconds']:.2f} s | {a['p95_seconds']:.2f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["stream", "clients"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-time", type=float, default=60, help="training of model 'd'")
    args = parser.parse_args()
    if args.part == "stream":
        result = stream(args.rows, args.max_time)
    else:
        result = clients(args.clients, args.seconds, args.max_time)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    result["commit"] = commit
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"serve-{args.part}.json").write_text(json.dumps(result, indent=2))
    print(report(args.part, result))
    return 1 if result.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
