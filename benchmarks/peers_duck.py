"""duck_synth's steps for both benchmarks (project Python); each step runs in its own process.

Steps: split a dataset, train duck_synth, sample it, generate into a table (foundation's speed
figures), and score any synthetic set with the engine's own ``evaluate()``. Data reaches the
other methods as Parquet files; the model lives in the work folder's DuckDB database.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
from step_io import Stopwatch, main, rate

import duck_synth

MODEL = "m"  # the model's name unless the arguments give ``model``
TABLE = "real_train"  # the train split's table unless the arguments give ``table``


def split(args: dict) -> dict:
    """Read the CSV (R's index and ``drop`` columns left out), shuffle, split 80/20 to Parquet.

    ``subsample`` (quick mode) keeps that many rows of the shuffled data before splitting.
    """
    con = duckdb.connect()
    source = f"read_csv('{args['csv']}', nullstr = 'NA')"
    columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    kept = [c for c in columns[1:] if c not in args.get("drop", [])]  # columns[0]: R's index
    names = ", ".join(f'"{c}"' for c in kept)
    frame = con.sql(f"SELECT {names} FROM {source}").df()
    order = np.random.default_rng(args["seed"]).permutation(len(frame))
    if args.get("subsample"):
        order = order[: args["subsample"]]
    n_holdout = round(len(order) * args["holdout_share"])
    holdout = frame.iloc[order[:n_holdout]].reset_index(drop=True)
    train = frame.iloc[order[n_holdout:]].reset_index(drop=True)
    train.to_parquet(args["train"], index=False)
    holdout.to_parquet(args["holdout"], index=False)
    return {
        "rows": len(frame),
        "columns": kept,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
    }


def _load_train(con: duckdb.DuckDBPyConnection, table: str, path: str, levels: dict) -> None:
    """The train split as a table; each column in ``levels`` as an ordered ENUM of those values."""
    casts = []
    for column, values in levels.items():
        items = ", ".join(f"'{v}'" for v in values)
        con.execute(f"CREATE TYPE {column}_level AS ENUM ({items})")
        casts.append(f'"{column}"::{column}_level AS "{column}"')
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    con.execute(f"CREATE TABLE {table} AS SELECT *{replace} FROM read_parquet('{path}')")


def train(args: dict) -> dict:
    """A fresh database, the train split loaded as a table, then train() timed."""
    database = Path(args["database"])
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    session = duck_synth.connect(str(database))
    table = args.get("table", TABLE)
    _load_train(session.con, table, args["train"], args.get("levels", {}))
    query = (
        f"FROM train('{args.get('model', MODEL)}', '{table}', max_time => {args['max_time']}, "
        f"seed => {args['seed']})"
    )
    with Stopwatch() as watch:
        result = session.sql(query)
    summary = dict(zip(result.columns, result.fetchone(), strict=True))
    session.close()
    return {"query": query, "seconds": watch.seconds, "summary": summary}


def sample(args: dict) -> dict:
    """As many synthetic rows as the file ``like`` has (the train split), timed, to Parquet."""
    rows = pq.read_metadata(args["like"]).num_rows
    session = duck_synth.connect(args["database"])
    model = args.get("model", MODEL)
    query = f"SELECT * FROM generate('{model}', target => {rows}, seed => {args['seed']})"
    with Stopwatch() as watch:
        table = session.sql(query).arrow()
    pq.write_table(table, args["output"])
    session.close()
    return {"query": query, **rate(table.num_rows, watch.seconds)}


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
    source = (
        f"generate('{args.get('model', MODEL)}', target => {args['rows']}, seed => {args['seed']})"
    )
    query = f"CREATE TABLE generated AS SELECT * FROM {source}{where}"
    session.sql("DROP TABLE IF EXISTS generated")
    with Stopwatch() as watch:
        session.sql(query)
    rows = session.sql("SELECT count(*) FROM generated").fetchone()[0]
    figures = {
        "query": query,
        "explain": session.explain(query),
        **rate(rows, watch.seconds),
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


def evaluate(args: dict) -> dict:
    """duck_synth's evaluate() of ``synthetic`` against the real train split.

    With ``holdout``: privacy rows too; the TSTR utility always tests on the holdout when one
    is given. The ceiling passes the holdout as the synthetic set and no privacy holdout.
    """
    session = duck_synth.connect(":memory:")
    for name in ("real", "synthetic", "holdout"):
        if args.get(name):
            session.con.execute(f"CREATE TABLE {name}_t AS FROM read_parquet('{args[name]}')")
    options = []
    if args.get("holdout"):
        options.append("holdout => 'holdout_t'")
    if args.get("target"):
        options.append(f"target => '{args['target']}'")
    query = f"FROM evaluate('real_t', 'synthetic_t'{''.join(', ' + o for o in options)})"
    figures: dict = {}
    try:
        with Stopwatch() as watch:
            result = session.sql(query).fetchall()
    except duck_synth.errors.SynthError as error:
        if not args.get("target"):
            raise
        # The utility part failed (seen: a feature all NULL in the synthetic set); keep the
        # rest of evaluate() and say why utility is missing.
        figures["utility_error"] = str(error).splitlines()[0][:200]
        query = query.replace(f", target => '{args['target']}'", "")
        with Stopwatch() as watch:
            result = session.sql(query).fetchall()
    figures |= {"query": query, "seconds": watch.seconds}
    wanted = {"overall", "shapes", "pair_trends", "dcr_share", "exact_copy_rate", "nndr_mean"}
    wanted |= {"utility_ratio"}
    for metric, _columns, value, detail in result:
        if metric in wanted or metric.startswith(("tstr_", "trtr_")):
            figures[metric] = value
        detail = json.loads(detail) if isinstance(detail, str) else (detail or {})
        if metric == "utility_ratio":
            figures["utility_task"] = detail.get("task")
            primary = detail.get("primary")
            figures["utility_primary"] = primary
            figures["tstr_primary"] = (detail.get("tstr") or {}).get(primary)
            figures["trtr_primary"] = (detail.get("trtr") or {}).get(primary)
        if metric == "pair_trends":
            figures["pair_trends_all"] = detail.get("all_pairs")
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
            "evaluate": evaluate,
            "versions": versions,
        }
    )
