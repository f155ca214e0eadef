"""Continued training: ``train('m', 'new rows', from_model => 'm@2')`` starts from a stored
version's encoders and weights and goes on learning on the new rows alone.

The version's encoders grow with the new rows (categories the new rows have at least k times
join the vocabulary after the known ones; numeric and date ranges widen, keeping their bins),
and its network grows to match (``AutoregressiveModel.grown``): what the model knew stays, and
a new category starts as the rare token it was drawn as before. The source must have the
model's columns with their types. What changed is in the summary row and kept with the new
version, whose parent models() shows.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb

from . import catalog
from .catalog import ModelRecord
from .errors import SynthError
from .options import TrainOptions
from .shapes import Training, TrainingPart, TrainingPlan
from .shapes.base import read_sql, tokens
from .shapes.table import TableShape

CONTINUABLE = ("autoregressive",)
SHOWN_CATEGORIES = 20  # new categories listed in the summary per column (then a count)


def parent_of(
    con: duckdb.DuckDBPyConnection, options: TrainOptions
) -> tuple[TrainOptions, ModelRecord | None]:
    """(the options with from_model resolved to name@version, the version to continue), or
    the options as given and None; refused in one line when it cannot be continued."""
    if options.from_model is None:
        return options, None
    record = catalog.load_model(con, options.from_model)
    spec = f"{record.name}@{record.version}"
    why = None
    if record.method == "database":
        why = "it is a database (continue its tables' training from scratch)"
    elif "sessions" in record.statistics:
        why = "it models sessions"
    elif record.method not in CONTINUABLE:
        why = f"it was trained with method '{record.method}' (continued: {', '.join(CONTINUABLE)})"
    elif record.statistics.get("texts"):
        why = "it has text columns"
    elif "privacy" in record.metrics:
        why = "it was trained with epsilon (its budget is spent)"
    if why is None:
        why = _refused_option(options, record)
    if why is not None:
        raise SynthError(f"train(): from_model '{spec}' cannot be continued: {why}")
    constraints = options.constraints  # the version's row rules hold unless others are given
    if constraints is None:
        constraints = record.options.get("constraints")
    return replace(options, from_model=spec, constraints=constraints), record


def _refused_option(options: TrainOptions, record: ModelRecord) -> str | None:
    given = [
        name
        for name in ("columns", "exclude", "session_key", "epsilon")
        if getattr(options, name) is not None
    ]
    if options.encoding:
        given.append("encoding")
    if given:
        return f"{given[0]} is the model's own when continuing"
    if options.method not in ("auto", record.method):
        return f"it is {record.method}, not {options.method}"
    return None


def columns_of(record: ModelRecord, source: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The model's columns, which the source must have with the same types."""
    types = dict(source)
    spec = f"{record.name}@{record.version}"
    for column in record.columns:
        name, duck_type = column["name"], column["type"]
        if name not in types:
            raise SynthError(
                f"train(): the source has no column '{name}', which from_model '{spec}' has "
                f"(source columns: {', '.join(types)})"
            )
        if types[name] != duck_type:
            raise SynthError(
                f"train(): column '{name}' is {types[name]} in the source, {duck_type} in "
                f"from_model '{spec}'"
            )
    return [(c["name"], c["type"]) for c in record.columns]


def plan(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[tuple[str, str]],
    training: Training,
    record: ModelRecord,
) -> TrainingPlan:
    """The new rows, encoded by the version's encoders grown by them; its network grown."""
    table = con.execute(read_sql(relation, columns, training.options, training.seed))
    table = table.to_arrow_table()
    loaded = TableShape().load(record)
    encoders, changes = [], {}
    for encoder in loaded.encoders:
        values = table.column(encoder.name).combine_chunks()
        grown, changed = encoder.extended(values, training.protection, record.training_rows)
        encoders.append(grown)
        if changed:
            changes[encoder.name] = _shown(changed)
    pairs = [(e, k) for e, k in zip(encoders, loaded.encoders, strict=True) if k.n_tokens > 0]
    learned = [e for e, _ in pairs]
    origins = [e.token_origin(k) for e, k in pairs]
    model = loaded.model.grown(origins, [e.token_positions() for e in learned])
    part = TrainingPart("", model, (tokens(encoders, table),), 1.0, learns=bool(learned))
    return TrainingPlan(
        encoders=encoders,
        columns=[{**c, "kind": e.kind} for c, e in zip(record.columns, encoders, strict=True)],
        parts=[part],
        training_rows=table.num_rows,
        rows=table.num_rows,
        summary={"from_model": training.options.from_model, "changes": changes},
    )


def _shown(changed: dict) -> dict:
    """A column's changes as the summary lists them (a long list of categories cut short)."""
    added = changed.get("added")
    if added is None or len(added) <= SHOWN_CATEGORIES:
        return changed
    return changed | {
        "added": added[:SHOWN_CATEGORIES],
        "more_added": len(added) - SHOWN_CATEGORIES,
    }
