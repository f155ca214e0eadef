"""Free text on ggplot2's movies: titles written by the text model, judged against a holdout.

    python benchmarks/text.py                      # 80/20 split, max_time 300 s
    python benchmarks/text.py --max-time 120 --rows 20000

The titles (with year, length, rating, votes, mpaa and the genre flags) are shuffled with seed 0
and split 80/20; a model is trained on the 80 (title as kind ``text``, chosen automatically)
and generates as many rows. evaluate() against the train split gives the text rows: length
KSComplement, character 3-gram similarity and the share of exact copies, each beside the
holdout's own figure (the ceiling, and how often unseen real titles repeat a training one). The
report goes to benchmarks/results/text.md and is printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duck_synth

DATA = Path("/work/shared/bench/data/movies.csv")
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = "title, year, length, rating, votes, mpaa, Action, Animation, Comedy, Drama, Documentary, Romance, Short"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=300)
    parser.add_argument("--rows", type=int, default=None, help="use only this many movies")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        s = duck_synth.connect(str(Path(work) / "text.duckdb"))
        limit = f" LIMIT {int(args.rows)}" if args.rows else ""
        s.sql(
            f"CREATE TABLE movies AS SELECT {COLUMNS} FROM read_csv('{DATA}', nullstr = 'NA') "
            f"ORDER BY hash(title || year || length) {limit}"
        )
        s.sql("CREATE TABLE seen AS FROM movies USING SAMPLE 80 PERCENT (reservoir, 0)")
        s.sql("CREATE TABLE unseen AS FROM movies EXCEPT ALL FROM seen")
        started = time.monotonic()
        summary = s.sql(
            f"FROM train('m', 'seen', max_time => {args.max_time}, seed => {args.seed})"
        ).fetchall()
        fit = time.monotonic() - started
        kinds = dict(s.sql("SELECT \"column\", kind FROM describe_model('m')").fetchall())
        metrics = json.loads(
            s.sql("SELECT metrics FROM synth.models WHERE name = 'm'").fetchone()[0]
        )
        summary = (*summary[0][:6], f"{summary[0][6]} + text {metrics['text.title']['epochs']}")
        started = time.monotonic()
        s.sql(f"CREATE TABLE synthetic AS FROM generate('m', seed => {args.seed})")
        generated = time.monotonic() - started
        rows = s.sql(
            "SELECT metric, value, detail FROM evaluate('seen', 'synthetic', holdout => 'unseen') "
            "WHERE columns = 'title' OR metric = 'overall'"
        ).fetchall()
        examples = [r[0] for r in s.sql("SELECT title FROM synthetic LIMIT 12").fetchall()]
        counts = s.sql("SELECT count(*) FROM seen UNION ALL SELECT count(*) FROM unseen").fetchall()
        s.close()
    report(args, kinds["title"], summary, fit, generated, rows, examples, counts)


def report(args, kind, summary, fit, generated, rows, examples, counts) -> None:
    lines = [
        "# Text columns: movies' titles",
        "",
        f"`python benchmarks/text.py --max-time {args.max_time:g}"
        + (f" --rows {args.rows}" if args.rows else "")
        + f"` — train {counts[0][0]:,} rows, holdout {counts[1][0]:,}; title encoded as `{kind}`;"
        f" fit {fit:.0f} s ({summary[6]} epochs), generation {generated:.1f} s",
        "",
        "| metric | synthetic vs train | holdout vs train |",
        "| --- | --- | --- |",
    ]
    for metric, value, detail in rows:
        holdout = json.loads(detail).get("holdout") if detail else None
        shown = "" if holdout is None else f"{holdout:.3f}"
        lines.append(f"| {metric} | {value:.3f} | {shown} |")
    lines += ["", "Examples: " + "; ".join(repr(e) for e in examples)]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "text.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
