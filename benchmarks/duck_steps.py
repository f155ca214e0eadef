"""duck_synth's side of the foundation benchmark; each step runs in its own process.

Runs in the project's Python (where duck_synth is installed). Data reaches the peers as Parquet
files in the work folder; the model lives in the work folder's DuckDB database.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
from step_io import Stopwatch, main

import duck_synth

MODEL = "d"
TABLE = "diamonds"
LEVELS = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}
COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]


def split(args: dict) -> dict:
    """Drop R's row index, shuffle with a fixed seed, write train and holdout Parquet files."""
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    frame = duckdb.sql(f"SELECT {names} FROM read_csv('{args['csv']}')").df()
    order = np.random.default_rng(args["seed"]).permutation(len(frame))
    n_holdout = round(len(frame) * args["holdout_share"])
    holdout = frame.iloc[order[:n_holdout]].reset_index(drop=True)
    train = frame.iloc[order[n_holdout:]].reset_index(drop=True)
    train.to_parquet(args["train"], index=False)
    holdout.to_parquet(args["holdout"], index=False)
    return {"rows": len(frame), "train_rows": len(train), "holdout_rows": len(holdout)}


def _load_train_table(con: duckdb.DuckDBPyConnection, train_path: str) -> None:
    """The train split as a table, the three ordered categoricals as ENUMs."""
    for column, levels in LEVELS.items():
        values = ", ".join(f"'{v}'" for v in levels)
        con.execute(f"CREATE TYPE {column}_level AS ENUM ({values})")
    items = [f'"{c}"::{c}_level AS "{c}"' if c in LEVELS else f'"{c}"' for c in COLUMNS]
    con.execute(
        f"CREATE TABLE {TABLE} AS SELECT {', '.join(items)} FROM read_parquet('{train_path}')"
    )


def train(args: dict) -> dict:
    """A fresh database, the train split loaded, then train() timed."""
    database = Path(args["database"])
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    session = duck_synth.connect(str(database))
    _load_train_table(session.con, args["train"])
    query = (
        f"FROM train('{MODEL}', '{TABLE}', max_time => {args['max_time']}, seed => {args['seed']})"
    )
    with Stopwatch() as watch:
        result = session.sql(query)
    summary = dict(zip(result.columns, result.fetchone(), strict=True))
    session.close()
    return {"query": query, "seconds": watch.seconds, "summary": summary}


def sample(args: dict) -> dict:
    """As many synthetic rows as the file ``like`` has (the train split), written to Parquet."""
    rows = pq.read_metadata(args["like"]).num_rows
    session = duck_synth.connect(args["database"])
    query = f"SELECT * FROM generate('{MODEL}', target => {rows}, seed => {args['seed']})"
    with Stopwatch() as watch:
        table = session.sql(query).arrow()
    pq.write_table(table, args["output"])
    session.close()
    return {"query": query, "rows": table.num_rows, "seconds": watch.seconds}


def _last_generation(session: duck_synth.Session) -> dict:
    row = session.sql(
        "SELECT rows_drawn, rows_returned, seconds FROM synth.generations "
        "ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    return {"rows_drawn": row[0], "rows_returned": row[1], "generate_seconds": row[2]}


def generate(args: dict) -> dict:
    """``CREATE TABLE ... AS`` generate(), optionally under a WHERE, timed end to end."""
    session = duck_synth.connect(args["database"])
    where = f" WHERE {args['where']}" if args.get("where") else ""
    source = f"generate('{MODEL}', target => {args['rows']}, seed => {args['seed']})"
    query = f"CREATE TABLE generated AS SELECT * FROM {source}{where}"
    session.sql("DROP TABLE IF EXISTS generated")
    with Stopwatch() as watch:
        session.sql(query)
    rows = session.sql("SELECT count(*) FROM generated").fetchone()[0]
    figures = {
        "query": query,
        "explain": session.explain(query),
        "rows": rows,
        "seconds": watch.seconds,
        "rows_per_second": rows / watch.seconds,
        **_last_generation(session),
    }
    if where:
        figures["rows_failing_where"] = session.sql(
            f"SELECT count(*) FROM generated WHERE NOT ({args['where']})"
        ).fetchone()[0]
    session.sql("DROP TABLE generated")
    session.sql("CHECKPOINT")
    session.close()
    return figures


def versions(args: dict) -> dict:
    """duck_synth's own versions, and what the machine offers."""
    import torch

    return {
        "duck_synth": duck_synth.__version__,
        "duckdb": duckdb.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    main(
        {
            "split": split,
            "train": train,
            "sample": sample,
            "generate": generate,
            "versions": versions,
        }
    )
