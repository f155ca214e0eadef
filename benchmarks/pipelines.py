"""Pipeline inference benchmark (issue 20): latency of a deployed generate pipeline.

    python benchmarks/pipelines.py [--calls 200] [--clients 16] [--max-time 30]

A database with diamonds and model 'd' (benchmarks/serve.py's ``prepare``) is served by the
real server (``duck-synth serve``, its own process); an admin client creates and deploys
``testdata`` = [{'generate': 'd'}, {'validation': 'cheap', 'check': 'price >= 800'}], and ADBC
clients call ``infer()``:

- 1 row per call: ``input => [{'carat': ?, 'cut': 'Ideal'}]`` with a bound parameter;
- 100 rows per call: ``input => 'SELECT .. FROM range(100)'``;

each by one client alone (``--calls`` calls after 20 warm-up calls), then by ``--clients``
threads at once, each on its own connection (``--calls`` calls each, shapes alternating):
p50/p95 per shape and calls per second.

Logging overhead: the same two calls in this process on a copy of the database (no server),
with the inference log written as it is and with ``pipelines.logs.write`` replaced by a no-op,
in alternating blocks of 20 calls (10 blocks each, so drift hits both alike): the share of a
call's time the log takes.

Results: benchmarks/results/pipelines.json, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import RESULTS, Server, prepare, summary  # noqa: E402

WORK = RESULTS / "pipelines"
ONE_ROW = "SELECT \"out.price\" FROM infer('testdata', input => [{'carat': ?, 'cut': 'Ideal'}])"
HUNDRED_ROWS = (
    "SELECT \"out.price\" FROM infer('testdata', input => "
    "'SELECT 0.3 + i / 50 AS carat, ''Ideal'' AS cut FROM range(100) t(i)')"
)
SHAPES = {"1 row": (ONE_ROW, 1), "100 rows": (HUNDRED_ROWS, 100)}
PIPELINE = (
    "FROM create_pipeline('testdata', steps => [{'generate': 'd'}, "
    "{'validation': 'cheap', 'check': 'price >= 800'}])"
)


def call(cur, shape: str, i: int) -> float:
    sql, rows = SHAPES[shape]
    started = time.monotonic()
    cur.execute(sql, (0.3 + (i % 100) / 50,) if rows == 1 else None)
    got = cur.fetch_arrow_table().num_rows
    if got != rows:
        raise AssertionError(f"{shape}: {got} rows")
    return time.monotonic() - started


def alone(server: Server, calls: int) -> dict:
    result = {}
    with server.connect() as conn, conn.cursor() as cur:
        for shape in SHAPES:
            for i in range(20):
                call(cur, shape, i)
            result[shape] = summary([call(cur, shape, i) for i in range(calls)])
    return result


def together(server: Server, clients: int, calls: int) -> dict:
    times: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    errors: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with server.connect() as conn, conn.cursor() as cur:
            for i in range(calls):
                shape = list(SHAPES)[(i + k) % len(SHAPES)]
                try:
                    seconds = call(cur, shape, i)
                except Exception as error:  # every failure is a finding, counted and reported
                    with lock:
                        errors.append(f"{shape}: {str(error).splitlines()[0]}")
                    continue
                with lock:
                    times[shape].append(seconds)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    done = sum(len(t) for t in times.values())
    return {
        **{shape: summary(t) for shape, t in times.items()},
        "calls_per_second": done / wall,
        "errors": errors[:10],
        "error_count": len(errors),
    }


def logging_overhead(path: Path) -> dict:
    """Seconds per call with the log written and without, alternating blocks in one process."""
    import duck_synth
    from duck_synth.pipelines import logs

    copy = WORK / "overhead.duckdb"
    shutil.copy(path, copy)
    s = duck_synth.connect(str(copy))
    real_write = logs.write
    per: dict[tuple[str, bool], list[float]] = {}
    queries = {
        "1 row": "FROM infer('testdata', input => [{'carat': 0.7, 'cut': 'Ideal'}])",
        "100 rows": HUNDRED_ROWS,
    }
    for shape, sql in queries.items():
        for _ in range(5):
            s.sql(sql)
        for block in range(20):
            logged = block % 2 == 0
            logs.write = real_write if logged else (lambda *a, **k: None)
            started = time.monotonic()
            for _ in range(20):
                s.sql(sql)
            per.setdefault((shape, logged), []).append((time.monotonic() - started) / 20)
    logs.write = real_write
    s.close()
    result = {}
    for shape in queries:
        with_log = statistics.median(per[(shape, True)])
        without = statistics.median(per[(shape, False)])
        result[shape] = {
            "with_log_ms": 1000 * with_log,
            "without_log_ms": 1000 * without,
            "overhead_share": (with_log - without) / with_log,
        }
    return result


def report(result: dict) -> str:
    lines = [
        "| clients | rows per call | calls | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, part in (("1", result["alone"]), (str(result["clients"]), result["together"])):
        for shape in SHAPES:
            f = part[shape]
            lines.append(
                f"| {label} | {shape} | {f['queries']} | {1000 * f['p50_seconds']:.1f} | "
                f"{1000 * f['p95_seconds']:.1f} |"
            )
    lines += [
        "",
        f"{result['clients']} clients: {result['together']['calls_per_second']:.1f} calls/s, "
        f"{result['together']['error_count']} errors",
        "",
        "| rows per call | with log ms | without log ms | log's share |",
        "| --- | --- | --- | --- |",
    ]
    for shape, f in result["logging"].items():
        lines.append(
            f"| {shape} | {f['with_log_ms']:.1f} | {f['without_log_ms']:.1f} | "
            f"{100 * f['overhead_share']:.1f}% |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-time", type=float, default=30)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "pipelines.duckdb"
    prepare(path, args.max_time)
    with Server(path) as server:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(PIPELINE)
            cur.execute("FROM deploy('testdata')")
        result = {"clients": args.clients, "calls": args.calls}
        result["alone"] = alone(server, args.calls)
        result["together"] = together(server, args.clients, args.calls // 4)
    result["logging"] = logging_overhead(path)
    (RESULTS / "pipelines.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
