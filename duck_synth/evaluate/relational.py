"""evaluate() of a database: linked tables judged together, one row per metric.

>>> FROM evaluate(['planes', 'flights'], ['syn_planes', 'syn_flights'], relations => [
...     {'child': 'flights', 'key': 'tailnum', 'parent': 'planes', 'parent_key': 'tailnum'}])
-- metric                | columns                              | value | detail
-- database_quality      |                                      | 0.91  | {"families": {...}}
-- table_quality         | planes                               | 0.93  | {"shapes": ...}
-- degree_similarity     | flights(tailnum) -> planes(tailnum)  | 0.88  | {"real": {...}, ...}
-- referential_integrity | flights(tailnum) -> planes(tailnum)  | 1.0   | {"linked": 4001, ...}
-- cross_table_trends    | flights(tailnum) -> planes(tailnum)  | 0.95  | {"pairs": [...]}

The tables pair up in order: each synthetic table has its real table's columns and key columns,
with fresh key values. The relations come from the real tables (relations.py). Every figure is
counted in DuckDB; Python only compares the small results (degree histograms, correlations).
"""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np

from .. import relations
from ..errors import SynthError
from ..relations import Relation, Schema
from ..sources import describe, read_source
from ..sqltext import quote_identifier
from .columns import kind_of
from .fidelity import mean, metric_row

# database_quality: the mean of these families' means (SDMetrics' multi-table QualityReport
# averages column shapes, pair trends, cardinality and intertable trends; keys are added here)
FAMILIES = {
    "tables": ("table_quality",),
    "cardinality": ("degree_similarity",),
    "intertable_trends": ("cross_table_trends",),
    "keys": ("referential_integrity", "null_key_share"),
}
MIN_PARENTS = 10  # a correlation needs this many parents with both values, on each side
NOT_FOR_A_DATABASE = ("holdout", "target", "columns", "session_key", "order_by", "sensitive")


def table_list(text: str) -> list[str] | None:
    """A list of table names passed to evaluate() or report() (the macros send it as JSON,
    '["planes","flights"]'); None for one table or query."""
    if not isinstance(text, str) or not text.lstrip().startswith("["):
        return None
    try:
        names = json.loads(text)
    except ValueError:
        return None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return None


def database_lists(
    real: str, synthetic: str, function: str, given_relations: list | None
) -> tuple[list[str], list[str]] | None:
    """(real tables, synthetic tables) when both sides are lists; None when both are one table.
    Refused in one line: a list on one side only, lists of different lengths, relations
    without lists."""
    real_tables, synthetic_tables = table_list(real), table_list(synthetic)
    if real_tables is None and synthetic_tables is None:
        if given_relations is not None:
            raise SynthError(
                f"{function}(): relations => [...] is for a database: give lists of tables, "
                f"{function}(['planes', 'flights'], ['syn_planes', 'syn_flights'], ...)"
            )
        return None
    if real_tables is None or synthetic_tables is None:
        raise SynthError(
            f"{function}(): a database is a list of tables on both sides, real and synthetic "
            "(a list on one side only)"
        )
    if len(real_tables) != len(synthetic_tables) or not real_tables:
        raise SynthError(
            f"{function}(): {len(real_tables)} real tables but {len(synthetic_tables)} synthetic "
            "ones: the lists pair up in order"
        )
    for names in (real_tables, synthetic_tables):
        if len(set(names)) < len(names):
            raise SynthError(f"{function}(): a table is listed twice in {names}")
    return real_tables, synthetic_tables


def database_sources(
    con: duckdb.DuckDBPyConnection,
    real_tables: list[str],
    synthetic_tables: list[str],
    given_relations: list | None,
    function: str,
) -> tuple[Schema, dict[str, str]]:
    """The real tables' checked schema and each real table's synthetic SQL; a synthetic table
    missing a key column is refused naming it."""
    schema = relations.schema(con, real_tables, given_relations)
    synthetic = {
        real: read_source(con, name, f"{function}(): synthetic table '{name}'")
        for real, name in zip(real_tables, synthetic_tables, strict=True)
    }
    names = dict(zip(real_tables, synthetic_tables, strict=True))
    for relation in schema.relations:
        for table, key in ((relation.child, relation.key), (relation.parent, relation.parent_key)):
            present = {n for n, _ in describe(con, synthetic[table], names[table])}
            for column in key:
                if column not in present:
                    raise SynthError(
                        f"{function}(): synthetic table '{names[table]}' has no key column "
                        f"'{column}' (of {relation})"
                    )
    return schema, synthetic


def database_evaluation(
    con: duckdb.DuckDBPyConnection, real_tables: list[str], synthetic_tables: list[str], opts
) -> list[dict]:
    """evaluate() with lists of tables: the options that judge one table are refused."""
    for name in NOT_FOR_A_DATABASE:
        if getattr(opts, name) is not None:
            raise SynthError(
                f"evaluate(): {name} is for one table; a database takes relations, sample and seed"
            )
    schema, synthetic = database_sources(
        con, real_tables, synthetic_tables, opts.relations, "evaluate"
    )
    return database_metrics(con, schema, synthetic, {"sample": opts.sample, "seed": opts.seed})


def database_metrics(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    synthetic: dict[str, str],
    table_options: dict | None = None,
) -> list[dict]:
    """The metric rows (metric, columns, value, detail) comparing a synthetic database with
    the real one described by ``schema``; ``synthetic`` maps each real table to its synthetic
    table's SQL.

    Per table: ``table_quality``, evaluate()'s ``overall`` on its non-key columns
    (``table_options``: its sample and seed). Per relation: ``degree_similarity``, 1 - the KS
    statistic between the real and synthetic numbers of children per parent row (parents
    with none included); ``zero_children_share``, 1 - |difference| of the shares of parents
    with none; ``referential_integrity``, the share of synthetic child keys with no NULL that
    equal a synthetic parent's key; ``null_key_share``, 1 - |difference| of the shares of child
    keys with a NULL. Per context relation (a child's first): ``cross_table_trends``, the
    Pearson correlations between the parent's numeric columns and its children's count and
    per-column means, real vs synthetic, as 1 - |r_real - r_synthetic| / 2 averaged over the
    pairs (SDMetrics' CorrelationSimilarity; numeric columns only, keys left out).

    ``database_quality``, first, is the mean of four family means (NULLs left out): tables
    (table_quality), cardinality (degree_similarity), intertable_trends (cross_table_trends)
    and keys (referential_integrity and null_key_share). zero_children_share is shown, not
    averaged: it is the first step of the degree distribution, inside degree_similarity.
    """
    missing = set(schema.tables) - set(synthetic)
    if missing:
        raise SynthError(f"evaluate(): no synthetic table for {sorted(missing)}")
    imitation = Schema(schema.tables, schema.relations, synthetic)
    rows = table_quality_rows(con, schema, synthetic, table_options or {})
    for relation in schema.relations:
        rows += relation_rows(con, schema, imitation, relation)
    for table in schema.tables:
        context = schema.context(table)
        if context is not None:
            rows.append(cross_table_trends(con, schema, imitation, context))
    return [database_quality(rows), *rows]


def database_quality(rows: list[dict]) -> dict:
    families = {
        family: mean([r["value"] for r in rows if r["metric"] in metrics])
        for family, metrics in FAMILIES.items()
    }
    rule = "mean of the family means: " + "; ".join(
        f"{family} = mean of {', '.join(metrics)}" for family, metrics in FAMILIES.items()
    )
    return metric_row(
        "database_quality", "", mean(list(families.values())), {"families": families, "rule": rule}
    )


def key_columns(schema: Schema, table: str) -> set[str]:
    """The columns of ``table`` in any relation's key, as child or parent."""
    found: set[str] = set()
    for relation in schema.relations:
        if relation.child == table:
            found.update(relation.key)
        if relation.parent == table:
            found.update(relation.parent_key)
    return found


def table_quality_rows(
    con: duckdb.DuckDBPyConnection, schema: Schema, synthetic: dict[str, str], options: dict
) -> list[dict]:
    """evaluate()'s overall score per table, its keys left out (synthetic keys are fresh)."""
    from . import evaluate  # the package's table evaluate(), loaded by now

    rows = []
    for table in schema.tables:
        keys = key_columns(schema, table)
        columns = [n for n, _ in describe(con, schema.sources[table], table) if n not in keys]
        if not columns:
            rows.append(metric_row("table_quality", table, None, {"why": "only key columns"}))
            continue
        found = evaluate(
            con, schema.sources[table], synthetic[table], {**options, "columns": columns}
        )
        by_name = {r["metric"]: r for r in found if not r["columns"]}
        detail = {
            "of": "evaluate()'s overall: mean of shapes and pair_trends",
            "shapes": by_name["shapes"]["value"],
            "pair_trends": by_name["pair_trends"]["value"],
            "columns": columns,
        }
        rows.append(metric_row("table_quality", table, by_name["overall"]["value"], detail))
    return rows


def relation_rows(
    con: duckdb.DuckDBPyConnection, real: Schema, synthetic: Schema, relation: Relation
) -> list[dict]:
    """degree_similarity, zero_children_share, referential_integrity and null_key_share."""
    name = str(relation)
    degrees = (real.degrees(con, relation), synthetic.degrees(con, relation))
    summaries = [degree_summary(d) for d in degrees]
    zero = [s["zero_children_share"] for s in summaries]
    counts = [real.key_counts(con, relation), synthetic.key_counts(con, relation)]
    linked = [_share(c["linked"], c["linked"] + c["orphans"]) for c in counts]
    nulls = [_share(c["null"], sum(c.values())) for c in counts]
    return [
        metric_row(
            "degree_similarity",
            name,
            degree_similarity(*degrees),
            {"method": "1 - KS statistic", "real": summaries[0], "synthetic": summaries[1]},
        ),
        metric_row(
            "zero_children_share", name, _closeness(*zero), {"real": zero[0], "synthetic": zero[1]}
        ),
        metric_row(
            "referential_integrity",
            name,
            linked[1],
            {**counts[1], "real_share": linked[0], "of": "synthetic keys with no NULL"},
        ),
        metric_row(
            "null_key_share", name, _closeness(*nulls), {"real": nulls[0], "synthetic": nulls[1]}
        ),
    ]


def degree_summary(degrees: dict[int, int]) -> dict:
    """Parents, the share with no child, and the mean and max children per parent."""
    parents = sum(degrees.values())
    children = sum(d * n for d, n in degrees.items())
    return {
        "parents": parents,
        "zero_children_share": _share(degrees.get(0, 0), parents),
        "mean_degree": _share(children, parents),
        "max_degree": max(degrees, default=None),
    }


def degree_similarity(real: dict[int, int], synthetic: dict[int, int]) -> float | None:
    """1 - the two-sample KS statistic between two degree histograms (degree -> parents):
    the largest gap between their cumulative shares, over every degree either has."""
    if not sum(real.values()) or not sum(synthetic.values()):
        return None
    support = sorted(set(real) | set(synthetic))
    gaps = [
        np.cumsum([side.get(d, 0) for d in support]) / sum(side.values())
        for side in (real, synthetic)
    ]
    return float(1 - np.max(np.abs(gaps[0] - gaps[1])))


def cross_table_trends(
    con: duckdb.DuckDBPyConnection, real: Schema, synthetic: Schema, relation: Relation
) -> dict:
    """A parent's numeric columns against its children's count and numeric means, real vs
    synthetic correlations (Pearson); pairs with fewer than MIN_PARENTS parents having both
    values on a side, or a constant side, are left out."""
    xs = _numeric_columns(con, real, synthetic, relation.parent)
    ys = _numeric_columns(con, real, synthetic, relation.child)
    features = ["count", *(f"mean({y})" for y in ys)]
    if not xs:
        return metric_row(
            "cross_table_trends", str(relation), None, {"why": "the parent has no numeric column"}
        )
    sides = [_correlations(con, schema, relation, xs, ys) for schema in (real, synthetic)]
    pairs, left_out = [], 0
    for i, ((r_real, n_real), (r_syn, n_syn)) in enumerate(zip(*sides, strict=True)):
        if min(n_real, n_syn) < MIN_PARENTS or not _finite(r_real) or not _finite(r_syn):
            left_out += 1
            continue
        r_real, r_syn = max(-1.0, min(1.0, r_real)), max(-1.0, min(1.0, r_syn))
        pairs.append(
            {
                "parent": xs[i // len(features)],
                "children": features[i % len(features)],
                "real": r_real,
                "synthetic": r_syn,
                "score": 1 - abs(r_real - r_syn) / 2,
            }
        )
    detail = {
        "method": "CorrelationSimilarity (Pearson), numeric columns only",
        "pairs": pairs,
        "left_out": left_out,
    }
    return metric_row(
        "cross_table_trends", str(relation), mean([p["score"] for p in pairs]), detail
    )


def _numeric_columns(con, real: Schema, synthetic: Schema, table: str) -> list[str]:
    """The table's numeric non-key columns, present on both sides."""
    keys = key_columns(real, table)
    present = {n for n, _ in describe(con, synthetic.sources[table], table)}
    return [
        n
        for n, duck_type in describe(con, real.sources[table], table)
        if kind_of(duck_type) == "numeric" and n not in keys and n in present
    ]


def _correlations(
    con, schema: Schema, relation: Relation, xs: list[str], ys: list[str]
) -> list[tuple[float | None, int]]:
    """(Pearson r, parents with both values) for each parent column x and each child feature
    (the count of children, then each child column's mean), x-major. One row per parent row:
    a parent with no child has count 0 and NULL means."""
    q = quote_identifier
    keys = [f"{q(k)} AS k{i}" for i, k in enumerate(relation.parent_key)]
    child_keys = [f"{q(k)} AS k{i}" for i, k in enumerate(relation.key)]
    parent_columns = [f"CAST({q(x)} AS DOUBLE) AS x{i}" for i, x in enumerate(xs)]
    child_columns = [f"CAST({q(y)} AS DOUBLE) AS y{i}" for i, y in enumerate(ys)]
    joined = " AND ".join(f"c.k{i} = p.k{i}" for i in range(len(keys)))
    per_parent = [f"any_value(p.x{i}) AS x{i}" for i in range(len(xs))] + [
        "count(c.k0) AS n",
        *(f"avg(c.y{i}) AS y{i}" for i in range(len(ys))),
    ]
    features = ["n", *(f"y{i}" for i in range(len(ys)))]
    statistics = [
        f"corr({f}, x{i}), regr_count({f}, x{i})" for i in range(len(xs)) for f in features
    ]
    row = con.execute(
        f"WITH p AS (SELECT row_number() OVER () AS parent_row, {', '.join(keys + parent_columns)} "
        f"FROM ({schema.sources[relation.parent]})), "
        f"c AS (SELECT {', '.join(child_keys + child_columns)} "
        f"FROM ({schema.sources[relation.child]})), "
        f"f AS (SELECT {', '.join(per_parent)} FROM p LEFT JOIN c ON {joined} "
        f"GROUP BY p.parent_row) SELECT {', '.join(statistics)} FROM f"
    ).fetchone()
    return [(row[i], row[i + 1] or 0) for i in range(0, len(row), 2)]


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _closeness(real: float | None, synthetic: float | None) -> float | None:
    return None if real is None or synthetic is None else 1 - abs(real - synthetic)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
