"""The links between a database's tables: which child rows belong to which parent row.

A database is trained from a list of tables. Its relations come from the foreign keys DuckDB
knows (``REFERENCES`` constraints) or from ``relations => [{'child': .., 'key': .., 'parent':
.., 'parent_key': ..}]`` (a key is a column or a list of columns: composite keys). They are
checked here, once, against the data: every table and column exists, keys match in number,
a parent's key identifies its rows (unique, never NULL), no table references itself and the
relations have no cycle. The tables are then ordered parents first. A child's first relation
is its *context*: its rows are generated in the context of that parent row, their number per
parent included. Its other relations (a second parent, or a second key to the same parent, as
flights.origin and flights.dest to airports) are *links*, matched to existing parent rows.

Real keys are dirty: a child row whose (non-NULL) key has no parent is an *orphan*, counted
here; a NULL key is no link at all, kept at its real share.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field

import duckdb

from .errors import SynthError
from .sources import describe, read_source
from .sqltext import quote_identifier


@dataclass(frozen=True)
class Relation:
    """Rows of ``child`` whose ``key`` equals ``parent_key`` of a ``parent`` row belong to it."""

    child: str
    key: tuple[str, ...]
    parent: str
    parent_key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.child}({', '.join(self.key)}) -> {self.parent}({', '.join(self.parent_key)})"


@dataclass
class Schema:
    """Tables parents first, the relations between them, and each table's SQL (read_source)."""

    tables: list[str]
    relations: list[Relation]
    sources: dict[str, str]
    # each table's (name, DuckDB type), in order (as read when the relations were checked)
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def context(self, table: str) -> Relation | None:
        """The relation whose parent row a child is generated in (its first)."""
        return next((r for r in self.relations if r.child == table), None)

    def links(self, table: str) -> list[Relation]:
        """A child's other relations: keys matched to existing parent rows."""
        return [r for r in self.relations if r.child == table][1:]

    def children(self, table: str) -> list[Relation]:
        return [r for r in self.relations if r.parent == table]

    def key_counts(self, con: duckdb.DuckDBPyConnection, relation: Relation) -> dict[str, int]:
        """Child rows by how their key links: to a parent ('linked'), to none that exists
        ('orphans'), or not at all (a NULL in the key: 'null')."""
        nulls = " OR ".join(f"c.{quote_identifier(c)} IS NULL" for c in relation.key)
        exists = (
            f"EXISTS (SELECT 1 FROM ({self.sources[relation.parent]}) p WHERE {_joined(relation)})"
        )
        linked, orphans, null = con.execute(
            f"SELECT count(*) FILTER (WHERE NOT ({nulls}) AND {exists}), "
            f"count(*) FILTER (WHERE NOT ({nulls}) AND NOT {exists}), "
            f"count(*) FILTER (WHERE {nulls}) FROM ({self.sources[relation.child]}) c"
        ).fetchone()
        return {"linked": linked, "orphans": orphans, "null": null}

    def degrees(self, con: duckdb.DuckDBPyConnection, relation: Relation) -> dict[int, int]:
        """How many parents have each number of children (zero included): the degree
        distribution a generated database must keep."""
        rows = con.execute(
            f"SELECT children, count(*) FROM (SELECT (SELECT count(*) FROM "
            f"({self.sources[relation.child]}) c WHERE {_joined(relation)}) AS children "
            f"FROM ({self.sources[relation.parent]}) p) GROUP BY children ORDER BY children"
        ).fetchall()
        return dict(rows)


def declared(con: duckdb.DuckDBPyConnection, tables: list[str]) -> list[Relation]:
    """The foreign keys DuckDB knows among ``tables``, in the order they were declared (a key
    to a table not trained is an ordinary column)."""
    rows = con.execute(
        "SELECT table_name, constraint_column_names, referenced_table, referenced_column_names "
        "FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY' "
        "AND list_contains(?, table_name) AND list_contains(?, referenced_table) "
        "ORDER BY table_oid, constraint_index",
        [tables, tables],
    ).fetchall()
    return [Relation(child, tuple(key), parent, tuple(pkey)) for child, key, parent, pkey in rows]


def given(relations: list[dict]) -> list[Relation]:
    """``relations => [...]`` as Relations; a key is a column name or a list of them."""
    if not isinstance(relations, list) or not relations:
        raise SynthError("relations must be a list of {child, key, parent, parent_key}")
    found = []
    for item in relations:
        if not isinstance(item, dict) or set(item) != {"child", "key", "parent", "parent_key"}:
            raise SynthError(
                f"relations: each relation needs child, key, parent and parent_key, got {item!r}"
            )
        key, parent_key = _columns(item["key"], item), _columns(item["parent_key"], item)
        for end in ("child", "parent"):
            if not isinstance(item[end], str) or not item[end]:
                raise SynthError(f"relations: {end} must be a table name, got {item[end]!r}")
        found.append(Relation(item["child"], key, item["parent"], parent_key))
    return found


def _columns(value, item: dict) -> tuple[str, ...]:
    columns = [value] if isinstance(value, str) else value
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) and c for c in columns)
    ):
        raise SynthError(f"relations: a key is a column name or a list of them, in {item!r}")
    return tuple(columns)


def schema(
    con: duckdb.DuckDBPyConnection, tables: list[str], relations: list[dict] | None = None
) -> Schema:
    """The checked relations among ``tables`` (given, or else declared) and the tables parents
    first; a bad relation is refused in one line naming it."""
    if not isinstance(tables, list) or not tables or not all(isinstance(t, str) for t in tables):
        raise SynthError("train(): a database is a list of table names")
    if len(set(tables)) < len(tables):
        raise SynthError(f"train(): a table is listed twice in {tables}")
    sources = {t: read_source(con, t, f"table '{t}'") for t in tables}
    described = {t: describe(con, sql) for t, sql in sources.items()}
    columns = {t: dict(pairs) for t, pairs in described.items()}
    found = given(relations) if relations is not None else declared(con, tables)
    if len(set(found)) < len(found):
        raise SynthError("relations: a relation is given twice")
    for relation in found:
        _check(con, relation, columns, sources)
    graph = graphlib.TopologicalSorter({t: set() for t in tables})
    for relation in found:
        graph.add(relation.child, relation.parent)
    try:
        graph.prepare()  # finds a cycle, which would leave no table to start from
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise SynthError(
            f"relations: the tables reference each other in a cycle ({cycle})"
        ) from None
    # parents first, and otherwise the order the tables were listed in
    ordered = sorted(tables, key=lambda t: (_depth(t, found), tables.index(t)))
    return Schema(ordered, found, sources, described)


def _depth(table: str, relations: list[Relation]) -> int:
    parents = [r.parent for r in relations if r.child == table]
    return 1 + max((_depth(p, relations) for p in parents), default=-1)


def _check(con, relation: Relation, columns: dict, sources: dict[str, str]) -> None:
    for table in (relation.child, relation.parent):
        if table not in columns:
            raise SynthError(f"relations: {relation}: '{table}' is not among the tables trained")
    if relation.child == relation.parent:
        raise SynthError(
            f"relations: {relation}: a table referencing itself (a hierarchy in one table) "
            "is not supported"
        )
    if len(relation.key) != len(relation.parent_key):
        raise SynthError(f"relations: {relation}: the keys have different numbers of columns")
    for table, key in ((relation.child, relation.key), (relation.parent, relation.parent_key)):
        for column in key:
            if column not in columns[table]:
                raise SynthError(f"relations: {relation}: '{table}' has no column '{column}'")
    parent, key = sources[relation.parent], ", ".join(map(quote_identifier, relation.parent_key))
    nulls = " OR ".join(f"{quote_identifier(c)} IS NULL" for c in relation.parent_key)
    duplicated, missing = con.execute(
        f"SELECT count(*) - count(DISTINCT ({key})), count(*) FILTER (WHERE {nulls}) FROM ({parent})"
    ).fetchone()
    if duplicated or missing:
        why = f"{duplicated:,} rows share a key" if duplicated else f"{missing:,} rows have none"
        raise SynthError(
            f"relations: {relation}: the parent key must identify one row of "
            f"'{relation.parent}', but {why}"
        )


def _joined(relation: Relation) -> str:
    return " AND ".join(
        f"c.{quote_identifier(k)} = p.{quote_identifier(pk)}"
        for k, pk in zip(relation.key, relation.parent_key, strict=True)
    )
