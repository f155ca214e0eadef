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

    Instead of ``csv``, ``query``: a DuckDB query whose rows are the data, all its columns kept
    (in UTC; session data such as flights joined to their planes, ordered to break ties).
    ``subsample`` (quick mode) keeps that many rows of the shuffled data before splitting.
    With ``session_key``, the sessions (the key's distinct values) are shuffled and split, never
    their rows: each session lies whole in one part, its rows sorted by key and ``order_by``
    (stable: rows with equal keys and order values stay in the source's order); ``subsample``
    then counts sessions.
    """
    con = duckdb.connect()
    if args.get("query"):
        con.execute("SET TimeZone = 'UTC'")
        source = f"({args['query']})"
        columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        kept = [c for c in columns if c not in args.get("drop", [])]
    else:
        source = f"read_csv('{args['csv']}', nullstr = 'NA')"
        columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        kept = [c for c in columns[1:] if c not in args.get("drop", [])]  # columns[0]: R's index
    names = ", ".join(f'"{c}"' for c in kept)
    frame = con.sql(f"SELECT {names} FROM {source}").df()
    key = args.get("session_key")
    if key:
        frame = frame.sort_values([key, args["order_by"]], kind="stable")
        units = np.sort(frame[key].unique())  # sessions, shuffled below instead of rows
    else:
        units = np.arange(len(frame))
    order = np.random.default_rng(args["seed"]).permutation(len(units))
    if args.get("subsample"):
        order = order[: args["subsample"]]
    n_holdout = round(len(order) * args["holdout_share"])
    parts = {"holdout": order[:n_holdout], "train": order[n_holdout:]}
    figures = {"rows": len(frame), "columns": kept}
    for part, chosen in parts.items():
        if key:
            rows = frame[frame[key].isin(units[chosen])].reset_index(drop=True)
            figures[f"{part}_sessions"] = len(chosen)
        else:
            rows = frame.iloc[chosen].reset_index(drop=True)
        rows.to_parquet(args[part], index=False)
        figures[f"{part}_rows"] = len(rows)
    return figures


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
    """A fresh database, the train split loaded as a table, then train() timed.

    ``max_time`` None or absent: train()'s default budget. Optional arguments become train()'s
    options of the same name: ``method``, ``epochs``, ``epsilon``, ``rare_threshold``,
    ``dp_statistics_share`` (as ``statistics_share``), and for session data ``session_key`` and
    ``order_by``. A method that train() says is "not available yet" is no failure: the figures
    say ``unavailable`` and why.
    """
    database = Path(args["database"])
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    session = duck_synth.connect(str(database))
    table = args.get("table", TABLE)
    _load_train(session.con, table, args["train"], args.get("levels", {}))
    options = [f"seed => {args['seed']}"]  # no max_time: train()'s own default budget
    options += [f"max_time => {args['max_time']}"] if args.get("max_time") else []
    options += [f"epochs => {args['epochs']}"] if args.get("epochs") else []
    options += [f"epsilon => {args['epsilon']}"] if args.get("epsilon") else []
    if args.get("rare_threshold"):  # 1: no value protection (rare values and extremes kept)
        options.append(f"rare_threshold => {args['rare_threshold']}")
    if args.get("statistics_share"):
        options.append(f"dp_statistics_share => {args['statistics_share']}")
    options += [f"{o} => '{args[o]}'" for o in ("method", "session_key", "order_by") if o in args]
    query = f"FROM train('{args.get('model', MODEL)}', '{table}', {', '.join(options)})"
    try:
        with Stopwatch() as watch:
            result = session.sql(query)
    except duck_synth.errors.SynthError as error:
        if "not available" not in str(error):
            raise
        session.close()
        return {"query": query, "unavailable": str(error).splitlines()[0]}
    summary = dict(zip(result.columns, result.fetchone(), strict=True))
    session.close()
    return {
        "query": query,
        "seconds": watch.seconds,
        "epochs": summary["epochs"],
        "epsilon": summary.get("epsilon"),
        "summary": summary,
    }


def sample(args: dict) -> dict:
    """As many synthetic rows as the file ``like`` has (the train split), or ``rows``, timed,
    to Parquet.

    With ``session_key`` (a session model): generate()'s default target instead, as many
    sessions as the model was trained on (or ``sessions``); the figures count them too.
    """
    session = duck_synth.connect(args["database"])
    model = args.get("model", MODEL)
    if args.get("session_key"):  # ``sessions``: that many instead of the trained number
        target = f"target => {args['sessions']}, " if args.get("sessions") else ""
        query = f"SELECT * FROM generate('{model}', {target}seed => {args['seed']})"
    else:
        rows = args.get("rows") or pq.read_metadata(args["like"]).num_rows
        query = f"SELECT * FROM generate('{model}', target => {rows}, seed => {args['seed']})"
    with Stopwatch() as watch:
        table = session.sql(query).arrow()
    pq.write_table(table, args["output"])
    session.close()
    figures = {"query": query, **rate(table.num_rows, watch.seconds)}
    if args.get("session_key"):
        figures["sessions"] = len(table.column(args["session_key"]).unique())
    return figures


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
    if args.get("session_key"):
        options += [f"session_key => '{args['session_key']}'", f"order_by => '{args['order_by']}'"]
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
    wanted |= {"utility_ratio", "membership_auc"}
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
        # session data: the summaries, each profile column's shape, step shapes, lag-1 rows
        if metric == "sessions" or (metric.startswith("session_") and not _columns):
            figures[metric] = value
        if metric == "session_column_shape":
            figures[f"{metric}:{_columns}"] = value
        if metric.startswith("session_aggregate") and _columns:  # per-column rows, if any
            figures[f"{metric}:{_columns}"] = value
        if metric in ("step_shape", "lag1_autocorrelation"):
            figures[f"{metric}:{_columns}"] = value
            if metric == "lag1_autocorrelation":
                figures[f"lag1_real:{_columns}"] = detail.get("real")
                figures[f"lag1_synthetic:{_columns}"] = detail.get("synthetic")
    session.close()
    return figures


def _ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - the two-sample Kolmogorov-Smirnov statistic (the largest gap between the CDFs)."""
    real, synthetic = np.sort(real), np.sort(synthetic)
    grid = np.concatenate([real, synthetic])
    gap = np.abs(
        np.searchsorted(real, grid, side="right") / len(real)
        - np.searchsorted(synthetic, grid, side="right") / len(synthetic)
    )
    return float(1 - gap.max())


def session_shape(args: dict) -> dict:
    """How a set of sessions holds together, beside the real train split's (``real_*``).

    Per side: sessions, steps per session (their distribution and mean, the share of
    ``full_length`` when given), the share whose ``order_by`` values are all distinct, and for
    an integer ``order_by`` the share whose values are consecutive integers, the share whose
    ``metadata`` is constant (all of it, and per column), the pooled within-session lag-1
    correlation of ``measure`` and the per-session means of ``measure``. Comparisons: the TV and
    KS complements of the length distributions and the KS complement of the per-session means.
    """
    con = duckdb.connect()
    key, order, measure = (f'"{args[n]}"' for n in ("session_key", "order_by", "measure"))
    order_type = con.sql(f"DESCRIBE SELECT {order} FROM read_parquet('{args['real']}')")
    integer_order = "INT" in order_type.fetchone()[1]  # consecutive years, not timestamps
    consecutive = (
        f"max({order}) - min({order}) = count(*) - 1 AND count(DISTINCT {order}) = count(*)"
        if integer_order
        else "NULL"
    )
    constant = [
        f"count(DISTINCT coalesce(CAST(\"{c}\" AS VARCHAR), '∅')) = 1" for c in args["metadata"]
    ]
    figures: dict = {}
    means, lengths, steps_of = {}, {}, {}
    for side in ("real", "synthetic"):
        rows = f"read_parquet('{args[side]}')"
        per_session = con.sql(
            f"SELECT count(*) AS steps, {consecutive} AS consecutive, "
            f"count(DISTINCT {order}) = count(*) AS distinct_order, {', '.join(constant)}, "
            f"avg({measure}) AS mean FROM {rows} GROUP BY {key}"
        ).df()
        per_session.columns = ["steps", "consecutive", "distinct_order", *args["metadata"], "mean"]
        lag1 = con.sql(
            f"SELECT corr(x, previous) FROM (SELECT {measure} AS x, lag({measure}) OVER "
            f"(PARTITION BY {key} ORDER BY {order}) AS previous FROM {rows})"
        ).fetchone()[0]
        prefix = "real_" if side == "real" else ""
        steps = per_session["steps"]
        lengths[side] = steps.value_counts(normalize=True)
        steps_of[side] = steps.to_numpy(dtype=float)
        means[side] = per_session["mean"].dropna().to_numpy(dtype=float)
        figures |= {
            f"{prefix}sessions": len(per_session),
            f"{prefix}rows": int(steps.sum()),
            f"{prefix}mean_steps": float(steps.mean()),
            f"{prefix}steps": {
                int(k): int(v) for k, v in steps.value_counts().sort_index().items()
            },
            f"{prefix}distinct_order_share": float(per_session["distinct_order"].mean()),
            f"{prefix}metadata_constant_share": float(
                per_session[args["metadata"]].all(axis=1).mean()
            ),
            f"{prefix}lag1": lag1,
        }
        if args.get("full_length"):
            figures[f"{prefix}full_length_share"] = float((steps == args["full_length"]).mean())
        if integer_order:
            figures[f"{prefix}consecutive_share"] = float(
                per_session["consecutive"].astype(bool).mean()
            )
        for column in args["metadata"]:
            figures[f"{prefix}constant_share:{column}"] = float(per_session[column].mean())
    real, synthetic = lengths["real"], lengths["synthetic"]
    figures["length_tv_complement"] = float(
        1 - 0.5 * real.subtract(synthetic, fill_value=0).abs().sum()
    )
    figures["length_ks_complement"] = _ks_complement(steps_of["real"], steps_of["synthetic"])
    if len(means["real"]) and len(means["synthetic"]):
        figures["mean_ks_complement"] = _ks_complement(means["real"], means["synthetic"])
    con.close()
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
            "session_shape": session_shape,
            "versions": versions,
        }
    )
