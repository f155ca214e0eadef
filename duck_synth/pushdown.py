"""Predicates sink through every query shape to the generate() they read.

``sink_predicates`` moves each WHERE conjunct over a derived table (a subquery, a CTE read once,
an expanded view) into that table's own WHERE, with the outer column names replaced by the
expressions they stand for; the inner select is visited next, so a conjunct goes down as many
levels as it can, and ``rewrite.push_predicates`` finally moves it into generate()'s filter.

Scopes, sources and how often a CTE is read come from sqlglot's optimizer (``scope``); this pass
does what ``pushdown_predicates`` does for derived tables, but on the tree as written:
``qualify`` would expand every star and rename every unnamed column (``COUNT(*) AS _col_1``),
which changes the columns a BI tool reads, and it cannot see a table function's columns.

A conjunct stays where it is (applied after generation, as ``explain`` says) when it touches
another source, or the derived table has LIMIT/OFFSET, window functions, DISTINCT ON, QUALIFY,
ROLLUP/CUBE/GROUPING SETS, a CTE read twice, or sits on the NULL-extended side of an outer join;
or the column it reads is an aggregate. Into a set operation (UNION, INTERSECT, EXCEPT) it moves
into every branch, the columns matched by position (or by name where every branch is
``SELECT *`` over generate() of one model).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from .sqltext import DUCKDB

BLOCKING = ("limit", "offset", "fetch", "qualify")


def reads_generate(node: exp.Expression) -> bool:
    return any(
        isinstance(t.this, exp.Anonymous) and t.this.name.lower() == "generate"
        for t in node.find_all(exp.Table)
    )


def scope_reads_generate(scope: Scope) -> bool:
    """Whether ``scope`` reads generate(), itself or through the CTEs and subqueries it reads."""
    return reads_generate(scope.expression) or any(
        isinstance(source, Scope) and scope_reads_generate(source)
        for source in scope.sources.values()
    )


def conjuncts(where: exp.Where | None) -> list[exp.Expression]:
    if where is None:
        return []
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


def _null_extended(select: exp.Select) -> set[str]:
    """Names of the sources an outer join of ``select`` can NULL-extend."""
    names: list[str] = []
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is not None:
        names.append(from_.this.alias_or_name.lower())
    extended: set[str] = set()
    for join in select.args.get("joins") or []:
        name = join.this.alias_or_name.lower()
        side = (join.args.get("side") or "").upper()
        if side in ("LEFT", "FULL"):
            extended.add(name)
        if side in ("RIGHT", "FULL"):
            extended.update(names)
        names.append(name)
    return extended


def _is_star(projection: exp.Expression) -> bool:
    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def _inner_expression(
    derived: exp.Expression, select: exp.Select, name: str
) -> exp.Expression | None:
    """What outer column ``name`` of derived table ``derived`` is inside ``select``."""
    holder = select.parent if isinstance(select.parent, exp.Subquery | exp.CTE) else derived
    alias = holder.args.get("alias")
    renamed = [c.name.lower() for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    stars = [p for p in select.expressions if _is_star(p)]
    if renamed:
        if stars or name not in renamed or len(renamed) > len(select.expressions):
            return None
        return select.expressions[renamed.index(name)].unalias()
    for projection in select.expressions:
        if not _is_star(projection) and projection.alias_or_name.lower() == name:
            return projection.unalias()
    if len(stars) != 1:
        return None
    star = stars[0] if isinstance(stars[0], exp.Star) else stars[0].this
    if any(star.args.get(k) for k in ("replace", "replace_", "rename", "rename_")):
        return None
    excluded = star.args.get("except_") or star.args.get("except") or []
    if name in (e.name.lower() for e in excluded):
        return None
    table = stars[0].table if isinstance(stars[0], exp.Column) else ""
    if not table and select.args.get("joins"):
        return None  # ``*`` over a join: which side has the column is for DuckDB to say
    return exp.column(name, table=table or None)


def _why_not_into(scope: Scope, derived: exp.Expression) -> str | None:
    query = scope.expression
    if isinstance(query, exp.SetOperation):
        if query.args.get("by_name") or query.args.get("side") or query.args.get("on"):
            return "reads a set operation BY NAME"
        for key in BLOCKING:
            if query.args.get(key):
                return f"the set operation has {key.upper()}"
        branches = _branches(query)
        reasons = [_why_not_into_select(b) for b in branches]
        return next((r for r in reasons if r), None)
    return _why_not_into_select(query)


def _why_not_into_select(select: exp.Expression) -> str | None:
    if not isinstance(select, exp.Select):
        return "a branch of the set operation is a parenthesized query with LIMIT or OFFSET"
    for key in BLOCKING:
        if select.args.get(key):
            return f"the subquery has {key.upper()}"
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        return "the subquery has DISTINCT ON"
    group = select.args.get("group")
    if group is not None and any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
        return "the subquery has ROLLUP, CUBE or GROUPING SETS"
    if any(p.find(exp.Window) for p in select.expressions):
        return "the subquery has window functions"
    return None


def _branches(query: exp.Expression) -> list[exp.Expression]:
    """The selects of a set operation, left to right (``A UNION B UNION C`` nests on the left)."""
    if isinstance(query, exp.SetOperation):
        return _branches(query.this) + _branches(query.expression)
    if isinstance(query, exp.Subquery) and not any(query.args.get(k) for k in ("alias", *BLOCKING)):
        return _branches(query.this)  # a parenthesized branch: (A UNION B)
    return [query]


def _generate_model(select: exp.Select) -> str | None:
    """The model a ``SELECT * FROM generate('model', ...)`` reads, else None."""
    from_ = select.args.get("from_") or select.args.get("from")
    source = from_.this if from_ is not None else None
    if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Anonymous):
        return None
    call = source.this
    if call.name.lower() != "generate" or not call.expressions:
        return None
    model = call.expressions[0]
    return model.name if isinstance(model, exp.Literal) and model.is_string else None


def _branch_expressions(derived: exp.Expression, query: exp.SetOperation, name: str):
    """What outer column ``name`` of a set operation is in each of its branches: by position
    (the first branch names the columns), or by name where every branch is ``SELECT *`` over
    generate() of one model (same columns, same order)."""
    branches = _branches(query)
    alias = (
        query.parent if isinstance(query.parent, exp.Subquery | exp.CTE) else derived
    ).args.get("alias")
    renamed = [c.name.lower() for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    if all(len(b.expressions) == 1 and _is_star(b.expressions[0]) for b in branches):
        models = {_generate_model(b) for b in branches}
        if renamed or len(models) != 1 or None in models:
            return None
        return [exp.column(name) for _ in branches]
    if any(_is_star(p) for b in branches for p in b.expressions):
        return None
    names = renamed or [p.alias_or_name.lower() for p in branches[0].expressions]
    if names.count(name) != 1:
        return None
    position = names.index(name)
    if any(len(b.expressions) <= position for b in branches):
        return None
    return [b.expressions[position].unalias() for b in branches]


def _owner(column: exp.Column, scope: Scope, outputs) -> str | None:
    """The source name ``column`` reads, None when it cannot be told."""
    sources = scope.selected_sources
    if column.table:
        return column.table.lower() if column.table.lower() in sources else None
    if len(sources) == 1:
        return next(iter(sources)).lower()
    having = [n for n in sources if outputs(n) is None or column.name.lower() in outputs(n)]
    return having[0].lower() if len(having) == 1 else None


def sink_predicates(tree: exp.Expression, columns_of_table, notes) -> exp.Expression:
    for query in [q for q in tree.find_all(exp.Query) if not q.find_ancestor(exp.Query)]:
        root = build_scope(query)
        if root is None or not reads_generate(query):
            continue
        reads = root.ref_count()
        # outer scopes first: a conjunct moved into a subquery moves on from there
        for scope in reversed(list(root.traverse())):
            if isinstance(scope.expression, exp.Select):
                _sink(scope, reads, columns_of_table, notes)
    return tree


def _sink(scope: Scope, reads, columns_of_table, notes) -> None:
    select = scope.expression
    sources = {name.lower(): pair for name, pair in scope.selected_sources.items()}
    derived = {n: (node, s) for n, (node, s) in sources.items() if isinstance(s, Scope)}
    if not any(scope_reads_generate(s) for _, s in derived.values()):
        return
    extended = _null_extended(select)

    def outputs(name: str) -> set[str] | None:
        node, source = sources[name.lower()]
        if isinstance(source, Scope):
            inner = source.expression
            if not isinstance(inner, exp.Select) or any(_is_star(p) for p in inner.expressions):
                return None
            return {p.alias_or_name.lower() for p in inner.expressions}
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            columns = columns_of_table(".".join(p.name for p in source.parts))
            return {c.lower() for c in columns} if columns is not None else None
        return None

    kept = []
    for conjunct in conjuncts(select.args.get("where")):
        columns = list(conjunct.find_all(exp.Column))
        owners = {_owner(c, scope, outputs) for c in columns}
        name = next(iter(owners)) if len(owners) == 1 else None
        if name not in derived or conjunct.find(exp.Subquery, exp.Select, exp.AggFunc):
            kept.append(conjunct)
            continue
        node, inner_scope = derived[name]
        if not scope_reads_generate(inner_scope):
            kept.append(conjunct)
            continue
        reason = _why_not_into(inner_scope, node)
        if reason is None and name in extended:
            reason = "above an outer join that can NULL-extend the generated rows"
        if reason is None and reads.get(id(inner_scope), 0) > 1:
            reason = f"the CTE {name} is read more than once"
        moves = []
        if reason is None:
            moves, reason = _moves(conjunct, node, inner_scope.expression, name)
        if reason is not None:
            kept.append(conjunct)
            notes.add(f"kept in WHERE: {conjunct.sql(DUCKDB)} ({reason}; applied after generation)")
            continue
        for into, moved in moves:
            into.where(moved, copy=False)
    select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)


def _moves(conjunct: exp.Expression, derived: exp.Expression, query: exp.Expression, name: str):
    """``conjunct`` rewritten for each select it moves into (one, or every branch of a set
    operation: a filter of a UNION, INTERSECT or EXCEPT is that filter of each branch), or why
    it cannot move."""
    branches = _branches(query)
    moved = [conjunct.copy() for _ in branches]
    columns_of_copies = [list(copy.find_all(exp.Column)) for copy in moved]  # before replacing
    for index, column in enumerate(list(conjunct.find_all(exp.Column))):
        outer = column.name.lower()
        if isinstance(query, exp.SetOperation):
            inners = _branch_expressions(derived, query, outer)
        else:
            inners = [_inner_expression(derived, query, outer)]
        if inners is None or any(i is None or i.find(exp.AggFunc, exp.Window) for i in inners):
            return [], f"{column.sql(DUCKDB)} is an aggregate or not a plain column of {name}"
        for columns, inner in zip(columns_of_copies, inners, strict=True):
            target = columns[index]
            atomic = isinstance(inner, exp.Column | exp.Literal)
            target.replace(inner.copy() if atomic else exp.paren(inner.copy()))
    return list(zip(branches, moved, strict=True)), None
