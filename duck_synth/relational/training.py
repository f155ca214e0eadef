"""train() of a database: one table model per table, each child's in the context of its parent
row, stored with a database record that ties them together, all in one transaction.

``train('shop', ['customers', 'orders'])``: the relations come from the foreign keys DuckDB
knows or ``relations => [...]`` (relations.py); each table's frame (frames.py) is encoded and
fitted by the autoregressive model with its context columns always given. The table models are
models of their own (``shop.orders``, hidden from models(), dropped with the database); the
database model (method 'database') names them and the relations.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import duckdb

from .. import caller, catalog
from ..encoding import analyze
from ..errors import SynthError
from ..fitting import fit_parts
from ..models import create_model
from ..models.loop import TimeBudget
from ..options import TrainOptions
from ..relations import Schema, schema
from ..shapes import Training, TrainingPart, TrainingPlan
from ..shapes.base import modelled, read_sql, tokens
from ..shapes.table import TableShape
from .degrees import degree_quantiles
from .frames import PARENT, Frame, frames

METHOD = "database"
TABLE_METHOD = "autoregressive"  # the one method whose context columns can always be given
REFUSED = {  # options that describe one table, or a privacy a database cannot give yet
    "columns": "columns (use exclude => ['table.column'])",
    "encoding": "encoding",
    "session_key": "session_key",
    "order_by": "order_by",
    "metadata": "metadata",
    "constraints": "constraints",
    "nrows": "nrows",
}


def check_options(options: TrainOptions) -> None:
    if options.epsilon is not None:
        raise SynthError(
            "train(): epsilon on a database is refused: a parent's children are one person's "
            "rows, and no bound on their number is given (DP-SGD bounds one row); train each "
            "table with epsilon on its own"
        )
    if options.method not in ("auto", TABLE_METHOD):
        raise SynthError(
            f"train(): a database is trained with method 'autoregressive', not '{options.method}'"
        )
    given = [REFUSED[name] for name in REFUSED if getattr(options, name)]
    if given:
        raise SynthError(f"train(): {given[0]} is for one table, not a database")
    for name in options.exclude or []:
        if name.count(".") < 1:
            raise SynthError(f"train(): exclude on a database names 'table.column', got '{name}'")


def train_database(
    con: duckdb.DuckDBPyConnection,
    name: str,
    tables: list[str],
    options: TrainOptions,
    before_commit=None,
) -> dict:
    """Train every table of the database; the summary row of the database model."""
    from .. import train as one_table  # train.py dispatches here

    time_budget = TimeBudget(options.max_time)
    check_options(options)
    found = schema(con, tables, options.relations)
    excluded = set(options.exclude or [])
    unknown = excluded - {f"{t}.{c}" for t in tables for c, _ in found.columns[t]}
    if unknown:
        raise SynthError(f"train(): exclude: unknown column '{sorted(unknown)[0]}'")
    built = frames(con, found, options.keep_orphans, excluded)
    dirt = {t: _dirt(con, found, t) for t in found.tables}
    seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(4), "little")
    seed &= 0x7FFFFFFF
    plans = _plans(con, found, built, options, seed)
    caller.check()
    run_id = catalog.start_run(con, name, METHOD, str(tables))
    with one_table.recorded_run(con, name, run_id):
        records, summaries = _fit(
            con, name, run_id, found, built, plans, options, seed, time_budget
        )
        database = _database_record(con, name, found, built, plans, records, options, seed, dirt)
        database.metrics["seconds"] = time_budget.elapsed()
        summary = _summary(database, summaries, run_id, time_budget)

        def versioned(versions: list[int]) -> None:
            described = database.statistics["database"]["tables"]
            for record, table, version in zip(records, described, versions, strict=False):
                record.options["component_of"] = f"{name}@{versions[-1]}"
                table["version"] = version

        def commit_with(version: int) -> None:
            summary["version"] = version
            if before_commit is not None:
                before_commit(summary)

        catalog.insert_models(con, [*records, database], run_id, versioned, commit_with)
    return summary


def _dirt(con, found: Schema, table: str) -> dict:
    """How the table's context key links: to a parent, to none (orphans), NULL."""
    context = found.context(table)
    return found.key_counts(con, context) if context is not None else {}


def _plans(con, found: Schema, built: dict[str, Frame], options, seed: int) -> dict:
    """Each table's encoded frame and its network (context columns always given)."""
    from .. import train as one_table

    cells = {t: len(built[t].columns) for t in found.tables}  # a table's share of max_time
    plans, done, total = {}, 0, 0
    for i, table in enumerate(found.tables):
        frame = built[table]
        data = con.execute(
            read_sql(frame.training_sql(), frame.columns, options, seed)
        ).to_arrow_table()
        if data.num_rows == 0:
            raise SynthError(f"train(): table '{table}' has no rows to train on")
        cells[table] *= data.num_rows
        protection = one_table.protect(options, TABLE_METHOD, seed, None, len(frame.columns))
        try:
            encoders = analyze(data, dict(frame.columns), {}, protection)
        except SynthError as error:  # e.g. free text: said with the table's name
            raise SynthError(
                f"table '{table}': " + str(error).replace("exclude => ['", f"exclude => ['{table}.")
            ) from None
        learned = modelled(encoders)
        context = sum(1 for e in encoders[: len(frame.context)] if e.n_tokens > 0)
        with one_table.seeded(seed_of(seed, i)):  # initial weights from the seed too
            model = create_model(
                TABLE_METHOD,
                [e.n_tokens for e in learned],
                [e.token_positions() for e in learned],
                [e.token_spans() for e in learned],
                context=context,
            )
        part = TrainingPart("", model, (tokens(encoders, data),), 1.0, len(learned) > context)
        plan = TrainingPlan(
            encoders=encoders,
            columns=[
                {"name": e.name, "type": t, "kind": e.kind}
                for e, (_, t) in zip(encoders, frame.columns, strict=True)
            ],
            parts=[part],
            training_rows=data.num_rows,
            rows=data.num_rows,
        )
        parentless = (
            data.num_rows - data.column(PARENT).to_pylist().count(True) if frame.context else 0
        )
        degrees = {
            column: degree_quantiles(data.column(column), protection) for column in frame.counts
        }
        plans[table] = (plan, protection, parentless, degrees)
    total = sum(cells.values())
    floor = total / len(cells) / 10  # a tiny table still gets some time
    total = sum(c + floor for c in cells.values())
    for table in found.tables:  # each table's time ends at its share of max_time
        done += cells[table] + floor
        plans[table][0].parts[0].time_share = done / total
    return plans


def _fit(con, name, run_id, found, built, plans, options, seed, time_budget):
    """The table models' records (not yet added) and their summaries."""
    from .. import train as one_table

    time_budget = TimeBudget(options.max_time)
    device = options.device or one_table.default_device()
    records, summaries = [], []
    for i, table in enumerate(found.tables):
        plan, protection, _, _ = plans[table]
        frame = built[table]
        training = Training(options, TABLE_METHOD, seed_of(seed, i), protection)
        with one_table.seeded(training.seed):
            metrics, params, tensors = fit_parts(con, run_id, plan, training, time_budget, device)
        caller.check()
        frame_sql = frame.training_sql()
        facts = one_table.column_facts(con, frame_sql, frame.columns)
        source = one_table.Source(
            component_name(name, table, i), frame_sql, plan.rows, facts, {}, "chosen", time_budget
        )
        digest = one_table.plan_fingerprint(plan, training)
        record = one_table.model_record(
            TableShape(), plan, training, source, metrics, params, tensors, device, digest
        )
        record.options["table"] = table
        record.statistics["context"] = plan.parts[0].model.params["context"]
        records.append(record)
        fitted = metrics["model"]
        summaries.append(
            {
                "table": table,
                "rows": plan.rows,
                "columns": len(frame.own),
                "epochs": fitted["epochs"],
                "val_loss": fitted.get("best_val_loss"),
                "stopped": fitted.get("stopped"),
            }
        )
    return records, summaries


def _summary(database, summaries: list[dict], run_id: int, time_budget: TimeBudget) -> dict:
    """train()'s row for a database: totals, and one entry per table (rows trained, orphans
    dropped or kept, NULL keys, epochs, validation loss)."""
    described = {t["name"]: t for t in database.statistics["database"]["tables"]}
    keep = database.options["keep_orphans"]
    for entry in summaries:
        dirt = described[entry["table"]]["dirt"]
        if dirt:
            entry["orphans_kept" if keep else "orphans_dropped"] = dirt["orphans"]
            entry["null_keys"] = dirt["null"]
    return {
        "model": database.name,
        "version": None,  # known inside the transaction
        "method": METHOD,
        "why": "a list of tables",
        "rows": sum(e["rows"] for e in summaries),
        "columns": sum(e["columns"] for e in summaries),
        "epochs": max(e["epochs"] for e in summaries),
        "seconds": round(time_budget.elapsed(), 2),
        "stopped": "; ".join(f"{e['table']}: {e['stopped']}" for e in summaries),
        "seed": database.options["seed"],
        "run_id": run_id,
        "orphans": sum(e.get("orphans_dropped", 0) + e.get("orphans_kept", 0) for e in summaries),
        "tables": summaries,
    }


def seed_of(seed: int, index: int) -> int:
    """Each table model's seed, from the database's."""
    return (seed * 1_000_003 + index) & 0x7FFFFFFF


def component_name(name: str, table: str, index: int) -> str:
    """The table model's name: 'shop.orders' (a table name that is no model name: by place)."""
    candidate = f"{name}.{table}"
    return candidate if catalog.MODEL_NAME.match(candidate) else f"{name}.table{index}"


def _database_record(con, name, found, built, plans, records, options, seed, dirt):
    tables = []
    for table, record in zip(found.tables, records, strict=True):
        frame, (plan, _, parentless, degrees) = built[table], plans[table]
        tables.append(
            {
                "name": table,
                "model": record.name,
                "version": 0,  # known in the transaction
                "columns": _output_columns(con, found, frame),
                "attributes": frame.attributes(),
                "rows": plan.rows,
                "parentless": parentless,
                "degrees": degrees,
                "agreements": frame.agreements,
                "dirt": dirt[table],
            }
        )
    relations = [
        {"child": r.child, "key": list(r.key), "parent": r.parent, "parent_key": list(r.parent_key)}
        for r in found.relations
    ]
    return catalog.ModelRecord(
        name=name,
        version=0,
        method=METHOD,
        source=json.dumps(found.tables),
        created=catalog.utc_now(),
        options={**asdict(options), "method": METHOD, "seed": seed},
        columns=[],
        statistics={"database": {"tables": tables, "relations": relations}},
        metrics={"tables": {t["name"]: t["rows"] for t in tables}},
        weights=b"",
        training_rows=tables[0]["rows"],
        format_version=catalog.FORMAT_VERSION,
    )


def _output_columns(con, found: Schema, frame: Frame) -> list[list[str]]:
    """The table's columns in its order: [name, DuckDB type, role]; role 'own' (generated),
    'key' (fresh, unique) or 'fk:<i>' (the key of relation i: a generated parent's key).
    Columns left out (exclude) are not generated."""
    own = {c for c, _ in frame.own}
    roles = {c: "key" for c in frame.keys}
    for i, relation in enumerate(found.relations):
        if relation.child == frame.table:
            roles |= {column: f"fk:{i}" for column in relation.key}
    return [
        [column, duck_type, "own" if column in own else roles[column]]
        for column, duck_type in found.columns[frame.table]
        if column in own or column in roles
    ]
