"""Views over generate(): expanded by the rewrite, never bound to generate.

DuckDB binds a view's query when the view is created and whenever it is described (``DESCRIBE
v``, a BI tool reading its columns), and binding generate() runs the generation. So:

- ``mark_views``: ``CREATE VIEW`` stores each generate() call with ``conditions => '{"view":
  "columns only"}'``; bound with that mark, generate() answers its columns and no rows
  (``columns_sql``), and logs no generation.
- ``expand_views``: a query reading the view gets the view's SQL from ``duckdb_views()`` in
  its place, the mark removed, so the query's predicates and LIMIT reach generate() like any
  subquery's, and DuckDB never binds the view itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlglot
from sqlglot import exp

from .pushdown import reads_generate
from .sqltext import DUCKDB, quiet_sqlglot, quote_identifier

ViewSql = Callable[[str], str | None]
MARK_KEY, MARK_VALUE = "view", "columns only"
MAX_DEPTH = 16  # views over views


def _calls(node: exp.Expression) -> list[exp.Anonymous]:
    """The generate() calls in ``node``, named arguments as ``name => value`` (DuckDB stores a
    view's as ``"name" := value``, which the other passes would not recognise)."""
    calls = [
        t.this
        for t in node.find_all(exp.Table)
        if isinstance(t.this, exp.Anonymous) and t.this.name.lower() == "generate"
    ]
    for call in calls:
        for argument in call.expressions:
            if isinstance(argument, exp.PropertyEQ):
                name = exp.var(argument.this.name)
                argument.replace(exp.Kwarg(this=name, expression=argument.expression))
    return calls


def _conditions(call: exp.Anonymous) -> exp.Kwarg | None:
    return next(
        (
            k
            for k in call.expressions
            if isinstance(k, exp.Kwarg) and k.this.name.lower() == "conditions"
        ),
        None,
    )


def _as_object(kwarg: exp.Kwarg | None) -> dict | None:
    """A conditions argument as a JSON object ({} when absent; None when not a literal one)."""
    if kwarg is None:
        return {}
    value = kwarg.expression
    if not (isinstance(value, exp.Literal) and value.is_string):
        return None
    try:
        parsed = json.loads(value.this)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _set_conditions(call: exp.Anonymous, conditions: dict) -> None:
    old = _conditions(call)
    call.set("expressions", [e for e in call.expressions if e is not old])
    if conditions:
        text = exp.Literal.string(json.dumps(conditions))
        call.append("expressions", exp.Kwarg(this=exp.var("conditions"), expression=text))


# -- pass: CREATE VIEW stores its generate() calls marked ------------------------------------
def mark_views(tree: exp.Expression, notes) -> exp.Expression:
    if not (isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW"):
        return tree
    for call in _calls(tree):
        conditions = _as_object(_conditions(call))
        if conditions is None:
            notes.add("a generate() call with computed conditions is bound when the view is")
            continue
        _set_conditions(call, {**conditions, MARK_KEY: MARK_VALUE})
    return tree


def is_marked(options_json: str) -> bool:
    """Whether generate() was bound from a view's stored SQL (create, describe)."""
    conditions = json.loads(options_json).get("conditions")
    if not isinstance(conditions, str):
        return False
    try:
        parsed = json.loads(conditions)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get(MARK_KEY) == MARK_VALUE


def columns_sql(columns: list[tuple[str, str]]) -> str:
    """No rows, with the model's columns and types."""
    items = ", ".join(f"CAST(NULL AS {t}) AS {quote_identifier(n)}" for n, t in columns)
    return f"SELECT {items} WHERE false"


# -- pass: views over generate() expanded in place ----------------------------------------
def expand_views(tree: exp.Expression, view_sql: ViewSql | None, notes) -> exp.Expression:
    if view_sql is None or isinstance(tree, exp.Create | exp.Describe) and not _is_ctas(tree):
        return tree
    return _expand(tree, view_sql, notes, MAX_DEPTH)


def _is_ctas(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "TABLE"


def _expand(tree: exp.Expression, view_sql: ViewSql, notes, depth: int) -> exp.Expression:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier) or not table.find_ancestor(exp.Query):
            continue
        name = ".".join(p.name for p in table.parts)
        if not table.args.get("db") and name.lower() in ctes:
            continue
        query, renamed = _view_query(view_sql(name))
        if query is None:
            continue
        if depth == 0:
            notes.add(f"view {name} not expanded: views nest more than {MAX_DEPTH} deep")
            continue
        query = _expand(query, view_sql, notes, depth - 1)
        for call in _calls(query):  # the stored SQL as written, without the mark
            conditions = _as_object(_conditions(call)) or {}
            if conditions.get(MARK_KEY) == MARK_VALUE:
                del conditions[MARK_KEY]
                _set_conditions(call, conditions)
        alias = table.args.get("alias")
        if alias is None:
            alias = exp.TableAlias(this=exp.to_identifier(table.name))
        if renamed:
            alias.set("columns", renamed)
        table.replace(exp.Subquery(this=query, alias=alias))
        notes.add(f"view {name} expanded (it reads generate())")
    return tree


def _view_query(text: str | None) -> tuple[exp.Query | None, list[exp.Identifier]]:
    """The query of a view that reads generate(), and the column names the view gives."""
    if not text or "generate" not in text.lower():
        return None, []
    try:
        with quiet_sqlglot():
            create = sqlglot.parse_one(text, read=DUCKDB)
    except sqlglot.errors.SqlglotError:
        return None, []
    query = create.expression if isinstance(create, exp.Create) else None
    if not isinstance(query, exp.Query) or not reads_generate(query):
        return None, []
    # CREATE VIEW v(a, b) AS ...: the names go on the alias the view is read under
    schema = create.this
    names = schema.expressions if isinstance(schema, exp.Schema) else []
    return query, [exp.to_identifier(c.name) for c in names]
