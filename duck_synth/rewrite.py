"""The duck_synth dialect on top of DuckDB's SQL: small sqlglot passes, each tree -> tree.

- ``check_arguments``: named arguments of train()/generate() must exist (one clear line).
- ``expand_views`` (views.py): a view over generate() is read as its SQL, as a subquery.
- ``sink_predicates`` (pushdown.py): WHERE conjuncts over subqueries, CTEs and views move down
  into them, level by level, toward the generate() they read.
- ``push_predicates``: WHERE conjuncts that reference only a generate() call's columns move into
  its ``filter`` argument, so generate() conditions on them and ``target`` counts rows that pass.
  Not pushed: conjuncts that touch another source, sit above an outer join that NULL-extends the
  generated side, contain subqueries, aggregates, window or volatile functions, or a generate()
  with seed_rows.
- ``push_limit``: ``LIMIT n`` caps, never inflates: over a generate() read as is (through
  subqueries that only project), ``target => t`` becomes ``target => least(t, n)``; without a
  target or filter, ``target => n`` when n is at most the training rows (the default); else the
  default rows are capped with ``at_most => n``. ORDER BY, aggregates, a WHERE left
  after generation or OFFSET keep LIMIT where it is.
- ``mark_views`` (views.py): CREATE VIEW stores its generate() calls so that binding the view
  (creating, describing it) reads their columns only.

Each pass records notes (what went where and why) that ``explain`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from . import surface
from .errors import SynthError
from .pushdown import sink_predicates
from .sqltext import DUCKDB, quiet_sqlglot
from .views import ViewSql, expand_views, mark_views

ColumnsOf = Callable[[str], list[str] | None]
RowsOf = Callable[[str], int | None]
VOLATILE = {"random", "uuid", "gen_random_uuid", "nextval", "setseed", "now", "current_timestamp"}


@dataclass
class Notes:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)


def generate_call(node: exp.Expression) -> exp.Anonymous | None:
    if (
        isinstance(node, exp.Table)
        and isinstance(node.this, exp.Anonymous)
        and node.this.name.lower() == "generate"
    ):
        return node.this
    return None


def standalone_call(sql: str, name: str) -> exp.Anonymous | None:
    """The call when ``sql`` is nothing but ``[SELECT * ]FROM name(...)``."""
    try:
        with quiet_sqlglot():
            tree = sqlglot.parse_one(sql, read=DUCKDB)
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    others = {k for k, v in tree.args.items() if v and k not in ("from_", "from", "expressions")}
    from_ = tree.args.get("from_") or tree.args.get("from")
    stars = [isinstance(e, exp.Star) for e in tree.expressions]
    if others or from_ is None or stars != [True]:
        return None
    source = from_.this
    if (
        isinstance(source, exp.Table)
        and isinstance(source.this, exp.Anonymous)
        and source.this.name.lower() == name
        and not source.alias
    ):
        return source.this
    return None


def kwargs(call: exp.Anonymous) -> dict[str, exp.Kwarg]:
    return {k.this.name.lower(): k for k in call.expressions if isinstance(k, exp.Kwarg)}


def model_name(call: exp.Anonymous) -> str | None:
    first = call.expressions[0] if call.expressions else None
    return first.this if isinstance(first, exp.Literal) and first.is_string else None


def call_label(call: exp.Anonymous) -> str:
    return f"generate('{model_name(call)}')"


# -- pass: argument names --------------------------------------------------------------------
def check_arguments(tree: exp.Expression) -> exp.Expression:
    for call in tree.find_all(exp.Anonymous):
        known = surface.arguments(call.name)
        if known is None:
            continue
        for name in kwargs(call):
            if name not in known:
                raise SynthError(
                    f"{call.name.lower()}(): unknown argument '{name}' (known: {', '.join(sorted(known))})"
                )
    return tree


# -- pass: predicate pushdown ---------------------------------------------------------------
@dataclass
class Source:
    name: str  # alias or table name, lower case
    node: exp.Expression
    columns: list[str] | None  # None: unknown
    call: exp.Anonymous | None = None
    nullable: bool = False


def _sources(
    select: exp.Select, columns_of_model: ColumnsOf, columns_of_table: ColumnsOf
) -> list[Source]:
    found = []
    from_ = select.args.get("from_") or select.args.get("from")
    items = [(from_.this, None)] if from_ is not None else []
    items += [(j.this, j) for j in select.args.get("joins") or []]
    for node, join in items:
        call = generate_call(node)
        alias = node.alias_or_name if not call else (node.alias or "generate")
        if call is not None:
            model = model_name(call)
            columns = columns_of_model(model) if model else None
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            columns = columns_of_table(".".join(p.name for p in node.parts))
        else:
            columns = None
        source = Source(alias.lower(), node, columns, call)
        side = (join.args.get("side") or "").upper() if join is not None else ""
        if side in ("LEFT", "FULL") and join is not None:
            source.nullable = True
        if side in ("RIGHT", "FULL"):
            for earlier in found:
                earlier.nullable = True
        found.append(source)
    return found


def _owner(column: exp.Column, sources: list[Source]) -> Source | None:
    if column.table:
        return next((s for s in sources if s.name == column.table.lower()), None)
    if len(sources) == 1:
        return sources[0]
    if any(s.columns is None for s in sources if s.call is None):
        return None
    having = [
        s
        for s in sources
        if s.columns is not None and column.name.lower() in (c.lower() for c in s.columns)
    ]
    unknown = [s for s in sources if s.columns is None]
    return having[0] if len(having) == 1 and not unknown else None


def _unpushable_reason(conjunct: exp.Expression) -> str | None:
    if conjunct.find(exp.Subquery, exp.Select):
        return "contains a subquery"
    if conjunct.find(exp.AggFunc):
        return "contains an aggregate"
    if conjunct.find(exp.Window):
        return "contains a window function"
    for func in conjunct.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if name in VOLATILE or isinstance(func, exp.Rand):
            return f"calls the volatile function {name}()"
    if not list(conjunct.find_all(exp.Column)):
        return "references no generated column"
    return None


def push_predicates(
    tree: exp.Expression, columns_of_model: ColumnsOf, columns_of_table: ColumnsOf, notes: Notes
) -> exp.Expression:
    for select in list(tree.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        sources = _sources(select, columns_of_model, columns_of_table)
        if not any(s.call is not None for s in sources):
            continue
        kept = []
        pushed: dict[int, list[exp.Expression]] = {}
        for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
            text = conjunct.sql(DUCKDB)
            reason = _unpushable_reason(conjunct)
            owners = {
                id(_owner(c, sources)) if _owner(c, sources) else None
                for c in conjunct.find_all(exp.Column)
            }
            target = next((s for s in sources if s.call is not None and owners == {id(s)}), None)
            if reason is None and target is None:
                reason = "references another source (or an ambiguous column)"
            if reason is None and target.nullable:
                reason = "is above an outer join that can NULL-extend the generated rows"
            if reason is None and "seed_rows" in kwargs(target.call):
                reason = "the generate() call has seed_rows"
            if reason is None and target.columns is not None:
                missing = [
                    c.name
                    for c in conjunct.find_all(exp.Column)
                    if c.name.lower() not in (x.lower() for x in target.columns)
                ]
                if missing:
                    raise SynthError(
                        f"unknown column '{missing[0]}' in WHERE: {call_label(target.call)} has "
                        f"{', '.join(target.columns)}"
                    )
            if reason is None and target.columns is None:
                reason = "the model is unknown"
            if reason is not None:
                kept.append(conjunct)
                notes.add(f"kept in WHERE: {text} ({reason})")
                continue
            pushed.setdefault(id(target), []).append(conjunct)
            notes.add(f"pushed into {call_label(target.call)}: {text}")
        for source in sources:
            if id(source) in pushed:
                _add_filter(source.call, pushed[id(source)])
        select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
    return tree


def _add_filter(call: exp.Anonymous, conjuncts: list[exp.Expression]) -> None:
    predicate = exp.and_(*[c.copy() for c in conjuncts])
    for column in predicate.find_all(exp.Column):
        column.set("table", None)
    existing = kwargs(call)
    previous = existing.get("filter") or existing.get("where")
    if previous is not None:
        predicate = exp.and_(
            sqlglot.parse_one(f"SELECT 1 WHERE {previous.expression.this}", read=DUCKDB)
            .args["where"]
            .this,
            predicate,
        )
        call.set("expressions", [e for e in call.expressions if e is not previous])
    call.append(
        "expressions",
        exp.Kwarg(this=exp.var("filter"), expression=exp.Literal.string(predicate.sql(DUCKDB))),
    )


# -- pass: LIMIT caps the target ------------------------------------------------------------
LIMIT_BLOCKERS = ("where", "group", "having", "order", "qualify", "offset", "distinct", "joins")


def _projects_only(select: exp.Select) -> bool:
    """Whether ``select`` passes its source's rows through one for one (projections only)."""
    if any(select.args.get(k) for k in LIMIT_BLOCKERS):
        return False
    return not any(e.find(exp.AggFunc, exp.Window) for e in select.expressions)


def _limited_call(select: exp.Select) -> exp.Anonymous | None:
    """The generate() whose rows ``select`` reads one for one, through projecting subqueries."""
    while _projects_only(select):
        from_ = select.args.get("from_") or select.args.get("from")
        source = from_.this if from_ is not None else None
        call = generate_call(source) if source is not None else None
        if call is not None:
            return call
        if not isinstance(source, exp.Subquery) or not isinstance(source.this, exp.Select):
            return None
        if source.this.args.get("limit"):
            return None  # the inner LIMIT is its own cap
        select = source.this
    return None


def push_limit(
    tree: exp.Expression, notes: Notes, rows_of_model: RowsOf | None = None
) -> exp.Expression:
    for select in list(tree.find_all(exp.Select)):
        limit = select.args.get("limit")
        count = limit.expression if limit is not None else None
        if not (isinstance(count, exp.Literal) and count.is_int):
            continue
        call = _limited_call(select)
        if call is None:
            continue
        given = kwargs(call)
        target = given.get("target")
        if "seed_rows" in given or "at_most" in given:
            continue
        # no target and nothing that filters: the default is the training rows, known here
        unfiltered = not {"filter", "where", "conditions", "constraints", "magnitude"} & set(given)
        rows = rows_of_model(model_name(call)) if rows_of_model and model_name(call) else None
        if target is None and unfiltered and rows is not None and int(count.this) <= rows:
            call.append("expressions", exp.Kwarg(this=exp.var("target"), expression=count.copy()))
            notes.add(f"LIMIT {count.this} caps {call_label(call)}: target => {count.this}")
            continue
        if target is None:  # the default (or magnitude) is known when generate() runs
            call.append("expressions", exp.Kwarg(this=exp.var("at_most"), expression=count.copy()))
            notes.add(f"LIMIT {count.this} caps {call_label(call)}: at_most => {count.this}")
            continue
        value = target.expression
        if isinstance(value, exp.Literal) and value.is_int:
            if int(value.this) <= int(count.this):
                continue
            target.set("expression", count.copy())
        else:
            least = exp.Anonymous(this="least", expressions=[value.copy(), count.copy()])
            target.set("expression", least)
        notes.add(f"LIMIT {count.this} caps the target of {call_label(call)}")
    return tree


RESERVED_ARGUMENTS = {"table": "table_name"}  # quoted in SQL, lost by sqlglot's output


def unreserve_arguments(tree: exp.Expression) -> exp.Expression:
    """``"table" => ..`` as the argument it fills (``table_name``): sqlglot writes a named
    argument's name unquoted, and DuckDB's parser refuses a reserved word there."""
    for kwarg in tree.find_all(exp.Kwarg):
        name = RESERVED_ARGUMENTS.get(kwarg.this.name.lower())
        if name is not None:
            kwarg.set("this", exp.var(name))
    return tree


def rewrite(
    tree: exp.Expression,
    columns_of_model: ColumnsOf,
    columns_of_table: ColumnsOf,
    notes: Notes | None = None,
    view_sql: ViewSql | None = None,
    rows_of_model: RowsOf | None = None,
) -> exp.Expression:
    notes = notes if notes is not None else Notes()
    tree = unreserve_arguments(tree)
    tree = check_arguments(tree)
    tree = expand_views(tree, view_sql, notes)
    tree = sink_predicates(tree, columns_of_table, notes)
    tree = push_predicates(tree, columns_of_model, columns_of_table, notes)
    tree = push_limit(tree, notes, rows_of_model)
    return mark_views(tree, notes)


def rewrite_sql(
    sql: str,
    columns_of_model: ColumnsOf,
    columns_of_table: ColumnsOf,
    view_sql: ViewSql | None = None,
    rows_of_model: RowsOf | None = None,
) -> tuple[list[str], Notes]:
    """Rewritten statements (the original text where nothing changed) and the notes."""
    notes = Notes()
    try:
        with quiet_sqlglot():
            trees = [t for t in sqlglot.parse(sql, read=DUCKDB) if t is not None]
    except sqlglot.errors.SqlglotError:
        return [sql], notes
    original = [t.sql(DUCKDB) for t in trees]
    rewritten = [
        rewrite(t, columns_of_model, columns_of_table, notes, view_sql, rows_of_model).sql(DUCKDB)
        for t in trees
    ]
    return ([sql] if rewritten == original else rewritten), notes
