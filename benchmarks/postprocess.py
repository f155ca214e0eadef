"""Post-processing benchmarks (issue 5): equalize by conditional generation, and volume.

    python benchmarks/postprocess.py equalize [--max-time 300]
    python benchmarks/postprocess.py volume [--rows 50000000] [--kill-after 150]

equalize: a model trained on diamonds; generate(equalize => 'cut') against the real rows
resampled to equal cut shares, and unconditional generation against the real rows, both judged
by evaluate() (shapes, pair trends, overall). Goal: cut shares within 2 points of 20%, and the
equalized pair trends as close to the equalized real data as unconditional ones are to the real.
Also a rule (no Ideal cut in colours I, J) kept by constraints and by resample(model => ...):
rows breaking it, and the other columns' shapes against the real data before and after.

volume: generate_into() of ``--rows`` rows into a table, killed with SIGKILL after
``--kill-after`` seconds and resumed (each part in its own process, peak RSS read from
/proc/<pid>/status while it runs); then the same rows written to a Parquet file with
COPY (FROM generate(...)) TO. Reports rows/s of both, the peak RSS of each process, and checks
the table holds exactly the rows asked, each key once. ``--memory-limit 1GB`` sets DuckDB's
memory_limit in those processes: appended rows stay in DuckDB's buffer pool until a checkpoint,
which cannot run while the statement that appends is open, so by default the pool grows toward
DuckDB's default limit (80% of RAM) before it spills to disk.

Results: benchmarks/results/postprocess-<part>.json, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
WORK = RESULTS / "postprocess"
DIAMONDS = REPO / "examples" / "data" / "diamonds.parquet"
DIAMONDS_SQL = (REPO / "examples" / "data" / "diamonds.sql").read_text()


def run_python(code: str, kill_after: float | None = None) -> dict:
    """Run ``code`` in a fresh Python; returns seconds, peak RSS (MiB), killed, and the JSON the
    code printed on its last line (if it finished)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    peak, killed = 0, False
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
        except OSError:
            pass
        if kill_after is not None and time.monotonic() - started > kill_after:
            os.kill(process.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    out, err = process.communicate()
    seconds = time.monotonic() - started
    if not killed and process.returncode != 0:
        raise RuntimeError(f"step failed:\n{err[-2000:]}")
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    return {"seconds": seconds, "peak_rss_mib": peak, "killed": killed, "result": json.loads(last)}


def equalize(max_time: float) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "equalize.duckdb"
    path.unlink(missing_ok=True)
    result = run_python(equalize_code(path, max_time))["result"]
    worst = max(abs(v - 0.2) for v in result["equalized_shares"].values())
    result["worst_share_gap_points"] = 100 * worst
    eq = result["equalized_vs_real_equalized"]["pair_trends"]
    plain = result["plain_vs_real"]["pair_trends"]
    result["goal"] = {
        "shares_within_2_points": worst <= 0.02,
        "pair_trends_as_close": eq >= plain - 0.01,
    }
    return result


def equalize_code(path: Path, max_time: float) -> str:
    return f"""
        import json, duck_synth
        s = duck_synth.connect({str(path)!r})
        s.sql({DIAMONDS_SQL.format(parquet=DIAMONDS)!r})
        s.sql("FROM train('d', 'diamonds', max_time => {max_time}, seed => 1)")
        n = s.sql("SELECT count(*) FROM diamonds").fetchone()[0]
        s.sql(f"CREATE TABLE eq AS FROM generate('d', target => {{n}}, equalize => 'cut', seed => 2)")
        s.sql(f"CREATE TABLE plain AS FROM generate('d', target => {{n}}, seed => 3)")
        # the real rows resampled to equal cut shares: n/5 rows of each cut, with replacement
        s.sql(f'''CREATE TABLE real_eq AS
                  WITH numbered AS (
                      SELECT *, row_number() OVER (PARTITION BY cut ORDER BY price, carat, x, y, z, depth) - 1 AS rn,
                             count(*) OVER (PARTITION BY cut) AS m FROM diamonds),
                  picks AS (
                      SELECT c.cut, hash(k, c.cut) % c.m AS rn
                      FROM (SELECT DISTINCT cut, m FROM numbered) c, range({{n}} // 5) r(k))
                  SELECT numbered.* EXCLUDE (rn, m) FROM picks JOIN numbered USING (cut, rn)''')
        def scores(real, syn):
            rows = s.sql(f"FROM evaluate('{{real}}', '{{syn}}')").fetchall()
            return {{m: v for m, c, v, _ in rows if m in ('overall', 'shapes', 'pair_trends')}}
        # a rule: no Ideal cut in the two worst colours; fixed by constraints and by resample
        rule = "cut <> 'Ideal' OR color NOT IN ('I', 'J')"
        breaks = rule.replace("'", "''")
        s.sql(f"CREATE TABLE ruled AS FROM generate('d', target => {{n}}, seed => 3, constraints => ['{{breaks}}'])")
        acceptance = s.sql("SELECT acceptance FROM generations() ORDER BY generation_id DESC LIMIT 1").fetchone()[0]
        s.sql(f"CREATE TABLE replaced AS FROM resample('plain', 'color', condition => 'NOT ({{breaks}})', model => 'd', seed => 4)")
        others = ['carat', 'clarity', 'depth', 'table', 'price', 'x', 'y', 'z']
        def other_shapes(real, syn):
            rows = s.sql(f"FROM evaluate('{{real}}', '{{syn}}', columns => {{others}})").fetchall()
            return {{m: v for m, c, v, _ in rows if m == 'shapes'}}['shapes']
        rules = {{
            "rule": rule,
            "plain_breaking": s.sql(f"SELECT count(*) FILTER (WHERE NOT ({{rule}})) FROM plain").fetchone()[0],
            "constrained_breaking": s.sql(f"SELECT count(*) FILTER (WHERE NOT ({{rule}})) FROM ruled").fetchone()[0],
            "replaced_breaking": s.sql(f"SELECT count(*) FILTER (WHERE NOT ({{rule}})) FROM replaced").fetchone()[0],
            "constraint_acceptance": acceptance,
            "other_shapes_plain": other_shapes("diamonds", "plain"),
            "other_shapes_constrained": other_shapes("diamonds", "ruled"),
            "other_shapes_replaced": other_shapes("diamonds", "replaced"),
            "color_shape_plain": s.sql("SELECT value FROM evaluate('diamonds', 'plain', columns => ['color']) WHERE metric = 'shapes'").fetchone()[0],
            "color_shape_replaced": s.sql("SELECT value FROM evaluate('diamonds', 'replaced', columns => ['color']) WHERE metric = 'shapes'").fetchone()[0],
        }}
        shares = dict(s.sql("SELECT cut, count(*) / sum(count(*)) OVER () FROM eq GROUP BY cut").fetchall())
        real_shares = dict(s.sql("SELECT cut, count(*) / sum(count(*)) OVER () FROM diamonds GROUP BY cut").fetchall())
        fit = s.sql("SELECT json_extract(metrics, '$.seconds') FROM models()").fetchone()[0]
        print(json.dumps({{
            "rows": n, "fit_seconds": float(fit),
            "equalized_shares": {{str(k): v for k, v in shares.items()}},
            "real_shares": {{str(k): v for k, v in real_shares.items()}},
            "equalized_vs_real_equalized": scores("real_eq", "eq"),
            "plain_vs_real": scores("diamonds", "plain"),
            "equalized_vs_real": scores("diamonds", "eq"),
            "rules": rules,
        }}))
    """


def volume(rows: int, kill_after: float, batch_size: int, memory_limit: str | None) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "volume.duckdb"
    parquet = WORK / "volume.parquet"
    for p in (path, Path(f"{path}.wal"), parquet):
        p.unlink(missing_ok=True)
    setup = f"""
        import duck_synth
        s = duck_synth.connect({str(path)!r})
        s.sql({DIAMONDS_SQL.format(parquet=DIAMONDS)!r})
        s.sql("CREATE TABLE keyed AS SELECT row_number() OVER () AS id, * FROM diamonds")
        s.sql("FROM train('keyed', 'keyed', epochs => 2, seed => 1)")
        print('{{}}')
    """
    run_python(setup)
    limit = f"s.sql(\"SET memory_limit = '{memory_limit}'\")" if memory_limit else ""
    into = f"""
        import json, duck_synth
        s = duck_synth.connect({str(path)!r})
        {limit}
        r = s.sql("FROM generate_into('big', 'keyed', target => {rows}, batch_size => {batch_size}, seed => 7)").df()
        print(json.dumps({{k: (v.item() if hasattr(v, 'item') else v) for k, v in r.iloc[0].items()}}))
    """
    first = run_python(into, kill_after=kill_after)
    count = f"""
        import json, duck_synth
        s = duck_synth.connect({str(path)!r}, read_only=True)
        n, d, lo, hi = s.sql("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM big").fetchone()
        print(json.dumps({{"rows": n, "distinct_ids": d, "min_id": lo, "max_id": hi}}))
    """
    after_kill = run_python(count)["result"]
    second = run_python(into)
    final = run_python(count)["result"]
    to_parquet = f"""
        import json, duck_synth
        s = duck_synth.connect({str(path)!r})
        {limit}
        s.sql("COPY (FROM generate('keyed', target => {rows}, batch_size => {batch_size}, seed => 7)) TO '{parquet}' (FORMAT parquet)")
        print(json.dumps({{"bytes": {str(parquet)!r} and __import__('os').path.getsize({str(parquet)!r})}}))
    """
    parquet_run = run_python(to_parquet)
    table_seconds = first["seconds"] + second["seconds"]
    result = {
        "rows": rows,
        "batch_size": batch_size,
        "duckdb_memory_limit": memory_limit or "default (80% of RAM)",
        "killed_after_seconds": first["seconds"] if first["killed"] else None,
        "rows_at_kill": after_kill["rows"],
        "resumed": second["result"],
        "final": final,
        "table_seconds_both_processes": table_seconds,
        "table_rows_per_second": rows / table_seconds,
        "table_peak_rss_mib": max(first["peak_rss_mib"], second["peak_rss_mib"]),
        "parquet_seconds": parquet_run["seconds"],
        "parquet_rows_per_second": rows / parquet_run["seconds"],
        "parquet_peak_rss_mib": parquet_run["peak_rss_mib"],
        "parquet_bytes": parquet_run["result"]["bytes"],
    }
    result["table_vs_parquet_speed"] = (
        result["table_rows_per_second"] / result["parquet_rows_per_second"]
    )
    result["goal"] = {
        "exactly_the_rows_each_once": final
        == {"rows": rows, "distinct_ids": rows, "min_id": 1, "max_id": rows},
        "interrupted_mid_run": 0 < after_kill["rows"] < rows,
        "peak_rss_under_2_gib": result["table_peak_rss_mib"] < 2048,
    }
    for p in (parquet,):
        p.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["equalize", "volume"])
    parser.add_argument("--max-time", type=float, default=300.0)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--kill-after", type=float, default=150.0)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB's memory_limit for the volume processes"
    )
    args = parser.parse_args()
    if args.part == "equalize":
        result = equalize(args.max_time)
    else:
        result = volume(args.rows, args.kill_after, args.batch_size, args.memory_limit)
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.memory_limit}" if args.part == "volume" and args.memory_limit else ""
    out = RESULTS / f"postprocess-{args.part}{suffix}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
