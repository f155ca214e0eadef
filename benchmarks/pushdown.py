"""Filter pushdown through a BI tool's wrapping (issue 17): what a rare filter costs.

    python benchmarks/pushdown.py [--target 20000] [--epochs 4] [--repeats 3]

A model trained on diamonds (seeded); then, each timed ``--repeats`` times (median reported):
an unconditional draw of ``--target`` rows, the plain form with the rare filter cut = 'Fair'
(about 3% of diamonds), and Superset's wrapped form of the same query (``SELECT cut, COUNT(*)
FROM (SELECT * FROM generate(...)) AS virtual_table WHERE cut = 'Fair' GROUP BY cut LIMIT
100``). Goal: the wrapped form costs at most 1.5x the unconditional draw, as the plain form
does, and returns COUNT(*) = target. Rows drawn per generation come from synth.generations.

Results: benchmarks/results/pushdown.json, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duck_synth

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "examples" / "data"
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pushdown-"))
    session = duck_synth.connect(str(folder / "bench.duckdb"))
    table = (DATA / "diamonds.sql").read_text().format(parquet=DATA / "diamonds.parquet")
    session.sql(table)
    session.sql(f"FROM train('d', 'diamonds', epochs => {args.epochs}, seed => 7)")
    n = args.target
    queries = {
        "unconditional": f"SELECT * FROM generate('d', target => {n}, seed => 1)",
        "plain filter": f"SELECT * FROM generate('d', target => {n}, seed => 1) WHERE cut = 'Fair'",
        "superset wrapped": (
            f"SELECT cut, COUNT(*) FROM (SELECT * FROM generate('d', target => {n}, seed => 1)) "
            "AS virtual_table WHERE cut = 'Fair' GROUP BY cut LIMIT 100"
        ),
    }
    rows = []
    for name, sql in queries.items():
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = session.sql(sql).df()
            seconds.append(time.perf_counter() - started)
        drawn, returned = session.con.execute(
            "SELECT rows_drawn, rows_returned FROM synth.generations "
            "ORDER BY generation_id DESC LIMIT 1"
        ).fetchone()
        count = int(result.iloc[0, 1]) if name == "superset wrapped" else len(result)
        rows.append(
            {
                "query": name,
                "median_s": round(statistics.median(seconds), 3),
                "rows": count,
                "rows_drawn": drawn,
                "rows_returned": returned,
            }
        )
    base = rows[0]["median_s"]
    for row in rows:
        row["vs_unconditional"] = round(row["median_s"] / base, 2)
    session.close()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pushdown.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"{'query':<18} {'median s':>9} {'x uncond.':>9} {'rows':>7} {'drawn':>7}")
    for row in rows:
        print(
            f"{row['query']:<18} {row['median_s']:>9.3f} {row['vs_unconditional']:>9.2f} "
            f"{row['rows']:>7} {row['rows_drawn']:>7}"
        )


if __name__ == "__main__":
    main()
