"""Each table of a database as one flat frame to train on: its own columns, its parent row's
columns (its context), how many children each row has, and which of its other keys are set.

The frame of a child is what lets one table model stand for a relation: its rows are drawn
given the parent row (``#parent`` and the parent's attributes, always given: the model's
context), and a parent row draws the number of its children (``#flights(tailnum)``, zero
included) with its own columns. Keys are never learned: a parent's keys are fresh at
generation, a child's keys are its parent's. Rows dropped as orphans (a key with no parent)
are dropped before anything is counted, down the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from ..encoding import unsupported_reason
from ..errors import SynthError
from ..relations import Relation, Schema
from ..sources import describe
from ..sqltext import quote_identifier

PARENT = "#parent"  # whether a child row has a parent row (not: a NULL key, a kept orphan)
ROW = '"__row"'  # the row's place in its table, for a deterministic order
KEY_PREFIX = "__key."  # a parent's key column, kept in its frame to join its children
KEY_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER")
KEY_TYPES += ("USMALLINT", "UTINYINT", "VARCHAR", "DOUBLE", "FLOAT", "DATE", "TIMESTAMP")
KEY_TYPES += ("TIMESTAMP WITH TIME ZONE", "UUID")


def count_column(relation: Relation) -> str:
    """The parent's column counting its children through ``relation``."""
    return f"#{relation.child}({','.join(relation.key)})"


def link_column(relation: Relation) -> str:
    """The child's column saying whether its key of a link relation is set."""
    return f"#link({','.join(relation.key)})"


def context_name(relation: Relation, attribute: str) -> str:
    """A parent attribute's name among its child's columns."""
    return f"{relation.parent}.{attribute}"


@dataclass
class Frame:
    """One table's training frame: its SQL (with the key columns children join on) and the
    roles of its columns."""

    table: str
    own: list[tuple[str, str]]  # the table's own (non-key) columns, with types
    context: list[str]  # PARENT and the parent's attributes, first: always given
    counts: list[str]  # children per row, one per relation this table is parent of
    links: list[str]  # whether each link key is set
    keys: list[str]  # this table's columns that children's keys reference
    sql: str  # the frame, with KEY_PREFIX columns
    columns: list[tuple[str, str]] = field(default_factory=list)  # what the model learns
    key_types: dict[str, str] = field(default_factory=dict)
    # per link column: the share of linked rows whose link parent is the one most of their
    # siblings (the rows of the same context parent) link to, e.g. a plane's usual carrier
    agreements: dict[str, float] = field(default_factory=dict)

    def attributes(self) -> list[str]:
        """What a child of this table sees of its parent row."""
        return [c for c, _ in self.own] + [c for c in self.context if c != PARENT]

    def training_sql(self) -> str:
        names = ", ".join(quote_identifier(c) for c, _ in self.columns)
        return f"SELECT {names} FROM ({self.sql})"


def frames(
    con: duckdb.DuckDBPyConnection, schema: Schema, keep_orphans: bool, excluded: set[str]
) -> dict[str, Frame]:
    """Every table's frame, parents first. ``excluded``: 'table.column' left out."""
    kept: dict[str, str] = {}
    for table in schema.tables:  # a parent's frame counts its children's kept rows
        kept[table] = _kept_sql(schema, table, kept, keep_orphans)
    built: dict[str, Frame] = {}
    for table in schema.tables:
        built[table] = _frame(con, schema, table, kept, built, excluded)
    return built


def _kept_sql(schema: Schema, table: str, kept: dict[str, str], keep_orphans: bool) -> str:
    """The table's rows that are not dropped: with ``keep_orphans`` all, else those whose
    context key is NULL or finds a kept parent row."""
    source, context = schema.sources[table], schema.context(table)
    if context is None or keep_orphans:
        return source
    nulls = " OR ".join(f"t.{quote_identifier(c)} IS NULL" for c in context.key)
    return (
        f"SELECT t.* FROM ({source}) t WHERE {nulls} OR EXISTS "
        f"(SELECT 1 FROM ({kept[context.parent]}) p WHERE {joined('t', 'p', context)})"
    )


def _frame(con, schema: Schema, table: str, kept, built, excluded) -> Frame:
    context = schema.context(table)
    child_keys = {c for r in schema.relations if r.child == table for c in r.key}
    keys = list(dict.fromkeys(c for r in schema.children(table) for c in r.parent_key))
    if keys and set(keys) <= child_keys:
        raise SynthError(
            f"train(): the key of '{table}' ({', '.join(keys)}) is made only of foreign key "
            "columns; such a table is not supported yet"
        )
    own = [
        (name, duck_type)
        for name, duck_type in schema.columns[table]
        if name not in child_keys and name not in keys and f"{table}.{name}" not in excluded
    ]
    for name, duck_type in own:
        reason = unsupported_reason(duck_type)
        if reason:
            raise SynthError(
                f"column '{table}.{name}': {reason}; exclude it (exclude => ['{table}.{name}'])"
            )
    items = [f"t.{quote_identifier(c)}" for c, _ in own]
    items += [f"t.{quote_identifier(c)} AS {quote_identifier(KEY_PREFIX + c)}" for c in keys]
    joins, context_columns = [], []
    if context is not None:
        parent = built[context.parent]
        first = quote_identifier(KEY_PREFIX + context.parent_key[0])
        items.append(f"(p.{first} IS NOT NULL) AS {quote_identifier(PARENT)}")
        for attribute in parent.attributes():
            name = context_name(context, attribute)
            items.append(f"p.{quote_identifier(attribute)} AS {quote_identifier(name)}")
        context_columns = [PARENT] + [context_name(context, a) for a in parent.attributes()]
        on = " AND ".join(
            f"t.{quote_identifier(k)} = p.{quote_identifier(KEY_PREFIX + pk)}"
            for k, pk in zip(context.key, context.parent_key, strict=True)
        )
        joins.append(f"LEFT JOIN ({parent.sql}) p ON {on}")
    counts = []
    for i, relation in enumerate(schema.children(table)):
        alias, name = f"n{i}", count_column(relation)
        key = ", ".join(quote_identifier(c) for c in relation.key)
        joins.append(
            f"LEFT JOIN (SELECT {key}, count(*) AS n FROM ({kept[relation.child]}) "
            f"GROUP BY ALL) {alias} ON "
            + " AND ".join(
                f"t.{quote_identifier(pk)} = {alias}.{quote_identifier(k)}"
                for k, pk in zip(relation.key, relation.parent_key, strict=True)
            )
        )
        items.append(f"coalesce({alias}.n, 0) AS {quote_identifier(name)}")
        counts.append(name)
    links = []
    for relation in schema.links(table):
        name = link_column(relation)
        items.append(
            f"EXISTS (SELECT 1 FROM ({kept[relation.parent]}) q "
            f"WHERE {joined('t', 'q', relation)}) AS {quote_identifier(name)}"
        )
        links.append(name)
    # in the table's own row order (joins are not ordered): the same data trains the same model
    numbered = f"SELECT *, row_number() OVER () AS {ROW} FROM ({kept[table]})"
    sql = f"SELECT {', '.join(items)} FROM ({numbered}) t {' '.join(joins)} ORDER BY t.{ROW}"
    frame = Frame(table, own, context_columns, counts, links, keys, sql)
    if context is not None:
        for relation in schema.links(table):
            frame.agreements[link_column(relation)] = _agreement(
                con, kept[table], context, relation
            )
    typed = dict(describe(con, sql, f"table '{table}'"))
    order = context_columns + [c for c, _ in own] + counts + links
    frame.columns = [(c, typed[c]) for c in order]
    for key in keys:
        key_type = frame.key_types[key] = typed[KEY_PREFIX + key]
        if key_type not in KEY_TYPES and not key_type.startswith("DECIMAL"):
            raise SynthError(
                f"train(): key '{table}.{key}' is {key_type}; generated keys are numbers, "
                "strings, UUIDs, dates or timestamps"
            )
    return frame


def _agreement(con, kept: str, context: Relation, link: Relation) -> float:
    """How often siblings share a link parent: sum over context parents of the count of
    their most shared link key, over all linked rows (1: every sibling the same)."""
    context_key = ", ".join(quote_identifier(c) for c in context.key)
    link_key = ", ".join(quote_identifier(c) for c in link.key)
    present = " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in context.key + link.key)
    shared = con.execute(
        f"SELECT sum(most) / sum(n) FROM (SELECT max(c) AS most, sum(c) AS n FROM "
        f"(SELECT {context_key}, {link_key}, count(*) AS c FROM ({kept}) WHERE {present} "
        f"GROUP BY ALL) GROUP BY {context_key})"
    ).fetchone()[0]
    return float(shared or 0.0)


def joined(child: str, parent: str, relation: Relation) -> str:
    """``child``'s key equals ``parent``'s parent key (aliases of the two tables)."""
    return " AND ".join(
        f"{child}.{quote_identifier(k)} = {parent}.{quote_identifier(pk)}"
        for k, pk in zip(relation.key, relation.parent_key, strict=True)
    )
