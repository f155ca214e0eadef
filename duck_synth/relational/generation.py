"""A database model's tables, generated parents first: every key fresh, every foreign key a
generated parent's (by construction: a child row is drawn for a parent row, never matched
afterwards).

A root table draws its rows (``scale`` times its training rows, or those its filter keeps, or
one per seed row), each with the number of its children. A child draws, for each parent row,
that many rows given the parent's attributes (the model's context), then its rows without a
parent (NULL keys, at their trained share). A link key (a second parent) picks a generated
parent row of that table in proportion to the number of children that parent row drew for
the link: the degrees of the link relation are kept, zeros included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import caller, catalog
from ..errors import SynthError
from ..options import GenerateOptions, GenerateTablesOptions
from ..relations import Relation
from ..shapes.base import PILOT_BATCH
from ..shapes.rows import RowSampler, sandbox
from ..sources import read_source
from .degrees import calibrated
from .frames import PARENT, context_name, count_column, link_column

SEED_BATCH = 2**39  # the batch numbers of seeded and per-parent draws: apart from plain ones


@dataclass
class Database:
    """A stored database model: its tables (parents first) and relations."""

    name: str
    tables: list[dict]
    relations: list[Relation]

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, spec: str) -> Database:
        record = catalog.load_model(con, spec, with_weights=False)
        if record.method != "database":
            raise SynthError(
                f"model '{record.name}' is one table, not a database; generate('{record.name}') "
                "draws its rows"
            )
        spec = record.statistics["database"]
        relations = [
            Relation(r["child"], tuple(r["key"]), r["parent"], tuple(r["parent_key"]))
            for r in spec["relations"]
        ]
        return cls(f"{record.name}@{record.version}", spec["tables"], relations)

    def table(self, name: str) -> dict:
        for table in self.tables:
            if table["name"] == name:
                return table
        names = ", ".join(t["name"] for t in self.tables)
        raise SynthError(f"model '{self.name}' has no table '{name}' (its tables: {names})")

    def context(self, table: str) -> Relation | None:
        return next((r for r in self.relations if r.child == table), None)

    def links(self, table: str) -> list[Relation]:
        return [r for r in self.relations if r.child == table][1:]

    def check(self, options: GenerateTablesOptions) -> None:
        """Refuse filters and seed rows for tables it does not have, seed rows of a child."""
        for argument in ("filters", "seed_rows"):
            for table in getattr(options, argument) or {}:
                self.table(table)  # an unknown table is refused by name
        for table in options.seed_rows or {}:
            if self.context(table) is not None:
                raise SynthError(
                    f"generate_tables(): seed_rows are given for a root table; '{table}' is a "
                    f"child of '{self.context(table).parent}'"
                )

    def needed(self, table: str) -> set[str]:
        """``table`` and every table its keys point at, up the chain."""
        found, todo = set(), [table]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo += [r.parent for r in self.relations if r.child == current]
        return found


def generate_tables(
    con: duckdb.DuckDBPyConnection,
    spec: str,
    options: GenerateTablesOptions,
    only: str | None = None,
) -> dict[str, pa.Table]:
    """Every table of the database (or ``only`` that one and the tables it points at), as
    Arrow tables with the trained tables' columns and types, parents first."""
    run = Run.start(con, spec, options)
    names = [t["name"] for t in run.database.tables]
    wanted = run.database.needed(only) if only is not None else set(names)
    for index, described in enumerate(run.database.tables):
        if described["name"] in wanted:
            run.table(index, described)
    return {t: run.out[t] for t in names if t in run.out}


@dataclass
class Run:
    """One generation of a database: the tables drawn so far (their model rows, with counts,
    links and attributes, and their output), parents first."""

    con: duckdb.DuckDBPyConnection
    database: Database
    options: GenerateTablesOptions
    seed: int
    drawn: dict[str, pa.Table] = field(default_factory=dict)
    out: dict[str, pa.Table] = field(default_factory=dict)
    narrowed: set[str] = field(default_factory=set)  # under a filter or seed rows, or below one

    @classmethod
    def start(cls, con, spec: str, options: GenerateTablesOptions, seed: int | None = None) -> Run:
        database = Database.load(con, spec)
        database.check(options)
        if seed is None:
            seed = options.seed if options.seed is not None else new_seed()
        return cls(con, database, options, seed)

    def table(self, index: int, described: dict) -> pa.Table:
        """A table drawn whole (a child's, chunk by chunk as ``chunks`` draws it)."""
        caller.check()
        table, options = described["name"], self.options
        if self.database.context(table) is not None:
            drawn, outputs = [], []
            for rows, output in self.chunks(index, described):
                drawn.append(rows)
                outputs.append(output)
            self.drawn[table] = pa.concat_tables(drawn)
            self.out[table] = pa.concat_tables(outputs)
            return self.out[table]
        sampler = _sampler(self.con, described, options, self.seed, index)
        rows, keys = _roots(self.con, sampler, described, options)
        if table in (options.filters or {}) or table in (options.seed_rows or {}):
            self.narrowed.add(table)
        rng = np.random.default_rng([self.seed, index, 7])
        reference = rows
        if table in self.narrowed and described.get("degrees"):
            unfiltered = replace(options, filters=None, seed_rows=None)
            reference = _sampler(self.con, described, unfiltered, self.seed, index).draw(
                max(min(described.get("rows", 0), 50_000), 1_000), PILOT_BATCH
            )
        rows = calibrated(rows, described.get("degrees", {}), rng, reference)
        keys |= self._links(described, rows, None, rng)
        self.drawn[table], self.out[table] = rows, _output(described, rows, keys)
        return self.out[table]

    def chunks(self, index: int, described: dict, first: int = 0, before: int = 0):
        """A child table's (model rows, output) in chunks of at most batch_size rows, from
        chunk ``first``; ``before``: its rows in the chunks before (fresh keys go on from
        there). Each chunk draws from its own seed: the same rows, whole or resumed."""
        table, options = described["name"], self.options
        context = self.database.context(table)
        sampler = _sampler(self.con, described, options, self.seed, index)
        with_parentless = context.parent not in self.narrowed and table not in (
            options.filters or {}
        )
        if not with_parentless:
            self.narrowed.add(table)
        parent = self.drawn[context.parent]
        places = _child_places(parent, context, described, options, with_parentless)
        size = options.batch_size
        for chunk, start in enumerate(range(0, max(len(places), 1), size)):
            if chunk < first:
                continue
            caller.check()
            part = places[start : start + size]
            rows = sampler.draw(len(part), SEED_BATCH + chunk, _seeds(sampler, self, context, part))
            mask = _kept(sampler, rows)
            rows, part = rows.filter(pa.array(mask)), part[mask]
            rng = np.random.default_rng([self.seed, index, 7, chunk])
            reference = None if table in self.narrowed else rows
            rows = calibrated(rows, described.get("degrees", {}), rng, reference)
            keys = _fresh(described, rows.num_rows, before)
            keys |= _context_keys(self.database, context, self.out[context.parent], part)
            keys |= self._links(described, rows, part, rng)
            before += rows.num_rows
            yield rows, _output(described, rows, keys)

    def _links(self, described: dict, rows: pa.Table, siblings, rng) -> dict:
        """The link keys of drawn rows (``siblings``: each row's context parent row)."""
        keys = {}
        for relation in self.database.links(described["name"]):
            shared = described.get("agreements", {}).get(link_column(relation), 0.0)
            places = _link_places(relation, rows, self.drawn[relation.parent], rng)
            if siblings is not None and shared > 0:
                drawn = self.drawn[relation.parent].column(count_column(relation))
                degrees = np.maximum(drawn.fill_null(0).to_numpy(zero_copy_only=False), 0)
                places = _shared(places, siblings, shared, degrees, rng)
            keys |= _context_keys(self.database, relation, self.out[relation.parent], places)
        return keys


def new_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def _sampler(con, described: dict, options: GenerateTablesOptions, seed: int, index: int):
    from ..generate import prepare

    given = GenerateOptions(
        filter=(options.filters or {}).get(described["name"]),
        temperature=options.temperature,
        batch_size=options.batch_size,
    )
    spec = f"{described['model']}@{described['version']}"
    return prepare(con, spec, given, (seed * 1_000_003 + index) & 0x7FFFFFFF)


def _roots(con, sampler: RowSampler, described: dict, options: GenerateTablesOptions):
    """A root table's rows: scale times its trained rows (those its filter keeps), or one per
    seed row (whose key values are kept)."""
    from ..generate import GenerationProgress, batches, draw_seeded, target_units

    table = described["name"]
    seeds_sql = (options.seed_rows or {}).get(table)
    if seeds_sql is None:
        target = int(round(options.scale * target_units(con, sampler, sampler.options)))
        parts = list(batches(sampler, target, sampler.loaded.record.name, GenerationProgress()))
        rows = pa.concat_tables(parts) if parts else sampler.draw(0, 0)
        return rows, _fresh(described, rows.num_rows)
    seeds = con.execute(
        f"SELECT * FROM ({read_source(con, seeds_sql, what=f'seed_rows of {table}')})"
    ).to_arrow_table()
    key_columns = [c for c, _, role in described["columns"] if role == "key"]
    modelled = {e.name for e in sampler.loaded.encoders}
    unknown = [c for c in seeds.column_names if c not in modelled and c not in key_columns]
    if unknown:
        raise SynthError(f"seed_rows of '{table}': '{unknown[0]}' is not a column of the table")
    given_keys = [c for c in key_columns if c in seeds.column_names]
    keys = _fresh(described, seeds.num_rows)
    for column in given_keys:
        values = seeds.column(column)
        if values.null_count or len(set(values.to_pylist())) < seeds.num_rows:
            raise SynthError(f"seed_rows of '{table}': key '{column}' must be unique and not NULL")
        keys[column] = values
    values = seeds.drop_columns(given_keys)
    parts = []
    for batch, start in enumerate(range(0, max(seeds.num_rows, 1), options.batch_size)):
        part = values.slice(start, options.batch_size)
        if values.num_columns == 0:
            parts.append(sampler.draw(part.num_rows, SEED_BATCH + batch))
        else:
            parts.append(draw_seeded(sampler, part, SEED_BATCH + batch, start))
    return pa.concat_tables(parts), keys


def _child_places(parent: pa.Table, context: Relation, described, options, with_parentless):
    """Each child row's parent row: as many per parent row as it drew for this relation, then
    the rows without a parent (-1) as many as trained (times scale)."""
    counts = parent.column(count_column(context)).fill_null(0).to_numpy(zero_copy_only=False)
    counts = np.maximum(np.asarray(counts, dtype=np.int64), 0)
    places = np.repeat(np.arange(parent.num_rows), counts)
    parentless = (
        int(round(options.scale * described.get("parentless", 0))) if with_parentless else 0
    )
    return np.concatenate([places, np.full(parentless, -1, dtype=np.int64)])


def _seeds(sampler: RowSampler, run: Run, context: Relation, places: np.ndarray):
    """The given context of child rows: whether each has a parent, the parent's attributes."""
    # the columns the model learned (a constant one, e.g. #parent when every row had a
    # parent, decodes itself)
    names = {e.name for e in sampler.loaded.encoders if e.n_tokens > 0}
    parent = run.drawn[context.parent]
    seeds = {PARENT: pa.array(places >= 0)} if PARENT in names else {}
    taken = pa.array(np.where(places >= 0, places, 0))
    for attribute in run.database.table(context.parent)["attributes"]:
        name = context_name(context, attribute)
        if name in names:
            values = parent.column(attribute).take(taken)
            seeds[name] = pc.if_else(pa.array(places >= 0), values, pa.scalar(None, values.type))
    return pa.table(seeds) if seeds else None


def _kept(sampler: RowSampler, rows: pa.Table) -> np.ndarray:
    """Which drawn rows the table's filter keeps (children are filtered, not redrawn: each
    parent keeps those of its rows that match)."""
    if not sampler.compiled.sql:
        return np.ones(rows.num_rows, dtype=bool)
    from .. import spool

    con = sandbox().cursor()
    con.register("batch", rows.append_column("__row", pa.array(np.arange(rows.num_rows))))
    typed = spool.cast_sql("batch", [*sampler.loaded.column_types(), ("__row", None)])
    found = con.execute(
        f"WITH typed AS ({typed}) SELECT __row FROM typed WHERE {sampler.compiled.sql}"
    ).fetchnumpy()["__row"]
    mask = np.zeros(rows.num_rows, dtype=bool)
    mask[np.asarray(found, dtype=np.int64)] = True
    return mask


def _fresh(described: dict, n: int, before: int = 0) -> dict[str, pa.Array]:
    """New values for a table's own keys: 1..n (as text for a string key, the n-th UUID, days
    or seconds after 2000-01-01 for a date or timestamp); a key column that is also a foreign key takes
    its parent's value instead (the other key columns keep the tuple unique)."""
    keys = {}
    numbers = np.arange(before + 1, before + n + 1, dtype=np.int64)
    for column, duck_type, role in described["columns"]:
        if role != "key":
            continue
        if duck_type == "VARCHAR":
            keys[column] = pa.array(numbers.astype(str).tolist(), pa.string())
        elif duck_type == "UUID":  # cast from text when written
            keys[column] = pa.array([f"00000000-0000-4000-8000-{n:012x}" for n in numbers])
        elif duck_type == "DATE":
            keys[column] = pa.array(numbers + EPOCH_DAYS, pa.int32()).cast(pa.date32())
        elif duck_type.startswith("TIMESTAMP"):
            seconds = (numbers + EPOCH_DAYS * 86_400) * 1_000_000
            keys[column] = pa.array(seconds, pa.timestamp("us"))
        else:
            keys[column] = pa.array(numbers)  # cast to the column's type when written
    return keys


EPOCH_DAYS = 10_957  # 2000-01-01, the first fresh date key


def _context_keys(database: Database, context: Relation, parent_out: pa.Table, places) -> dict:
    """A child's context key: its parent row's key (NULL for a row without a parent)."""
    taken = pa.array(np.where(places >= 0, places, 0))
    mask = pa.array(places < 0)
    keys = {}
    for key, parent_key in zip(context.key, context.parent_key, strict=True):
        values = parent_out.column(parent_key)
        keys[key] = pc.if_else(mask, pa.scalar(None, values.type), values.take(taken))
    return keys


def _link_places(relation: Relation, rows: pa.Table, parent_drawn: pa.Table, rng) -> np.ndarray:
    """For each row whose link key is set, a parent row drawn in proportion to the children
    it drew for this relation (without replacement while its drawn degrees last); -1: unset."""
    flag = link_column(relation)
    if flag in rows.column_names:
        linked = np.asarray(rows.column(flag).fill_null(False).to_numpy(zero_copy_only=False), bool)
    else:
        linked = np.ones(rows.num_rows, dtype=bool)
    degrees = (
        parent_drawn.column(count_column(relation)).fill_null(0).to_numpy(zero_copy_only=False)
    )
    degrees = np.maximum(np.asarray(degrees, dtype=np.int64), 0)
    m = int(linked.sum())
    if parent_drawn.num_rows == 0:
        linked[:] = False
        chosen = np.zeros(0, dtype=np.int64)
    elif degrees.sum() >= m and m:
        chosen = rng.permutation(np.repeat(np.arange(len(degrees)), degrees))[:m]
    elif degrees.sum() > 0:
        chosen = rng.choice(len(degrees), size=m, p=degrees / degrees.sum())
    else:
        chosen = rng.integers(0, parent_drawn.num_rows, size=m)
    places = np.full(rows.num_rows, -1, dtype=np.int64)
    places[linked] = chosen
    return places


def _shared(places, siblings, share: float, degrees: np.ndarray, rng) -> np.ndarray:
    """Siblings (rows of one context parent) share one link parent with the trained
    probability ``share``: a plane keeps flying for its carrier. The sibling groups, smallest
    first, are laid along the link parents' degrees, smallest first, and each takes the parent
    at its middle: every parent gets groups worth about its degree, so the degrees and the
    parents without children stay as drawn."""
    rows = np.flatnonzero((places >= 0) & (siblings >= 0))
    if len(rows) == 0 or degrees.sum() <= 0:
        return places
    _, inverse = np.unique(siblings[rows], return_inverse=True)
    inverse = inverse.reshape(-1)
    sizes = np.bincount(inverse).astype(float)
    # small groups to parents of small degree, loosely (a random factor on both sides): a
    # carrier of few flights gets planes of few flights, and still some
    order = np.argsort(sizes * rng.lognormal(0, 0.5, len(sizes)))
    ends = np.cumsum(sizes[order])
    parents = np.argsort(degrees * rng.lognormal(0, 0.5, len(degrees)))
    along = np.cumsum(degrees[parents].astype(float))
    middles = (ends - sizes[order] / 2) * along[-1] / ends[-1]
    at = np.minimum(np.searchsorted(along, middles, side="right"), len(parents) - 1)
    main = np.empty(len(sizes), dtype=np.int64)
    main[order] = parents[at]
    stay = rng.random(len(rows)) < share
    places = places.copy()
    places[rows] = np.where(stay, main[inverse], places[rows])
    return places


def _output(described: dict, rows: pa.Table, keys: dict[str, pa.Array]) -> pa.Table:
    """The table as trained: its own columns generated, its keys and foreign keys set."""
    columns = {}
    for column, _, role in described["columns"]:
        columns[column] = rows.column(column) if role == "own" else keys[column]
    return pa.table(columns)


# a LIMIT pushed down (target, at_most) caps the rows returned
ONE_TABLE_OPTIONS = ("filter", "seed", "temperature", "batch_size", "table_name", "scale")
ONE_TABLE_OPTIONS += ("target", "at_most")


def generate_one(
    con: duckdb.DuckDBPyConnection, spec: str, given: GenerateOptions
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """generate(database, "table" => name): that table, its parents generated (not returned);
    a filter (a pushed-down WHERE) narrows that table. Its rows and their (name, type)."""
    default = GenerateOptions()
    extra = [
        name
        for name in vars(given)
        if name not in ONE_TABLE_OPTIONS and getattr(given, name) != getattr(default, name)
    ]
    if extra:
        raise SynthError(
            f'generate(): {extra[0]} is not taken with "table" (a database\'s table); '
            "generate_tables() takes filters and seed_rows"
        )
    options = GenerateTablesOptions(
        scale=given.scale if given.scale is not None else 1.0,
        seed=given.seed,
        filters={given.table_name: given.filter} if given.filter else None,
        temperature=given.temperature,
        batch_size=given.batch_size,
    )
    database = Database.load(con, spec)
    described = database.table(given.table_name)
    rows = generate_tables(con, spec, options, only=given.table_name)[given.table_name]
    caps = [n for n in (given.target, given.at_most) if n is not None]
    return rows.slice(0, min(caps)) if caps else rows, [(c, t) for c, t, _ in described["columns"]]
