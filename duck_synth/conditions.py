"""From a SQL predicate over generated columns to sampling conditions.

The predicate's conjuncts that have the form ``column <op> literal`` (=, IN, <, <=, >, >=,
BETWEEN, IS [NOT] NULL, a bare boolean column) become per-column restrictions, which the model
samples under (conditional sampling, not rejection). The whole predicate is also kept as a
residual filter evaluated on every generated batch, so what cannot be narrowed is filtered and
what was narrowed is checked exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlglot import exp

from . import sqltext
from .encoding import Encoder, Restriction
from .errors import SynthError
from .rewrite import DUCKDB

COMPARISONS = {
    exp.EQ: "eq",
    exp.NEQ: "ne",
    exp.GT: "gt",
    exp.GTE: "ge",
    exp.LT: "lt",
    exp.LTE: "le",
}
FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


@dataclass
class CompiledFilter:
    sql: str | None = None
    restrictions: dict[str, Restriction] = field(default_factory=dict)
    narrowed: list[str] = field(default_factory=list)  # conjuncts used for conditional sampling
    filtered: list[str] = field(default_factory=list)  # conjuncts only checked batch by batch


# PostAmplify's JSON conditions: {"eq": {"fraud": 1}}, composable with and / or / not
JSON_COMPARISONS = {
    "eq": exp.EQ,
    "ne": exp.NEQ,
    "gt": exp.GT,
    "gte": exp.GTE,
    "lt": exp.LT,
    "lte": exp.LTE,
}
JSON_OPERATORS = [*JSON_COMPARISONS, "in", "not_in", "between", "is_null", "is_not_null"]
JSON_OPERATORS += ["like", "and", "or", "not"]


def json_predicate(text: str) -> str:
    """The SQL predicate of a JSON condition (a PostAmplify ``{"query_ast": ...}`` wrapper is
    accepted). ``{"eq": {"a": 1, "b": "x"}}`` is ``a = 1 AND b = 'x'``; ``in`` / ``not_in``
    take lists, ``between`` a [low, high] pair, ``is_null`` / ``is_not_null`` a column or a
    list of them; ``and`` / ``or`` take lists of conditions, ``not`` one."""
    try:
        tree = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as error:
        raise SynthError(f"conditions: not valid JSON ({error.msg} at {error.pos})") from None
    if isinstance(tree, dict) and set(tree) == {"query_ast"}:
        tree = tree["query_ast"]
    return _json_node(tree).sql(DUCKDB)


def _json_node(node) -> exp.Expression:
    if not isinstance(node, dict) or len(node) != 1:
        raise SynthError(f"conditions: each condition is an object with one operator, got {node!r}")
    ((op, arg),) = node.items()
    if op in ("and", "or"):
        if not isinstance(arg, list) or not arg:
            raise SynthError(f"conditions: '{op}' takes a non-empty list of conditions")
        parts = [_json_node(a) for a in arg]
        return exp.and_(*parts) if op == "and" else exp.or_(*parts)
    if op == "not":
        return exp.not_(_json_node(arg))
    if op in ("is_null", "is_not_null"):
        names = arg if isinstance(arg, list) else [arg]
        if not names or not all(isinstance(n, str) for n in names):
            raise SynthError(f"conditions: '{op}' takes a column name or a list of them")
        tests = [exp.Is(this=_column(n), expression=exp.Null()) for n in names]
        tests = tests if op == "is_null" else [exp.not_(t) for t in tests]
        return exp.and_(*tests)
    if op not in JSON_OPERATORS:
        raise SynthError(
            f"conditions: unknown operator '{op}' (known: {', '.join(JSON_OPERATORS)})"
        )
    if not isinstance(arg, dict) or not arg:
        raise SynthError(f"conditions: '{op}' takes an object of column: value")
    return exp.and_(*(_json_test(op, column, value) for column, value in arg.items()))


def _json_test(op: str, column: str, value) -> exp.Expression:
    if op in ("eq", "ne") and value is None:  # = NULL is never true: the IS test is meant
        test = exp.Is(this=_column(column), expression=exp.Null())
        return test if op == "eq" else exp.not_(test)
    if op in JSON_COMPARISONS:
        return JSON_COMPARISONS[op](this=_column(column), expression=_literal(op, value))
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise SynthError(f"conditions: '{op}' on '{column}' takes a non-empty list")
        test = exp.In(this=_column(column), expressions=[_literal(op, v) for v in value])
        return test if op == "in" else exp.not_(test)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise SynthError(f"conditions: 'between' on '{column}' takes [low, high]")
        low, high = (_literal(op, v) for v in value)
        return exp.Between(this=_column(column), low=low, high=high)
    if not isinstance(value, str):  # like
        raise SynthError(f"conditions: 'like' on '{column}' takes a pattern string")
    return exp.Like(this=_column(column), expression=exp.Literal.string(value))


def _column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _literal(op: str, value) -> exp.Expression:
    if isinstance(value, dict | list):
        raise SynthError(f"conditions: '{op}' compares with a value, got {value!r}")
    return exp.convert(value)


def parse_predicate(text: str, what: str = "filter", con=None) -> exp.Expression:
    """One SQL predicate, parsed (and checked against the caller's rights when ``con`` is
    given); its SQL is written back from the tree, never pasted."""
    return sqltext.predicate(con, text, what)


def conjuncts(predicate: exp.Expression) -> list[exp.Expression]:
    return list(predicate.flatten()) if isinstance(predicate, exp.And) else [predicate]


def literal_value(node: exp.Expression):
    """The Python value of a literal (number, string, boolean, typed literal), else raise."""
    if isinstance(node, exp.Paren):
        return literal_value(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Neg):
        return -literal_value(node.this)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return literal_value(node.this)
    raise ValueError("not a literal")


def _simple(node: exp.Expression) -> tuple[str, str, object] | None:
    """(column, op, value) for a conjunct of a simple form, else None."""
    try:
        if type(node) in COMPARISONS:
            left, right, op = node.this, node.expression, COMPARISONS[type(node)]
            if isinstance(left, exp.Column):
                return left.name, op, literal_value(right)
            if isinstance(right, exp.Column):
                return right.name, FLIPPED[op], literal_value(left)
        if (
            isinstance(node, exp.In)
            and isinstance(node.this, exp.Column)
            and not node.args.get("query")
        ):
            return node.this.name, "in", [literal_value(v) for v in node.expressions]
        if (
            isinstance(node, exp.Is)
            and isinstance(node.this, exp.Column)
            and isinstance(node.expression, exp.Null)
        ):
            return node.this.name, "is_null", None
        if isinstance(node, exp.Not) and isinstance(node.this, exp.In):
            inner = _simple(node.this)
            return (inner[0], "not_in", inner[2]) if inner else None
        if isinstance(node, exp.Not) and isinstance(node.this, exp.Is):
            inner = _simple(node.this)
            return (inner[0], "is_not_null", None) if inner and inner[1] == "is_null" else None
        if isinstance(node, exp.Column):
            return node.name, "eq", True
        if isinstance(node, exp.Not) and isinstance(node.this, exp.Column):
            return node.this.name, "eq", False
    except ValueError:
        return None
    return None


def _between(node: exp.Expression) -> list[exp.Expression] | None:
    if isinstance(node, exp.Between) and isinstance(node.this, exp.Column):
        return [
            exp.GTE(this=node.this.copy(), expression=node.args["low"].copy()),
            exp.LTE(this=node.this.copy(), expression=node.args["high"].copy()),
        ]
    return None


def compile_filter(
    text: str | None,
    encoders: list[Encoder],
    model: str,
    other_columns: list[str] = (),
    con=None,
) -> CompiledFilter:
    """Conditions from a pushed-down predicate. Conjuncts on ``encoders``' columns may narrow
    sampling; ``other_columns`` (e.g. a session model's steps) are only ever filtered. With
    ``con``, the predicate is checked against the caller's rights."""
    if not text:
        return CompiledFilter()
    predicate = parse_predicate(text, con=con)
    by_name = {e.name: e for e in encoders}
    names = [e.name for e in encoders] + [c for c in other_columns if c not in by_name]
    lower = {name.lower(): name for name in names}
    for column in predicate.find_all(exp.Column):
        if column.name not in names and column.name.lower() not in lower:
            raise SynthError(
                f"filter: unknown column '{column.name}' (model '{model}' has: {', '.join(names)})"
            )
    compiled = CompiledFilter(sql=predicate.sql(DUCKDB))
    for conjunct in conjuncts(predicate):
        parts = _between(conjunct) or [conjunct]
        simple = [_simple(p) for p in parts]
        restrictions = []
        for s in simple:
            if s is None:
                break
            name = lower.get(s[0].lower(), s[0])
            r = by_name[name].restrict(s[1], s[2]) if name in by_name else None
            if r is None:
                break
            restrictions.append((name, r))
        if len(restrictions) != len(parts):
            compiled.filtered.append(conjunct.sql(DUCKDB))
            continue
        compiled.narrowed.append(conjunct.sql(DUCKDB))
        for name, r in restrictions:
            current = compiled.restrictions.get(name)
            compiled.restrictions[name] = r if current is None else current.intersect(r)
    for name, r in compiled.restrictions.items():
        if r.allowed is not None and not r.allowed.any():
            raise SynthError(
                f"generate('{model}'): found 0 rows: no value of column '{name}' the model can "
                f"generate satisfies {text} (rare values and extremes are protected)"
            )
    return compiled


__all__ = ["CompiledFilter", "compile_filter", "conjuncts", "parse_predicate", "literal_value"]
