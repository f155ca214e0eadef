"""Workflows: named, saved, re-runnable pipelines of duck_synth SQL.

A workflow is a table macro in the database (``FROM fraud_drill()`` runs it), so listing the
tables never runs a generation, as a view would. ``synth.workflows`` keeps the query as given,
its parameters, the models it reads and what it runs with the default arguments (after the
rewrite); the macro hands its arguments to ``run_sql``, which fills them into the saved query
and rewrites it (filter pushdown), so a parameter may sit in a pushed-down predicate. (The
macro body reads a macro parameter so that DuckDB, which binds a constant body when the macro is
created, does not run the generation then.)
"""

from __future__ import annotations

import json
import re

import duckdb
import sqlglot
from sqlglot import exp

from . import catalog, sqltext
from .errors import SynthError
from .rewrite import DUCKDB, kwargs, model_name, rewrite_sql

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HIDDEN = "_workflow"


def create_workflow(
    con: duckdb.DuckDBPyConnection, name: str, sql: str, parameters: dict | None
) -> dict:
    """Save ``sql`` as table macro ``name(parameters...)``.

    >>> FROM create_workflow('fraud_drill', 'FROM generate(''fraud'', target => n) WHERE fraud = 1',
    ...                      parameters => {'n': 1000})
    """
    if not isinstance(name, str) or not NAME.match(name):
        raise SynthError(f"create_workflow(): name must be an identifier, got {name!r}")
    parameters = parameters or {}
    bad = [p for p in parameters if not NAME.match(p)]
    if bad:
        raise SynthError(f"create_workflow(): parameter name {bad[0]!r} is not an identifier")
    _check_free(con, name)
    statements, notes = rewrite_sql(_filled(sql, parameters), *catalog.column_lookups(con))
    if len(statements) != 1:
        raise SynthError("create_workflow(): give exactly one query")
    runs_as = statements[0].strip().rstrip(";")
    try:
        tree = sqlglot.parse_one(runs_as, read=DUCKDB)
    except sqlglot.errors.ParseError as error:
        raise SynthError(f"create_workflow(): {str(error).splitlines()[0]}") from None
    if not isinstance(tree, exp.Query):
        raise SynthError("create_workflow(): the workflow must be a query (SELECT / FROM ...)")
    models = sorted(_models_read(tree))
    for model in models:
        catalog.resolve_version(con, model)  # an unknown model fails now, not when run
    # names are identifiers (checked above) and quoted all the same; values are literals
    quoted = sqltext.quote_identifier
    arguments = [f"{quoted(p)} := {sqltext.sql_literal(v)}" for p, v in parameters.items()]
    given = ", ".join(f"{sqltext.quote_literal(p)}: {quoted(p)}" for p in parameters)
    values = f"CAST(to_json({{{given}}}) AS VARCHAR)" if parameters else "'{}'"  # no empty {}
    # through synth_call, as the shipped macros: outside duck_synth it fails with one clear line
    call = f"[{sqltext.quote_literal(name)}, {values}, coalesce(CAST({HIDDEN} AS VARCHAR), '')]"
    body = f"FROM query(synth_call('synth_workflow', {call}))"
    signature = ", ".join([*arguments, f"{HIDDEN} := NULL"])
    try:
        with catalog.transaction(con):
            con.execute(
                f"CREATE OR REPLACE MACRO {sqltext.quote_identifier(name)}({signature}) "
                f"AS TABLE {body}"
            )
            con.execute("DELETE FROM synth.workflows WHERE name = ?", [name])
            con.execute(
                "INSERT INTO synth.workflows VALUES (?, ?, ?, ?, ?, ?)",
                [name, sql, runs_as, json.dumps(parameters), json.dumps(models), catalog.utc_now()],
            )
    except duckdb.Error as error:
        raise SynthError(f"create_workflow(): {str(error).splitlines()[0]}") from None
    return {"workflow": name, "models": models, "rewrite": notes.lines, "runs_as": runs_as}


def run_sql(con: duckdb.DuckDBPyConnection, name: str, arguments_json: str) -> str:
    """Workflow ``name``'s query with the macro's arguments filled in, then rewritten (so a
    parameter inside a pushed-down predicate is filled in before the predicate moves)."""
    row = con.execute("SELECT sql FROM synth.workflows WHERE name = ?", [name]).fetchone()
    if row is None:
        raise SynthError(f"workflow '{name}' is not in synth.workflows (dropped?)")
    filled = _filled(row[0], json.loads(arguments_json or "{}") or {})
    statements, _ = rewrite_sql(filled, *catalog.column_lookups(con))
    # run under the caller's rights: a read-only caller may run a workflow that only reads
    return sqltext.query(con, statements[0], f"workflow {name}()")


def _filled(sql: str, values: dict) -> str:
    """``sql`` with each bare column reference named as a parameter replaced by its value."""
    try:
        tree = sqlglot.parse_one(sql, read=DUCKDB)
    except sqlglot.errors.ParseError as error:
        raise SynthError(f"create_workflow(): {str(error).splitlines()[0]}") from None

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in values:
            return exp.convert(values[node.name])
        return node

    return tree.transform(fill).sql(DUCKDB)


def drop_workflow(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    if not con.execute("SELECT count(*) FROM synth.workflows WHERE name = ?", [name]).fetchone()[0]:
        raise SynthError(f"drop_workflow(): unknown workflow '{name}'")
    with catalog.transaction(con):
        con.execute(f"DROP MACRO TABLE IF EXISTS {sqltext.quote_identifier(name)}")
        con.execute("DELETE FROM synth.workflows WHERE name = ?", [name])
    return {"workflow": name, "dropped": True}


def workflow_queries(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each workflow's name and the query it runs."""
    try:
        rows = con.execute("SELECT name, runs_as FROM synth.workflows").fetchall()
    except duckdb.Error:  # a catalog from before workflows
        return {}
    return dict(rows)


def _check_free(con, name: str) -> None:
    """A workflow may replace a workflow, never a table, view or another function."""
    if name in workflow_queries(con):
        return
    taken = (
        con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE lower(function_name) = lower(?)", [name]
        ).fetchone()[0]
        + con.execute(
            "SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() UNION ALL "
            "SELECT view_name FROM duckdb_views()) WHERE lower(n) = lower(?)",
            [name],
        ).fetchone()[0]
    )
    if taken:
        raise SynthError(f"create_workflow(): '{name}' is already a function, table or view")


def _models_read(tree: exp.Expression) -> set[str]:
    """Models named by literals in generate('m'), generate_into('t', 'm') and model => 'm'."""
    found = set()
    for call in tree.find_all(exp.Anonymous):
        function = call.name.lower()
        names = []
        if function == "generate":
            names.append(model_name(call))
        elif function == "generate_into" and len(call.expressions) > 1:
            second = call.expressions[1]
            names.append(second.this if isinstance(second, exp.Literal) else None)
        if "model" in kwargs(call):
            value = kwargs(call)["model"].expression
            names.append(value.this if isinstance(value, exp.Literal) else None)
        found |= {n.split("@", 1)[0] for n in names if n}
    return found
