"""subset(): a smaller copy of real tables whose keys still all resolve (database subsetting).

>>> FROM subset(['planes', 'flights'], fraction => 0.1, seed => 1, relations => [{'child':
...     'flights', 'key': 'tailnum', 'parent': 'planes', 'parent_key': 'tailnum'}])
-- table | written | rows | source_rows | orphans: one row per table, parents first

The relations are train()'s (relations.py: declared REFERENCES, or ``relations => [...]``). The
rows kept are decided in four steps, each a set of rows per table:

1. *Valid rows*: those whose every non-NULL key (context or link) matches a valid parent row.
   The others are *orphans*: never written, counted (a row under an orphan is one too).
2. *Start*: ``fraction`` keeps that share of each root table's rows (a table with no context
   parent), and of the rows of the other tables whose context key is NULL (they have no parent
   to come with); which rows is decided by a hash of the row and ``seed``, so the same call
   keeps the same rows. ``filter => {'table': 'predicate'}`` keeps a table's matching rows.
3. *Down*, parents first: the rows whose context parent row is kept are kept, recursively; in a
   filtered table, only those matching its filter (a filter below another narrows it).
4. *Up*, children first: the parent rows a kept row's keys point at are added (a NULL key points
   at none). A row added so does not bring its other children; it brings its own parents, and
   since the tables have no cycle, one pass children-first reaches the fixpoint.

The tables ``prefix || table`` are written in one transaction: all of them or none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
from sqlglot import exp

from . import catalog, relations
from .conditions import parse_predicate
from .errors import SynthError
from .options import SubsetOptions, parse
from .relations import Relation, Schema
from .sources import describe, read_source
from .sqltext import DUCKDB, first_line, name_parts, quote_identifier

ROW, HASH, VALID = "__synth_row", "__synth_hash", "__synth_valid"
SOURCE = "__synth_source"  # the alias of a table's rows: hashed whole as one struct


def subset(
    con: duckdb.DuckDBPyConnection,
    tables_text: str,
    options_json: str,
    before_commit: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Write the subset of ``tables_text`` (a JSON list of names, or one name); one summary row
    per table, parents first. ``before_commit(rows)`` runs inside the transaction that writes."""
    options = parse(SubsetOptions, "subset", options_json)
    names = _names(tables_text)
    if (options.fraction is None) == (options.filter is None):
        raise SynthError("subset(): give either fraction => share or filter => {'table': 'SQL'}")
    for name in names:
        read_source(con, name, f"subset(): table '{name}'")
    try:
        schema = relations.schema(con, names, options.relations)
    except SynthError as error:
        raise SynthError(f"subset(): {error}") from None
    targets = _targets(con, schema.tables, options.prefix, options.replace)
    work = _Work(con, schema, _filters(con, schema, options.filter))
    try:
        work.copy(options.seed)
        work.start_and_descend(options.fraction)
        work.ascend()
        rows = work.counts(targets)
        if not any(row["rows"] for row in rows):
            why = "fraction" if options.fraction is not None else "filter"
            raise SynthError(f"subset(): no row kept (the {why} selects none); nothing written")
        with catalog.transaction(con):
            work.write(targets, options.replace)
            if before_commit is not None:
                before_commit(rows)
    finally:
        work.drop()
    return rows


def _names(text: str) -> list[str]:
    """The tables: the JSON list the macro makes of ['a', 'b'], or one name."""
    try:
        names = json.loads(text) if isinstance(text, str) and text.lstrip()[:1] == "[" else [text]
    except ValueError:
        names = None
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise SynthError(f"subset(): give a list of table names, got {text!r}")
    if len(set(names)) < len(names):
        raise SynthError(f"subset(): a table is listed twice in {names}")
    return names


def _targets(con, tables: list[str], prefix: str, replace: bool) -> dict[str, str]:
    """Each table's written name, refused when it would overwrite a table given, repeat another,
    or (without replace) overwrite an existing table or view."""
    own = {name_parts(t)[2].lower() for t in tables}
    targets = {t: prefix + name_parts(t)[2] for t in tables}
    if len({t.lower() for t in targets.values()}) < len(targets):
        raise SynthError(f"subset(): two tables would be written to one name: {targets}")
    for table, target in targets.items():
        if target.lower() in own:
            raise SynthError(
                f"subset(): writing '{target}' would overwrite a table subsetted: give a prefix"
            )
        exists = con.execute(
            "SELECT count(*) FROM (SELECT table_name AS n, schema_name, database_name FROM "
            "duckdb_tables() UNION ALL SELECT view_name, schema_name, database_name FROM "
            "duckdb_views()) WHERE lower(n) = lower(?) AND schema_name = current_schema() "
            "AND database_name = current_database()",
            [target],
        ).fetchone()[0]
        if exists and not replace:
            raise SynthError(
                f"subset(): table '{target}' exists (the subset of '{table}'): drop it, choose "
                "another prefix or give replace => true"
            )
    return targets


def _filters(con, schema: Schema, given: dict | None) -> dict[str, str]:
    """Each filtered table's predicate, parsed and checked against its columns, written back."""
    if given is None:
        return {}
    if not isinstance(given, dict) or not given:
        raise SynthError(f"subset(): filter must be a struct {{'table': 'SQL predicate'}}, got {given!r}")  # fmt: skip
    found = {}
    for table, text in given.items():
        if table not in schema.tables:
            raise SynthError(
                f"subset(): filter on unknown table '{table}' (the tables: "
                f"{', '.join(schema.tables)})"
            )
        what = f"subset(): filter on '{table}'"
        tree = parse_predicate(text, what=what, con=con)
        columns = {n.lower() for n, _ in describe(con, schema.sources[table], what)}
        for column in list(tree.find_all(exp.Column)):
            if column.find_ancestor(exp.Select) is not None:
                continue  # a subquery's own columns
            if column.name.lower() not in columns:
                raise SynthError(f"{what}: '{table}' has no column '{column.name}'")
            column.set("table", None)  # 'flights.dep_delay' reads the row at hand
        found[table] = tree.sql(DUCKDB)
    return found


def _on(relation: Relation, child: str = "c") -> str:
    """Child row ``child`` belongs to parent row ``p``."""
    return " AND ".join(
        f"{child}.{quote_identifier(k)} = p.{quote_identifier(pk)}"
        for k, pk in zip(relation.key, relation.parent_key, strict=True)
    )


def _no_key(relation: Relation, alias: str) -> str:
    """The child row's key has a NULL: it links to no row."""
    return " OR ".join(f"{alias}.{quote_identifier(k)} IS NULL" for k in relation.key)


@dataclass
class _Work:
    """The temporary tables of one subset: each table's rows numbered (``src``), and the
    numbers of the rows kept (``keep``); this connection's alone, dropped at the end."""

    con: duckdb.DuckDBPyConnection
    schema: Schema
    filters: dict[str, str]
    made: list[str] = field(default_factory=list)

    def src(self, table: str) -> str:
        return quote_identifier(f"__synth_subset_{self.schema.tables.index(table)}")

    def keep(self, table: str) -> str:
        return quote_identifier(f"__synth_subset_keep_{self.schema.tables.index(table)}")

    def _run(self, sql: str, parameters: list, what: str) -> None:
        try:
            self.con.execute(sql, parameters)
        except duckdb.Error as error:
            raise SynthError(f"subset(): {what}: {first_line(error)}") from None

    def copy(self, seed: int) -> None:
        """Each table's rows numbered, hashed with the seed, and marked valid (parents first,
        so a parent's validity is known)."""
        for table in self.schema.tables:
            resolves = [
                f"({_no_key(r, SOURCE)} OR EXISTS (SELECT 1 FROM {self.src(r.parent)} p WHERE "
                f"p.{VALID} AND {_on(r, SOURCE)}))"
                for r in self.schema.relations
                if r.child == table
            ]
            self.made.append(self.src(table))
            self._run(
                f"CREATE TEMP TABLE {self.src(table)} AS SELECT row_number() OVER () AS {ROW}, "
                f"hash(?, {SOURCE}) AS {HASH}, {' AND '.join(resolves) or 'true'} AS {VALID}, "
                f"{SOURCE}.* FROM ({self.schema.sources[table]}) {SOURCE}",
                [seed],
                f"reading '{table}'",
            )

    def _filtered_above(self, table: str) -> bool:
        context = self.schema.context(table)
        while context is not None:
            if context.parent in self.filters:
                return True
            context = self.schema.context(context.parent)
        return False

    def start_and_descend(self, fraction: float | None) -> None:
        """Steps 2 and 3: the rows a table starts with, and those under kept parents."""
        for table in self.schema.tables:
            context, ways, parameters = self.schema.context(table), [], []
            own = f"({self.filters[table]})" if table in self.filters else None
            if fraction is not None:
                parentless = "true" if context is None else _no_key(context, "c")
                ways.append(
                    f"{ROW} IN (SELECT {ROW} FROM {self.src(table)} c WHERE {VALID} AND "
                    f"({parentless}) QUALIFY row_number() OVER (ORDER BY {HASH}, {ROW}) "
                    "<= ceil(? * count(*) OVER ()))"
                )
                parameters.append(fraction)
            elif own is not None and not self._filtered_above(table):
                ways.append(own)
            if context is not None:
                down = (
                    f"EXISTS (SELECT 1 FROM {self.src(context.parent)} p JOIN "
                    f"{self.keep(context.parent)} USING ({ROW}) WHERE {_on(context)})"
                )
                ways.append(down if own is None else f"({down} AND {own})")
            self.made.append(self.keep(table))
            self._run(
                f"CREATE TEMP TABLE {self.keep(table)} AS SELECT {ROW} FROM {self.src(table)} c "
                f"WHERE {VALID} AND ({' OR '.join(ways) or 'false'})",
                parameters,
                f"filter on '{table}'" if table in self.filters else f"choosing rows of '{table}'",
            )

    def ascend(self) -> None:
        """Step 4: children first, the parent rows each kept row points at."""
        for table in reversed(self.schema.tables):
            for relation in (r for r in self.schema.relations if r.child == table):
                self._run(
                    f"INSERT INTO {self.keep(relation.parent)} SELECT p.{ROW} FROM "
                    f"{self.src(relation.parent)} p WHERE EXISTS (SELECT 1 FROM "
                    f"{self.src(table)} c JOIN {self.keep(table)} USING ({ROW}) WHERE "
                    f"{_on(relation)}) AND p.{ROW} NOT IN (SELECT {ROW} FROM "
                    f"{self.keep(relation.parent)})",
                    [],
                    f"adding the parents of '{table}' in '{relation.parent}'",
                )

    def counts(self, targets: dict[str, str]) -> list[dict]:
        rows = []
        for table in self.schema.tables:
            kept, total, orphans = self.con.execute(
                f"SELECT (SELECT count(*) FROM {self.keep(table)}), count(*), "
                f"count(*) FILTER (WHERE NOT {VALID}) FROM {self.src(table)}"
            ).fetchone()
            rows.append(
                {"table": table, "written": targets[table], "rows": kept,
                 "source_rows": total, "orphans": orphans}
            )  # fmt: skip
        return rows

    def write(self, targets: dict[str, str], replace: bool) -> None:
        create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        for table in self.schema.tables:
            self._run(
                f"{create} {quote_identifier(targets[table])} AS SELECT * EXCLUDE ({ROW}, "
                f"{HASH}, {VALID}) FROM {self.src(table)} WHERE {ROW} IN (SELECT {ROW} FROM "
                f"{self.keep(table)}) ORDER BY {ROW}",
                [],
                f"writing '{targets[table]}'",
            )

    def drop(self) -> None:
        for name in reversed(self.made):
            self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")
