"""generate(): synthetic rows from a stored model, streamed batch by batch to a spool file.

Pushed-down predicates become sampling conditions (see conditions.py) and a residual filter;
``target`` counts the units that pass (rows, or sessions: the model's shape says, see
duck_synth/shapes/). Each batch has its own seed derived from the run's seed and the batch
number, so the same model, seed and arguments give the same rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import caller, catalog, shapes, spool, views
from .conditions import compile_filter, json_predicate
from .controls import limit_strings
from .errors import SynthError
from .options import GenerateOptions, parse
from .shapes import Loaded, RowSampler
from .shapes.base import PILOT_BATCH, SCHEMA_BATCH
from .sources import read_source

MIN_EFFORT_ROWS = 1_000_000
EFFORT_FACTOR = 100
LoadedModel = Loaded  # the name other modules knew

_cache: dict[tuple, Loaded] = {}


def load(con: duckdb.DuckDBPyConnection, spec: str) -> Loaded:
    """The model ``spec`` names, loaded by its shape (cached per name, version and creation)."""
    name, version = catalog.resolve_version(con, spec)
    created = con.execute(
        "SELECT created::VARCHAR FROM synth.models WHERE name = ? AND version = ?", [name, version]
    ).fetchone()[0]
    key = (name, version, created)
    if key not in _cache:
        record = catalog.load_model(con, f"{name}@{version}")
        _cache[key] = bundle(record)
    return _cache[key]


def bundle(record: catalog.ModelRecord) -> Loaded:
    if record.method == "database":
        tables = [t["name"] for t in record.statistics["database"]["tables"]]
        raise SynthError(
            f"model '{record.name}' is a database of tables {', '.join(tables)}: "
            f"generate_tables('{record.name}') writes them; generate('{record.name}', "
            f"\"table\" => '{tables[-1]}') returns one"
        )
    return shapes.for_record(record).load(record)


def new_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def prepare(
    con: duckdb.DuckDBPyConnection, spec: str, given: GenerateOptions, seed: int | None = None
) -> RowSampler:
    """The sampler for a call's options: predicates compiled, controls built."""
    loaded = load(con, spec)
    record = loaded.record
    # JSON conditions and constraints (the model's and this call's) are more pushed-down
    # predicates: single-column ones narrow sampling, the rest reject rows that break them
    predicates = [
        given.filter,
        json_predicate(given.conditions) if given.conditions else None,
        *(record.options.get("constraints") or []),
        *(given.constraints or []),
    ]
    predicates = [p for p in predicates if p]
    combined = " AND ".join(f"({p})" for p in predicates) if len(predicates) > 1 else None
    options = replace(given, filter=combined or (predicates[0] if predicates else None))
    shape = loaded.shape
    shape.refuse(options)
    if seed is None:
        seed = options.seed if options.seed is not None else new_seed()
    encoders, others = shape.filter_scope(loaded)
    compiled = compile_filter(options.filter, encoders, spec, others, con=con)
    return shape.sampler(loaded, options, compiled, seed)


def generate(con: duckdb.DuckDBPyConnection, spec: str, options_json: str) -> str:
    """Generate rows and return the SQL that reads them.

    >>> FROM generate('diamonds', target => 3) WHERE cut = 'Fair'   -- 3 rows, all Fair
    """
    if views.is_marked(options_json):  # a view's SQL bound to be created or described
        record = catalog.load_model(con, spec, with_weights=False)
        columns = [(c["name"], c["type"]) for c in record.columns]
        if record.method == "database":  # the table asked for (a bad name fails when run)
            wanted = json.loads(options_json).get("table_name")
            tables = record.statistics["database"]["tables"]
            table = next((t for t in tables if t["name"] == wanted), tables[-1])
            columns = [(name, duck_type) for name, duck_type, _ in table["columns"]]
        return views.columns_sql(columns)
    given = parse(GenerateOptions, "generate", options_json)
    if given.table_name is not None:  # one table of a database model
        from .relational.generation import generate_one

        table, column_types = generate_one(con, spec, given)
        path = spool.new_path("generate")
        pq.write_table(table, path, compression="snappy")
        return spool.select_sql(path, column_types)
    run = Rows(con, spec, options_json)
    path = spool.new_path("generate")
    writer = pq.ParquetWriter(path, run.schema, compression="snappy")
    try:
        for table in run:
            writer.write_table(table)
    except BaseException:
        writer.close()
        os.remove(path)
        raise
    writer.close()
    return spool.select_sql(path, run.column_types)


class Rows:
    """One generate() call's rows, batch by batch, as they are drawn; the run is logged in
    the catalog when the last batch has been taken (a run abandoned early is not)."""

    def __init__(self, con, spec: str, options_json: str):
        self.started = time.monotonic()
        self.con = con
        self.given = parse(GenerateOptions, "generate", options_json)
        self.generator = prepare(con, spec, self.given)
        self.spec = spec
        self.schema = self.generator.draw(1, batch=SCHEMA_BATCH).schema
        self.column_types = self.generator.loaded.column_types()
        options = self.generator.options
        if options.seed_rows is not None:
            self.seeds = _seed_rows(con, self.generator, options, self.schema)
        else:
            self.seeds = None
            self.target = target_units(con, self.generator, options)
            caller.refuse_rows(self.target, f"generate('{spec}')")
            self.generator.set_target(self.target)

    def __iter__(self):
        generator = self.generator
        if self.seeds is not None:
            progress = GenerationProgress(drawn=self.seeds.num_rows)
            size = generator.options.batch_size
            for batch, start in enumerate(range(0, self.seeds.num_rows, size)):
                caller.check()
                rows = draw_seeded(generator, self.seeds.slice(start, size), batch, start)
                table = limit_strings(rows, generator.string_limits)
                progress.returned += table.num_rows
                yield table.cast(self.schema)
            progress.passed = progress.returned
        else:
            progress = GenerationProgress()
            for table in batches(generator, self.target, self.spec, progress):
                yield table.cast(self.schema)
        record = generator.loaded.record
        catalog.log_generation(
            self.con,
            record.name,
            record.version,
            {k: v for k, v in asdict(self.given).items() if v is not None},
            generator.seed,
            progress.drawn,
            progress.returned,
            time.monotonic() - self.started,
            progress.passed,
        )


def target_units(con, generator: RowSampler, options: GenerateOptions) -> int:
    """How many rows (sessions) to return: target, magnitude, or the training data's; never
    more than at_most."""
    if options.at_most is None:
        return _uncapped_target(con, generator, options)
    if options.at_most == 0:
        return 0
    return min(options.at_most, _uncapped_target(con, generator, options))


def _uncapped_target(con, generator: RowSampler, options: GenerateOptions) -> int:
    record = generator.loaded.record
    if options.target is not None and options.magnitude is not None:
        raise SynthError("generate(): give either target or magnitude, not both")
    if options.target is not None:
        return options.target
    if options.magnitude is not None:
        return int(round(options.magnitude * record.training_rows))
    if not generator.compiled.sql:
        return record.training_rows
    return _matching_training_rows(con, generator)


def _matching_training_rows(con, generator: RowSampler) -> int:
    """Default target under a filter: the training rows that satisfy it."""
    record = generator.loaded.record
    unit = generator.count_unit()
    try:
        relation = read_source(con, record.source)
        matching, total = con.execute(
            f"SELECT count({unit}) FILTER (WHERE {generator.compiled.sql}), count({unit}) "
            f"FROM ({relation})"
        ).fetchone()
        return int(round(matching * record.training_rows / max(total, 1)))
    except (duckdb.Error, SynthError):
        # the source is gone: estimate the share from an unconditional pilot sample
        pilot = generator.pilot()
        sample = pilot.draw(20_000, batch=PILOT_BATCH)
        return int(round(pilot.keep(sample).num_rows / 20_000 * record.training_rows))


@dataclass
class GenerationProgress:
    """Where a generation run stands: batches drawn, rows (units) drawn and returned (a
    training's progress is models/base.Progress, a callback)."""

    batch: int = 0
    drawn: int = 0
    returned: int = 0
    passed: int = 0  # units that survived every step (the last batch may bring more than needed)


def effort_rows(target: int) -> int:
    """The units a run may draw before its filter is called unsatisfiable."""
    return max(EFFORT_FACTOR * target, MIN_EFFORT_ROWS)


def batches(
    generator: RowSampler,
    target: int,
    spec: str,
    progress: GenerationProgress,
    draws: Iterator[tuple[int, pa.Table]] | None = None,
):
    """Batches of surviving rows until ``target`` units; ``progress`` moves as they come (a
    resumed run passes the progress and generator state it stopped at).

    ``draws`` gives each batch's units drawn and rows screened, in batch order (Ray workers
    draw them for distributed/generation.py; by default they are drawn here: by the plan
    with ``planned``, else sized by the acceptance so far). The steps that read the batches
    before (unique values, quotas, the target's cut) run here, in batch order."""
    effort = effort_rows(target)
    draws = draws or local_draws(generator, target, progress)
    while progress.returned < target:
        caller.check()  # a cancelled statement stops between batches (generate_into's too)
        if progress.drawn >= effort:
            raise SynthError(
                f"generate('{spec}'): found {progress.returned:,} of {target:,} rows satisfying "
                f"{generator.compiled.sql or 'the unique columns'} after drawing "
                f"{progress.drawn:,}; the filter may be unsatisfiable for this model"
            )
        n, screened = next(draws)
        table = generator.admit(screened)
        progress.drawn, progress.batch = progress.drawn + n, progress.batch + 1
        survived = generator.units(table)
        progress.passed += survived
        kept = min(survived, target - progress.returned)
        progress.returned += kept
        yield generator.head(table, kept)


def local_draws(
    generator: RowSampler, target: int, progress: GenerationProgress, planned: bool = False
) -> Iterator[tuple[int, pa.Table]]:
    """Batches drawn in this process, numbered from ``progress.batch``: ``planned`` sizes them
    by the plan every engine shares (RowSampler.planned_units), else a filtered run draws what
    the acceptance so far says it needs (small targets stay fast)."""
    while True:
        if planned:
            n = generator.planned_units(target, progress.batch)
            if n == 0:  # only a step dropping units the plan took to keep them gets here
                raise SynthError(f"generate_into(): the plan has no batch {progress.batch}")
        else:
            want = target - progress.returned
            if generator.compiled.filtered or generator.rejects():  # draw a little more
                acceptance = progress.returned / progress.drawn if progress.drawn else 1.0
                want = max(int(want / max(acceptance, 1e-3) * 1.2) + 16, 1024)
            n = generator.batch_units(want)
        yield n, generator.screen(generator.draw(n, progress.batch))


def _seed_rows(con, generator: RowSampler, options: GenerateOptions, schema: pa.Schema) -> pa.Table:
    """The seed rows of a seeded call, checked against the model's columns and cast to their
    types (a date given as text, as JSON rows carry it, becomes a date)."""
    if options.target is not None or options.magnitude is not None:
        raise SynthError("generate(): seed_rows gives one row per seed row; drop target/magnitude")
    if options.filter:
        raise SynthError(
            "generate(): filter, conditions and constraints cannot be combined with seed_rows "
            "(one row per seed row); filter the result with WHERE"
        )
    combined = [
        name
        for name in ("equalize", "rebalance", "fairness", "unique_columns")
        if getattr(options, name) is not None
    ] + (["drop_unique_violation"] if options.drop_unique_violation else [])
    if combined:
        raise SynthError(
            f"generate(): {', '.join(combined)} cannot be combined with seed_rows (the seed rows "
            "give the values)"
        )
    seeds = con.execute(
        f"SELECT * FROM ({read_source(con, options.seed_rows, what='seed_rows')})"
    ).to_arrow_table()
    names, what = generator.seedable()
    unknown = [c for c in seeds.column_names if c not in names]
    if unknown:
        raise SynthError(f"seed_rows: column {', '.join(repr(c) for c in unknown)} is not {what}")
    for i, name in enumerate(seeds.column_names):
        wanted = schema.field(name).type if name in schema.names else seeds.column(i).type
        if seeds.column(i).type != wanted:
            try:
                seeds = seeds.set_column(i, name, seeds.column(i).cast(wanted))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SynthError(
                    f"seed_rows: column '{name}' is {seeds.column(i).type}, not {wanted} as in "
                    "the model"
                ) from None
    return seeds


def draw_seeded(generator: RowSampler, seeds: pa.Table, batch: int, start: int) -> pa.Table:
    """Rows sharing a pattern of non-NULL seed values are drawn together; NULLs are generated.
    ``start``: the place of the first seed row among all of them."""
    if seeds.num_rows == 0:
        return generator.draw(0, batch)
    present = np.stack(
        [
            np.asarray(seeds.column(c).is_valid().to_numpy(zero_copy_only=False))
            for c in seeds.column_names
        ],
        1,
    )
    patterns, group = np.unique(present, axis=0, return_inverse=True)
    group = group.reshape(-1)
    parts, order = [], []
    for g, pattern in enumerate(patterns):
        rows = np.flatnonzero(group == g)
        kept = [c for c, p in zip(seeds.column_names, pattern, strict=True) if p]
        part_seeds = seeds.take(pa.array(rows)).select(kept)
        parts.append(generator.draw(len(rows), batch * 4096 + g, part_seeds))
        order.append(rows)
    return generator.in_seed_order(parts, order, start)


__all__ = ["generate", "load", "LoadedModel", "Rows", "GenerationProgress", "prepare"]
