"""Model records are untrusted data, checked where they come in.

A model file (import_model) or a row of ``synth.models`` (which anyone with write access can
UPDATE) is read as data: every field the code later reads is checked here first, once per load,
so a crafted record fails with one line naming its field instead of reaching SQL text (column
types are pasted into queries), a huge allocation (sizes build tensors) or a raw Python error.

Checks run from cheap to costly: the JSON's shapes and kinds (model_fields.py); sizes under
its limits; then the tensors the declared architecture needs (model_architecture.py) against
the names, shapes and dtypes in the safetensors header (safetensors_header.py), which is parsed
without loading any tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import SynthError
from .model_architecture import check_weights, declared_tensors
from .model_fields import (
    MAX_COLUMNS,
    MAX_DECIMALS,
    MAX_KEY_LENGTH,
    MAX_LAGS,
    MAX_TOKENS,
    MAX_WEIGHTS_BYTES,
    Refused,
    duck_type_at,
    integer,
    listed,
    number,
    numbers,
    object_with,
    shown,
    typed,
)
from .model_texts import MAX_TEXT_LENGTH, text_tensors
from .safetensors_header import parse_header

if TYPE_CHECKING:  # catalog imports this module when it loads a model
    from .catalog import ModelRecord

COLUMN_KINDS_OF_SESSIONS = ("session_key", "order")
RECORD_FIELDS = {
    "name": str,
    "method": str,
    "source": str,
    "options": dict,
    "columns": list,
    "statistics": dict,
    "metrics": dict,
    "training_rows": int,
    "format_version": int,
}


def check_model(record: ModelRecord, where: str, tensors: bool = True) -> None:
    """Refuse a ``catalog.ModelRecord`` that this code could not use safely.

    ``where`` starts the message (``import_model()``, ``model 'd@2'``); ``tensors=False``
    skips the weights (a load without them). Raises SynthError with one line such as
    ``import_model(): columns[0].type: not a DuckDB type: 'DOUBLE) AS x, (SELECT ...'``.
    """
    try:
        _check(record, tensors)
    except Refused as refused:
        raise SynthError(f"{where}: {refused}") from None


# -- the record ------------------------------------------------------------------------------
def _check(record: ModelRecord, tensors: bool) -> None:
    from .catalog import FORMAT_VERSION, MODEL_NAME
    from .models import METHODS

    for field, kind in RECORD_FIELDS.items():
        typed(getattr(record, field), kind, field)
    if record.format_version != FORMAT_VERSION:
        newer = "; upgrade duck_synth" if record.format_version > FORMAT_VERSION else ""
        raise Refused(
            "format_version",
            f"{record.format_version} is not a format this duck_synth reads "
            f"(it reads {FORMAT_VERSION}){newer}",
        )
    if record.method == "database":
        _check_options(record.options)
        _check_database(record.statistics.get("database"), MODEL_NAME)
        return
    if record.method not in METHODS:
        raise Refused(
            "method", f"unknown method {shown(record.method)} (known: {', '.join(METHODS)})"
        )
    if not MODEL_NAME.match(record.name):
        raise Refused("name", f"must be letters, digits, _ . -, got {shown(record.name)}")
    if record.training_rows < 0:
        raise Refused("training_rows", f"must not be negative, got {record.training_rows}")
    _check_options(record.options)
    typed(record.statistics.get("facts", {}), dict, "statistics.facts")
    for column, facts in record.statistics.get("facts", {}).items():
        typed(facts, dict, f"statistics.facts.{column}")
    encoders = listed(record.statistics.get("encoders"), "statistics.encoders", MAX_COLUMNS)
    n_tokens = [_encoder(e, f"statistics.encoders[{i}]") for i, e in enumerate(encoders)]
    sessions = record.statistics.get("sessions")
    session_names = _check_sessions(sessions) if sessions is not None else None
    _check_columns(record.columns, [e["name"] for e in encoders], session_names)
    if record.method == "timegan" and sessions is None:
        raise Refused("statistics.sessions", "method timegan models sessions; none described")
    expected, built = declared_tensors(record.method, record.statistics, encoders, n_tokens)
    expected |= text_tensors(record.statistics, encoders, [n for n in n_tokens if n > 0])
    if built > MAX_WEIGHTS_BYTES:
        raise Refused(
            "statistics.model",
            f"the declared networks need {built:,} bytes (limit {MAX_WEIGHTS_BYTES:,})",
        )
    if tensors:
        check_weights(parse_header(record.weights)[0], expected)


def _check_options(options: dict) -> None:
    """The options the code reads back: a model's constraints become predicates of every
    generate() call, so each must be one expression, and none may read data (no subquery)."""
    from sqlglot import exp

    from .sqltext import predicate

    constraints = options.get("constraints")
    if constraints is None:
        return
    for i, text in enumerate(listed(constraints, "options.constraints", MAX_COLUMNS)):
        path = f"options.constraints[{i}]"
        typed(text, str, path)
        try:
            tree = predicate(None, text, path)
        except SynthError as error:
            raise Refused(path, str(error).removeprefix(f"{path}: ")) from None
        if tree.find(exp.Select, exp.Subquery, exp.Table) is not None:
            raise Refused(path, f"a constraint may not query tables: {shown(text)}")


def _check_columns(columns: list, encoder_names: list[str], session_names: set[str] | None) -> None:
    from .encoding import ENCODERS

    listed(columns, "columns", MAX_COLUMNS)
    kinds = set(ENCODERS) | (set(COLUMN_KINDS_OF_SESSIONS) if session_names is not None else set())
    for i, column in enumerate(columns):
        path = f"columns[{i}]"
        object_with(column, path, required=("name", "type", "kind"))
        typed(column["name"], str, f"{path}.name")
        duck_type_at(column["type"], f"{path}.type")
        if column["kind"] not in kinds:
            raise Refused(f"{path}.kind", f"unknown kind {shown(column['kind'])}")
    names = [c["name"] for c in columns]
    if len(set(names)) != len(names):
        raise Refused("columns", "two columns have the same name")
    if session_names is None and names != encoder_names:
        # describe and generate pair each column with its encoder, in order
        raise Refused("columns", "the columns must be the encoders' columns, in order")
    if session_names is not None and set(names) != session_names:
        raise Refused("columns", "the columns must be the session layout's columns")


def _encoder(spec: Any, path: str) -> int:
    """The encoder's token count, once its JSON holds what its kind reads."""
    from .encoding import ENCODERS, from_json

    object_with(spec, path, required=("kind", "name", "type", "stats"))
    if spec["kind"] not in ENCODERS:
        raise Refused(
            f"{path}.kind",
            f"unknown encoder kind {shown(spec['kind'])} (known: {', '.join(sorted(ENCODERS))})",
        )
    typed(spec["name"], str, f"{path}.name")
    duck_type_at(spec["type"], f"{path}.type")
    stats, at = spec["stats"], f"{path}.stats"
    typed(stats, dict, at)
    number(stats.get("null_share", 0.0), f"{at}.null_share")
    kind = spec["kind"]
    if kind == "categorical":
        for value in listed(stats.get("categories"), f"{at}.categories", MAX_TOKENS - 2):
            if isinstance(value, dict | list):
                raise Refused(f"{at}.categories", "categories must be single values")
        number(stats.get("rare_share"), f"{at}.rare_share")
        if "counts" in stats:
            numbers(stats["counts"], f"{at}.counts", len(stats["categories"]))
    elif kind in ("numeric", "datetime"):
        typed(stats.get("integer"), bool, f"{at}.integer")
        integer(stats.get("decimals"), f"{at}.decimals", -MAX_DECIMALS, MAX_DECIMALS)
        number(stats.get("low"), f"{at}.low")
        number(stats.get("high"), f"{at}.high")
        numbers(stats.get("points"), f"{at}.points", MAX_TOKENS // 2)
        numbers(stats.get("edges"), f"{at}.edges", MAX_TOKENS // 2)
        for optional in ("point_counts", "quantiles"):
            if stats.get(optional) is not None:
                numbers(stats[optional], f"{at}.{optional}", MAX_TOKENS)
    elif kind == "constant":
        if isinstance(stats.get("value"), dict | list):
            raise Refused(f"{at}.value", "must be a single value")
    elif kind == "key":
        integer(stats.get("length"), f"{at}.length", 1, MAX_KEY_LENGTH)
    elif kind == "text":
        numbers(stats.get("edges"), f"{at}.edges", MAX_TOKENS // 2)
        integer(stats.get("max_length"), f"{at}.max_length", 1, MAX_TEXT_LENGTH)
    return from_json(spec).n_tokens


def _check_sessions(spec: Any) -> set[str]:
    """A session model's description; returns its output columns' names."""
    path = "statistics.sessions"
    object_with(spec, path, required=("layout", "step_encoders", "steps"))
    layout, at = spec["layout"], f"{path}.layout"
    fields = ("key", "order_by", "order_type", "metadata", "measurements", "columns")
    object_with(layout, at, required=fields, only=fields)  # SessionLayout(**layout)
    for name in ("key", "order_by"):
        typed(layout[name], str, f"{at}.{name}")
    duck_type_at(layout["order_type"], f"{at}.order_type")
    for name in ("metadata", "measurements"):
        for i, column in enumerate(listed(layout[name], f"{at}.{name}", MAX_COLUMNS)):
            typed(column, str, f"{at}.{name}[{i}]")
    for i, pair in enumerate(listed(layout["columns"], f"{at}.columns", MAX_COLUMNS)):
        if not isinstance(pair, list) or len(pair) != 2:
            raise Refused(f"{at}.columns[{i}]", "must be [name, type]")
        typed(pair[0], str, f"{at}.columns[{i}][0]")
        duck_type_at(pair[1], f"{at}.columns[{i}][1]")
    steps = listed(spec["step_encoders"], f"{path}.step_encoders", MAX_COLUMNS)
    for i, encoder in enumerate(steps):
        _encoder(encoder, f"{path}.step_encoders[{i}]")
    integer(spec["steps"], f"{path}.steps", 0, None)
    if "step_model" in spec:
        integer(spec.get("lags"), f"{path}.lags", 0, MAX_LAGS)
    return {pair[0] for pair in layout["columns"]}


def _check_database(spec: Any, model_name) -> None:
    """A database model's tables (their models, output columns and counts) and relations."""
    path = "statistics.database"
    object_with(spec, path, required=("tables", "relations"))
    names = set()
    for i, table in enumerate(listed(spec["tables"], f"{path}.tables", MAX_COLUMNS)):
        at = f"{path}.tables[{i}]"
        object_with(table, at, required=("name", "model", "version", "columns", "attributes"))
        typed(table["name"], str, f"{at}.name")
        names.add(table["name"])
        if not isinstance(table["model"], str) or not model_name.match(table["model"]):
            raise Refused(f"{at}.model", f"not a model name: {shown(table['model'])}")
        integer(table["version"], f"{at}.version", 1, None)
        for field in ("rows", "parentless"):
            integer(table.get(field, 0), f"{at}.{field}", 0, None)
        typed(table.get("agreements", {}), dict, f"{at}.agreements")
        for column, share in table.get("agreements", {}).items():
            number(share, f"{at}.agreements.{column}")
        typed(table.get("degrees", {}), dict, f"{at}.degrees")
        for column, quantiles in table.get("degrees", {}).items():
            numbers(quantiles, f"{at}.degrees.{column}", MAX_TOKENS)
        for j, column in enumerate(listed(table["columns"], f"{at}.columns", MAX_COLUMNS)):
            if not isinstance(column, list) or len(column) != 3:
                raise Refused(f"{at}.columns[{j}]", "must be [name, type, role]")
            typed(column[0], str, f"{at}.columns[{j}][0]")
            duck_type_at(column[1], f"{at}.columns[{j}][1]")
            typed(column[2], str, f"{at}.columns[{j}][2]")
        for j, attribute in enumerate(listed(table["attributes"], f"{at}.attributes", MAX_COLUMNS)):
            typed(attribute, str, f"{at}.attributes[{j}]")
    relations = listed(spec["relations"], f"{path}.relations", MAX_COLUMNS)
    for i, relation in enumerate(relations):
        at = f"{path}.relations[{i}]"
        object_with(relation, at, required=("child", "key", "parent", "parent_key"))
        for end in ("child", "parent"):
            if relation[end] not in names:
                raise Refused(f"{at}.{end}", f"not a table of the database: {shown(relation[end])}")
        for key in ("key", "parent_key"):
            for j, column in enumerate(listed(relation[key], f"{at}.{key}", MAX_COLUMNS)):
                typed(column, str, f"{at}.{key}[{j}]")
        if len(relation["key"]) != len(relation["parent_key"]) or not relation["key"]:
            raise Refused(f"{at}.key", "the keys must have the same, non-zero number of columns")
    for i, table in enumerate(spec["tables"]):
        for j, (_, _, role) in enumerate(table["columns"]):
            if role not in ("own", "key") and not (
                role.startswith("fk:") and role[3:].isdigit() and int(role[3:]) < len(relations)
            ):
                raise Refused(f"{path}.tables[{i}].columns[{j}][2]", f"unknown role {shown(role)}")
