"""The Python behind each table macro in sql/macros.sql.

Each function runs inside DuckDB at bind time, on its own cursor of the database, and returns
the SQL text that reads its result (see spool.py).
"""

from __future__ import annotations

import inspect
import json

import duckdb
import pyarrow as pa
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from . import access, caller, catalog, checkpoints, sessions, spool, sqltext, surface
from .encoding import from_json
from .errors import SynthError
from .evaluate import evaluate_sql
from .evaluate.report import report
from .evaluate.validate import validate_sql
from .generate import generate
from .generate_into import generate_into
from .options import (
    DropCheckpointsOptions,
    DropModelOptions,
    GenerateTablesOptions,
    ImportModelOptions,
    RecommendOptions,
    RegisterModelOptions,
    WorkflowOptions,
    parse,
)
from .pipelines import actions as pipeline_actions
from .pipelines import user_models
from .recommend import recommend
from .relational.writing import write_tables
from .resample import resample
from .rewrite import rewrite_sql
from .subset import subset
from .train import train
from .workflows import create_workflow, drop_workflow, run_sql


# Each UDF runs on its own cursor of the database (the first argument), as a plugin's does.
def synth_train(cursor, name, source, options):
    spooled = []  # before the model commits: a result that cannot be written adds no model

    def write(summary):
        spooled.append(spool.summary_sql("train", summary))

    train(cursor, name, source, options, before_commit=write)
    return spooled[0]


def synth_generate(cursor, model, options):
    return generate(cursor, model, options)


def synth_generate_tables(cursor, model, options):
    given = parse(GenerateTablesOptions, "generate_tables", options)
    return spool.rows_sql("generate_tables", write_tables(cursor, model, given))


def synth_rewrite(cursor, sql_text):
    sqltext.one_statement(cursor, sql_text, "synth_sql()")
    statements, _ = rewrite_sql(sql_text, *catalog.column_lookups(cursor))
    if len(statements) != 1:
        raise SynthError("synth_sql(): give exactly one query")
    return sqltext.query(cursor, statements[0], "synth_sql()")


def synth_generate_into(cursor, table, model, options):
    return spool.summary_sql("generate_into", generate_into(cursor, table, model, options))


def synth_create_workflow(cursor, name, sql_text, options):
    parameters = parse(WorkflowOptions, "create_workflow", options).parameters
    if isinstance(parameters, str):
        parameters = json.loads(parameters)
    return spool.summary_sql("workflow", create_workflow(cursor, name, sql_text, parameters))


def synth_workflow(cursor, name, arguments, _hidden):
    return run_sql(cursor, name, arguments)


def synth_drop_workflow(cursor, name):
    return spool.summary_sql("workflow", drop_workflow(cursor, name))


def synth_resample(cursor, source, column, options):
    return resample(cursor, source, column, options)


def synth_recommend(cursor, source, options):
    given = parse(RecommendOptions, "recommend", options)
    return spool.rows_sql("recommend", recommend(cursor, source, vars(given)))


def synth_describe(cursor, model):
    return describe_model(cursor, model)


def synth_drop(cursor, model, options):
    version = parse(DropModelOptions, "drop_model", options).version
    dropped = catalog.drop_model(cursor, model, version)
    return spool.rows_sql("drop", [{"model": n, "version": v, "dropped": True} for n, v in dropped])


def synth_drop_checkpoints(cursor, options):
    model = parse(DropCheckpointsOptions, "drop_checkpoints", options).model
    dropped = checkpoints.drop(cursor, model)
    return spool.summary_sql(
        "drop_checkpoints",
        {
            "dropped": len(dropped),
            "bytes": sum(row["bytes"] for row in dropped),
            "runs": [row["run_id"] for row in dropped],
        },
    )


def synth_export(cursor, model, path):
    return spool.summary_sql("export", export_model(cursor, model, path))


def synth_import(cursor, path, options):
    name = parse(ImportModelOptions, "import_model", options).name
    return spool.summary_sql("import", import_model(cursor, path, name))


def synth_register_model(cursor, name, path, options):
    given = parse(RegisterModelOptions, "register_model", options)
    registered = user_models.register(cursor, name, path, given.inputs, given.outputs)
    return spool.summary_sql("register_model", registered)


def synth_validate(cursor, model, synthetic):
    one_table(cursor, model, "validate()")
    return validate_sql(cursor, model, synthetic)


def one_table(con, spec: str, function: str) -> None:
    """Refuse a database model where a function takes one table's model."""
    record = catalog.load_model(con, spec, with_weights=False)
    if record.method == "database":
        tables = ", ".join(t["name"] for t in record.statistics["database"]["tables"])
        raise SynthError(
            f"{function}: '{record.name}' is a database ({tables}); this takes one table's "
            "model (evaluate() judges a database: evaluate([real tables], [generated tables]))"
        )


def synth_evaluate(cursor, real, synthetic, options):
    return evaluate_sql(cursor, real, synthetic, options)


def synth_report(cursor, real, synthetic, options):
    return spool.summary_sql("report", report(cursor, real, synthetic, options))


def synth_subset(cursor, tables, options):
    if caller.rights().read_only:  # access.py refuses the statement first; the UDF too
        raise access.Refused("read-only token: subset() is not allowed (it writes)")
    spooled = []  # inside the transaction that writes: a result that cannot be written, no table

    def write(rows):
        spooled.append(spool.rows_sql("subset", rows))

    subset(cursor, tables, options, before_commit=write)
    return spooled[0]


BUILTIN_UDFS = {
    **{name: f for name, f in dict(globals()).items() if name.startswith("synth_")},
    **pipeline_actions.UDFS,
}


def udfs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, object, list[str]]]:
    """(name, function, parameter types) for every UDF the surface declares, built-in or a
    plugin's; each call gets a fresh cursor."""
    implementations = {**BUILTIN_UDFS, **surface.implementations()}
    declared = surface.udf_arities()
    missing = set(declared) ^ set(implementations)
    if missing:  # the surface and this file must agree (tests/test_surface.py checks it too)
        raise AssertionError(f"UDFs declared but not implemented, or the reverse: {missing}")

    def bound(implementation):
        def call(*arguments):
            return implementation(con.cursor(), *arguments)

        # DuckDB counts a UDF's parameters: the implementation's, the cursor left out
        signature = inspect.signature(implementation)
        call.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        return call

    return [(name, bound(implementations[name]), ["VARCHAR"] * n) for name, n in declared.items()]


def describe_model(con: duckdb.DuckDBPyConnection, spec: str) -> str:
    """One row per column.

    >>> FROM describe_model('d')
    -- column | type | kind | null_share | cardinality | summary
    """
    record = catalog.load_model(con, spec, with_weights=False)
    if record.method == "database":
        return spool.write_rows(
            "describe", pa.Table.from_pylist(database_rows(con, record)), {"summary": "JSON"}
        )
    rows = []
    for column, encoder in sessions.column_encoders(record.columns, record.statistics):
        if encoder is not None:
            summary = encoder.summary()
        elif column["kind"] == "order":
            summary = sessions.order_summary(record.statistics)
        else:
            summary = {"sessions": record.training_rows}
        rows.append(
            {
                "model": record.name,
                "version": record.version,
                "column": column["name"],
                "type": column["type"],
                "kind": column["kind"],
                "null_share": float(summary.get("null_share") or 0.0),
                "cardinality": summary.get("cardinality"),
                "summary": json.dumps(summary),
            }
        )
    return spool.write_rows("describe", pa.Table.from_pylist(rows), {"summary": "JSON"})


def database_rows(con, record) -> list[dict]:
    """describe_model() of a database: each table's columns as 'table.column' (the counts of
    children '#child(key)' and link flags '#link(key)' among them; keys are generated)."""
    rows = []
    for table in record.statistics["database"]["tables"]:
        own = {c for c, _, role in table["columns"] if role == "own"}
        component = catalog.load_model(con, f"{table['model']}@{table['version']}", False)
        for encoder in (from_json(spec) for spec in component.statistics["encoders"]):
            if encoder.name in own or (encoder.name.startswith("#") and encoder.name != "#parent"):
                summary = encoder.summary()
                rows.append(
                    {
                        "model": record.name,
                        "version": record.version,
                        "column": f"{table['name']}.{encoder.name}",
                        "type": encoder.duck_type,
                        "kind": encoder.kind,
                        "null_share": float(summary.get("null_share") or 0.0),
                        "cardinality": summary.get("cardinality"),
                        "summary": json.dumps(summary),
                    }
                )
    return rows


EXPORT_KEYS = (
    "name",
    "version",
    "method",
    "source",
    "options",
    "columns",
    "statistics",
    "metrics",
    "training_rows",
    "format_version",
)


def export_model(con: duckdb.DuckDBPyConnection, spec: str, path: str) -> dict:
    """Write one safetensors file: the weights, and the model's JSON in its metadata.

    Only value-protected statistics are in the catalog, so the file holds no real row.
    """
    one_table(con, spec, "export_model()")
    record = catalog.load_model(con, spec)
    tensors = load_tensors(record.weights)
    meta = {k: json.dumps(getattr(record, k)) for k in EXPORT_KEYS}
    meta["duck_synth"] = "model"
    full = access.check_path(path, "export_model()", write=True)
    try:
        with open(full, "wb") as handle:
            handle.write(save_tensors(tensors, metadata=meta))
    except OSError as error:
        raise SynthError(f"export_model(): cannot write '{path}': {error.strerror}") from None
    return {"model": record.name, "version": record.version, "path": path}


def import_model(con: duckdb.DuckDBPyConnection, path: str, name: str | None) -> dict:
    """Add the model a file holds, as a new version. The file is untrusted data: it is checked
    whole (model_schema.py) before anything is written, and nothing is written on refusal."""
    import dataclasses

    from .model_fields import MAX_HEADER_BYTES, MAX_WEIGHTS_BYTES
    from .model_schema import check_model
    from .safetensors_header import read_header

    where = "import_model()"
    try:
        with open(access.check_path(path, where), "rb") as handle:
            data = handle.read(MAX_WEIGHTS_BYTES + MAX_HEADER_BYTES + 9)
    except OSError as error:
        raise SynthError(f"{where}: cannot read '{path}': {error.strerror}") from None
    if len(data) > MAX_WEIGHTS_BYTES + MAX_HEADER_BYTES + 8:
        raise SynthError(f"{where}: '{path}' is larger than a model file may be")
    try:
        _, meta = read_header(data)
    except SynthError as error:
        raise SynthError(f"{where}: '{path}' is not a duck_synth model file ({error})") from None
    if meta.get("duck_synth") != "model":
        raise SynthError(f"{where}: '{path}' is not a duck_synth model file")
    fields = {}
    for key in EXPORT_KEYS:
        if not isinstance(meta.get(key), str):
            raise SynthError(f"{where}: {key}: missing from the file")
        try:
            fields[key] = json.loads(meta[key])
        except ValueError:
            raise SynthError(f"{where}: {key}: not JSON") from None
    new_name = name or fields["name"]
    if not isinstance(new_name, str) or not catalog.MODEL_NAME.match(new_name):
        raise SynthError(f"{where}: model name must be letters, digits, _ . -, got {new_name!r}")
    record = catalog.ModelRecord(
        name=new_name,
        version=0,
        method=fields["method"],
        source=fields["source"],
        created=catalog.utc_now(),
        options=fields["options"],
        columns=fields["columns"],
        statistics=fields["statistics"],
        metrics=fields["metrics"],
        weights=data,
        training_rows=fields["training_rows"],
        format_version=fields["format_version"],
    )
    check_model(record, where)
    # the catalog keeps the tensors alone: the file's metadata is the record's own JSON
    record = dataclasses.replace(record, weights=save_tensors(load_tensors(data)))
    version = catalog.insert_model(con, record, None)
    return {"model": new_name, "version": version, "path": path}
