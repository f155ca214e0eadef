"""generate(): synthetic rows from a stored model, streamed batch by batch to a spool file.

Pushed-down predicates become sampling conditions (see conditions.py) and a residual filter;
``target`` counts the rows that pass. Each batch has its own seed derived from the run's seed and
the batch number, so the same model, seed and arguments give the same rows.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from safetensors.torch import load as load_tensors

from . import caller, catalog, sessions, spool, sqltext, views
from .conditions import CompiledFilter, compile_filter, json_predicate
from .controls import Fairness, Quotas, UniqueValues, imputation_masks, limit_strings
from .encoding import NULL_TOKEN, Encoder, from_json
from .encoding.fixed import KeyEncoder
from .errors import SynthError
from .models import restore_model
from .models.base import Conditions, GenerativeModel, SampleConfig
from .models.steps import StepSpace
from .models.timegan import TimeGanModel
from .options import GenerateOptions, parse
from .sources import read_source

MIN_EFFORT_ROWS = 1_000_000
EFFORT_FACTOR = 100
PILOT_BATCH, SCHEMA_BATCH = 2**40, 2**40 + 1  # batch numbers no real batch reaches
STEPS_BATCH_OFFSET = 2**41  # a session batch's steps draw from their own seeded generators


@dataclass
class SessionSteps:
    """A session model's second half: how steps are laid out, encoded and sampled."""

    layout: sessions.SessionLayout
    encoders: list[Encoder]
    mean_length: float  # steps per training session
    model: GenerativeModel | None = None  # None: one network draws sessions and steps together
    space: StepSpace | None = None


@dataclass
class LoadedModel:
    record: catalog.ModelRecord
    encoders: list[Encoder]
    model: GenerativeModel | TimeGanModel
    modelled: list[int]  # indexes of encoders the network learns
    steps: SessionSteps | None = None  # session models only

    def column_types(self) -> list[tuple[str, str]]:
        return [(c["name"], c["type"]) for c in self.record.columns]


_cache: dict[tuple, LoadedModel] = {}


def load(con: duckdb.DuckDBPyConnection, spec: str) -> LoadedModel:
    name, version = catalog.resolve_version(con, spec)
    created = con.execute(
        "SELECT created::VARCHAR FROM synth.models WHERE name = ? AND version = ?", [name, version]
    ).fetchone()[0]
    key = (name, version, created)
    if key not in _cache:
        record = catalog.load_model(con, f"{name}@{version}")
        _cache[key] = bundle(record)
    return _cache[key]


def bundle(record: catalog.ModelRecord) -> LoadedModel:
    encoders = [from_json(spec) for spec in record.statistics["encoders"]]
    modelled = [i for i, e in enumerate(encoders) if e.n_tokens > 0]
    tensors = load_tensors(record.weights)
    own = {k: v for k, v in tensors.items() if not k.startswith("steps.")}
    model = restore_model(record.method, record.statistics["model"], own)
    loaded = LoadedModel(record, encoders, model, modelled)
    spec = record.statistics.get("sessions")
    if spec is not None:
        step_encoders = [from_json(e) for e in spec["step_encoders"]]
        loaded.steps = SessionSteps(
            sessions.SessionLayout.from_json(spec["layout"]),
            step_encoders,
            mean_length=spec["steps"] / max(record.training_rows, 1),
        )
        if "step_model" in spec:  # a second network for the steps
            step_tensors = {
                k.removeprefix("steps."): v for k, v in tensors.items() if k.startswith("steps.")
            }
            loaded.steps.model = restore_model(record.method, spec["step_model"], step_tensors)
            loaded.steps.space = StepSpace(
                [encoders[i].n_tokens for i in modelled],
                [e.n_tokens for e in step_encoders if e.n_tokens > 0],
                spec["lags"],
            )
    return loaded


def new_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def batch_generators(seed: int, batch: int) -> tuple[torch.Generator, np.random.Generator]:
    return (
        torch.Generator().manual_seed(seed * 1_000_003 + batch),
        np.random.default_rng([seed, batch]),
    )


_sandbox_lock = threading.Lock()
_sandbox: duckdb.DuckDBPyConnection | None = None


def sandbox() -> duckdb.DuckDBPyConnection:
    """One in-memory database per process without file access (its settings locked), whose
    cursors run residual filters over registered batches: one instance, not one per call."""
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            _sandbox = duckdb.connect(
                config={"enable_external_access": False, "lock_configuration": True, "threads": 1}
            )
        return _sandbox


class Generator:
    """Draws decoded batches from a loaded model under a compiled filter."""

    def __init__(
        self, loaded: LoadedModel, options: GenerateOptions, compiled: CompiledFilter, seed: int
    ):
        self.loaded, self.options, self.compiled, self.seed = loaded, options, compiled, seed
        self.config = SampleConfig(temperature=options.temperature, top_p=options.top_p)
        # the residual filter runs on the batch alone, in a database that reaches no file
        self.filter_con = sandbox().cursor() if compiled.sql else None
        self.keys_emitted = 0
        encoders, modelled = loaded.encoders, loaded.modelled
        known = [name for name, _ in loaded.column_types()]
        self.impute = imputation_masks(encoders, modelled, options.impute or [], known)
        self.fairness = Fairness.build(encoders, modelled, options.fairness)
        facts = loaded.record.statistics.get("facts", {})
        self.string_limits = (
            {c: f["max_length"] for c, f in facts.items() if f.get("max_length") is not None}
            if options.limit_strings
            else {}
        )
        self.unique = UniqueValues(_unique_columns(loaded, options))
        self.quotas: Quotas | None = None

    def set_target(self, target: int) -> None:
        """Shares (equalize / rebalance) are quotas of the target."""
        options, loaded = self.options, self.loaded
        self.quotas = Quotas.build(
            loaded.encoders,
            loaded.modelled,
            options.equalize,
            options.rebalance,
            self.compiled.restrictions,
            target,
        )

    def conditions(self, n: int, fixed_values: dict[int, np.ndarray] | None = None) -> Conditions:
        loaded, conditions = self.loaded, Conditions()
        for pos, i in enumerate(loaded.modelled):
            encoder = loaded.encoders[i]
            allowed = encoder.sampling_mask()
            restriction = self.compiled.restrictions.get(encoder.name)
            if restriction is not None and restriction.allowed is not None:
                allowed = (
                    restriction.allowed if allowed is None else (restriction.allowed & allowed)
                )
                if not allowed.any():
                    allowed = restriction.allowed  # the user asked for exactly these values
                conditions.allowed[pos] = allowed
            elif allowed is not None:
                conditions.allowed[pos] = allowed
            if pos in self.impute:
                current = conditions.allowed.get(pos)
                mask = self.impute[pos] if current is None else current & self.impute[pos]
                conditions.allowed[pos] = mask if mask.any() else current
        for pos, tokens in (fixed_values or {}).items():
            conditions.fixed[pos] = tokens
            conditions.allowed.pop(pos, None)
        conditions.first = [
            p
            for p in conditions.allowed
            if loaded.encoders[loaded.modelled[p]].name in self.compiled.restrictions
        ]
        return conditions

    def draw(self, n: int, batch: int, seed_table: pa.Table | None = None) -> pa.Table:
        """One decoded batch of ``n`` rows (before the residual filter)."""
        return self.draw_tokens(n, batch, seed_table)[0]

    def batch_units(self, want: int) -> int:
        """How many units (rows) to draw in one batch."""
        return min(self.options.batch_size, want)

    def in_seed_order(self, parts: list[pa.Table], rows: list[np.ndarray], start: int) -> pa.Table:
        """Parts drawn per NULL pattern of the seed rows, put back in the seed rows' order."""
        table = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
        inverse = np.empty(table.num_rows, dtype=np.int64)
        inverse[np.concatenate(rows)] = np.arange(table.num_rows)
        return table.take(pa.array(inverse))

    def units(self, table: pa.Table) -> int:
        """What target counts in a batch: rows."""
        return table.num_rows

    def head(self, table: pa.Table, k: int) -> pa.Table:
        """The batch's first ``k`` units."""
        return table.slice(0, k)

    def draw_tokens(
        self, n: int, batch: int, seed_table: pa.Table | None = None
    ) -> tuple[pa.Table, np.ndarray]:
        """One decoded batch and the tokens it was decoded from."""
        loaded = self.loaded
        torch_gen, rng = batch_generators(self.seed, batch)
        fixed: dict[int, np.ndarray] = {}
        if seed_table is not None:
            for pos, i in enumerate(loaded.modelled):
                name = loaded.encoders[i].name
                if name in seed_table.column_names:
                    fixed[pos] = loaded.encoders[i].encode(seed_table.column(name).combine_chunks())
        if self.quotas is not None and self.quotas.position not in fixed and batch < PILOT_BATCH:
            fixed[self.quotas.position] = self.quotas.draw(
                n, np.random.default_rng([self.seed, batch, 1])
            )
        tokens = self.sample_tokens(n, self.conditions(n, fixed), torch_gen)
        columns = {}
        position = {i: pos for pos, i in enumerate(loaded.modelled)}
        for i, encoder in enumerate(loaded.encoders):
            if seed_table is not None and encoder.name in seed_table.column_names:
                columns[encoder.name] = (
                    seed_table.column(encoder.name).combine_chunks().cast(encoder.arrow_type())
                )
            elif isinstance(encoder, KeyEncoder):
                columns[encoder.name] = encoder.decode(np.zeros(n), rng, offset=self.keys_emitted)
            elif i in position:
                restriction = self.compiled.restrictions.get(encoder.name)
                columns[encoder.name] = encoder.decode(tokens[:, position[i]], rng, restriction)
            else:
                columns[encoder.name] = encoder.decode(np.zeros(n, dtype=np.int64), rng)
        if batch < PILOT_BATCH:  # schema and pilot draws do not use up key values
            self.keys_emitted += n
        return pa.table(columns), tokens

    def sample_tokens(self, n: int, conditions: Conditions, generator: torch.Generator):
        model = self.loaded.model
        tokens = model.sample(n, conditions, self.config, generator)
        if self.fairness is None:
            return tokens
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        fixed = self.fairness.fixed(tokens, rng) | conditions.fixed
        allowed = {p: m for p, m in conditions.allowed.items() if p not in fixed}
        return model.sample(n, Conditions(fixed, allowed, conditions.first), self.config, generator)

    def keep(self, table: pa.Table) -> pa.Table:
        """What survives every step after drawing: strings cut, the residual filter (rows typed
        as the output first), unique values, the shares' quotas."""
        table = limit_strings(table, self.string_limits)
        if self.filter_con is not None:
            self.filter_con.register("batch", table)
            typed = spool.cast_sql("batch", self.loaded.column_types())
            table = self.filter_con.execute(
                f"WITH typed AS ({typed}) {self.kept_sql()}"
            ).to_arrow_table()
        table = self.unique.admit(table)
        if self.quotas is not None:
            table = self.quotas.admit(table, self.unit_of_row(table))
        return table

    def unit_of_row(self, table: pa.Table) -> np.ndarray:
        """Which unit (what target counts) each row belongs to: rows."""
        return np.arange(table.num_rows)

    def rejects(self) -> bool:
        """Whether steps after drawing may drop units (beyond the residual filter; quotas
        draw each value's open count, so they drop units only when a filter does)."""
        return bool(self.unique.columns)

    def state(self) -> dict:
        """What a resumed run needs to draw the same rows as one that was never stopped
        (unique values are read back from the rows written)."""
        quotas = self.quotas
        return {
            "keys_emitted": self.keys_emitted,
            "quotas": None if quotas is None else [quotas.kept.tolist(), quotas.drawn.tolist()],
        }

    def restore(self, state: dict) -> None:
        self.keys_emitted = state["keys_emitted"]
        if self.quotas is not None and state.get("quotas"):
            self.quotas.kept = np.asarray(state["quotas"][0], dtype=np.int64)
            self.quotas.drawn = np.asarray(state["quotas"][1], dtype=np.int64)

    def kept_sql(self) -> str:
        """What the residual filter keeps of the typed batch: the rows satisfying it."""
        return f"SELECT * FROM typed WHERE {self.compiled.sql}"


class SessionGenerator(Generator):
    """Whole sessions: the session model draws metadata, start and length (conditioned on the
    pushed-down predicates over metadata), the step model then draws each session's steps.

    The residual filter keeps a session when at least one of its steps satisfies it, and keeps
    all of its steps; ``target`` counts sessions. Keys count from 1 over the sessions returned.
    """

    def __init__(self, loaded, options, compiled, seed):
        super().__init__(loaded, options, compiled, seed)
        self.steps = loaded.steps
        self.sessions_returned = 0

    def draw(self, n: int, batch: int, seed_table: pa.Table | None = None) -> pa.Table:
        """``n`` whole sessions, keyed 0..n-1; ``seed_table`` gives metadata values."""
        steps = self.steps
        session_table, session_tokens = self.draw_tokens(n, batch, seed_table)
        lengths = np.maximum(
            np.asarray(session_table.column(sessions.LENGTH).fill_null(1), dtype=np.int64), 1
        )
        torch_gen, rng = batch_generators(self.seed, batch + STEPS_BATCH_OFFSET)
        tokens, session_index, _ = steps.space.sample(
            steps.model, session_tokens, lengths, self.step_allowed(), self.config, torch_gen
        )
        return self.assemble(session_table, tokens, session_index, rng)

    def step_allowed(self) -> dict[int, np.ndarray]:
        """What each modelled step column may emit unconditionally."""
        encoders = self.steps.encoders
        modelled = [i for i, e in enumerate(encoders) if e.n_tokens > 0]
        known = [name for name, _ in self.loaded.column_types()]
        allowed = imputation_masks(encoders, modelled, self.options.impute or [], known)
        for pos, i in enumerate(modelled):
            mask = encoders[i].sampling_mask()
            if mask is not None:
                allowed[pos] = mask & allowed[pos] if pos in allowed else mask
        return allowed

    def assemble(self, session_table, tokens, session_index, rng) -> pa.Table:
        """Rows of the source's shape from decoded sessions and their steps' tokens."""
        steps = self.steps
        columns, pos = {}, 0
        for encoder in steps.encoders:
            if encoder.n_tokens > 0:
                columns[encoder.name] = encoder.decode(tokens[:, pos], rng)
                pos += 1
            else:
                columns[encoder.name] = encoder.decode(np.zeros(len(tokens), np.int64), rng)
        return sessions.assemble(steps.layout, session_table, pa.table(columns), session_index)

    def kept_sql(self) -> str:
        key = sqltext.quote_identifier(self.steps.layout.key)
        return (
            f"SELECT * FROM typed WHERE {key} IN "
            f"(SELECT {key} FROM typed WHERE {self.compiled.sql}) ORDER BY {key}"
        )

    def units(self, table: pa.Table) -> int:
        return len(pc.unique(table.column(self.steps.layout.key)))

    def unit_of_row(self, table: pa.Table) -> np.ndarray:
        return np.asarray(table.column(self.steps.layout.key).cast(pa.int64()))

    def state(self) -> dict:
        return super().state() | {"sessions_returned": self.sessions_returned}

    def restore(self, state: dict) -> None:
        super().restore(state)
        self.sessions_returned = state.get("sessions_returned", 0)

    def head(self, table: pa.Table, k: int) -> pa.Table:
        """The first ``k`` sessions, keyed on from the sessions returned before."""
        name = self.steps.layout.key
        keys = np.asarray(table.column(name).cast(pa.int64()))
        starts = np.r_[True, keys[1:] != keys[:-1]]
        number = np.cumsum(starts) - 1
        table = table.filter(pa.array(number < k))
        number = number[number < k]
        fresh = pa.array(number + self.sessions_returned + 1, pa.int64())
        table = table.set_column(table.column_names.index(name), name, fresh)
        self.sessions_returned += int(number.max(initial=-1)) + 1
        return table

    def in_seed_order(self, parts: list[pa.Table], rows: list[np.ndarray], start: int) -> pa.Table:
        """One session per seed row, keyed by its place among all seed rows (from 1)."""
        name = self.steps.layout.key
        keyed = []
        for part, seed_rows in zip(parts, rows, strict=True):
            local = np.asarray(part.column(name).cast(pa.int64()))
            fresh = pa.array(seed_rows[local] + start + 1, pa.int64())
            keyed.append(part.set_column(part.column_names.index(name), name, fresh))
        table = pa.concat_tables([t.cast(keyed[0].schema) for t in keyed])
        return table.sort_by([(name, "ascending"), (self.steps.layout.order_by, "ascending")])

    def batch_units(self, want: int) -> int:
        """Sessions per batch: about batch_size rows."""
        return max(1, min(want, int(self.options.batch_size / max(self.steps.mean_length, 1))))


class JointSessionGenerator(SessionGenerator):
    """Whole sessions from one network (timegan): it draws a session's attributes (metadata,
    start), its length and its steps together; keys, filters and targets as SessionGenerator."""

    def sample_tokens(self, n: int, conditions: Conditions, generator: torch.Generator):
        """Session tokens as the session encoders read them (LENGTH from the generated
        lengths); the steps wait in ``self.drawn_steps`` for draw()."""
        names = [self.loaded.encoders[i].name for i in self.loaded.modelled]
        length = names.index(sessions.LENGTH) if sessions.LENGTH in names else None

        def attribute(pos: int) -> int:
            return pos - (length is not None and pos > length)

        given = Conditions(
            fixed={attribute(p): v for p, v in conditions.fixed.items() if p != length},
            allowed={attribute(p): m for p, m in conditions.allowed.items() if p != length},
            first=[attribute(p) for p in conditions.first if p != length],
        )
        attributes, steps, lengths = self.loaded.model.sample(
            n, given, self.step_allowed(), self.config, generator
        )
        self.drawn_steps = (steps, lengths)
        if length is None:
            return attributes
        encoder = self.loaded.encoders[self.loaded.modelled[length]]
        return np.insert(attributes, length, encoder.encode(pa.array(lengths)), axis=1)

    def step_allowed(self) -> dict[int, np.ndarray]:
        """As for two networks, and never a NULL gap (training filled the first steps')."""
        allowed = super().step_allowed()
        names = [e.name for e in self.steps.encoders if e.n_tokens > 0]
        if sessions.DELTA in names:
            k = names.index(sessions.DELTA)
            encoder = [e for e in self.steps.encoders if e.n_tokens > 0][k]
            mask = allowed.get(k, np.ones(encoder.n_tokens, dtype=bool)).copy()
            mask[NULL_TOKEN] = False
            allowed[k] = mask
        return allowed

    def draw(self, n: int, batch: int, seed_table: pa.Table | None = None) -> pa.Table:
        session_table, _ = self.draw_tokens(n, batch, seed_table)
        steps, lengths = self.drawn_steps
        session_index = np.repeat(np.arange(n), lengths)
        step_index = np.arange(len(session_index)) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        _, rng = batch_generators(self.seed, batch + STEPS_BATCH_OFFSET)
        return self.assemble(session_table, steps[session_index, step_index], session_index, rng)


def prepare(
    con: duckdb.DuckDBPyConnection, spec: str, given: GenerateOptions, seed: int | None = None
) -> Generator:
    """The generator for a call's options: predicates compiled, controls built."""
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
    if loaded.steps is not None and options.fairness is not None:
        raise SynthError("generate(): fairness is for tabular models, not session models")
    if seed is None:
        seed = options.seed if options.seed is not None else new_seed()
    if loaded.steps is None:
        compiled = compile_filter(options.filter, loaded.encoders, spec, con=con)
        return Generator(loaded, options, compiled, seed)
    metadata = [e for e in loaded.encoders if e.name in loaded.steps.layout.metadata]
    others = [name for name, _ in loaded.column_types()]
    compiled = compile_filter(options.filter, metadata, spec, others, con=con)
    joint = loaded.steps.model is None
    return (JointSessionGenerator if joint else SessionGenerator)(loaded, options, compiled, seed)


def generate(con: duckdb.DuckDBPyConnection, spec: str, options_json: str) -> str:
    """Generate rows and return the SQL that reads them.

    >>> FROM generate('diamonds', target => 3) WHERE cut = 'Fair'   -- 3 rows, all Fair
    """
    if views.is_marked(options_json):  # a view's SQL bound to be created or described
        record = catalog.load_model(con, spec, with_weights=False)
        return views.columns_sql([(c["name"], c["type"]) for c in record.columns])
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
            self.seeds = _seed_rows(con, self.generator, options)
        else:
            self.seeds = None
            self.target = target_units(con, self.generator, options)
            caller.refuse_rows(self.target, f"generate('{spec}')")
            self.generator.set_target(self.target)

    def __iter__(self):
        generator = self.generator
        if self.seeds is not None:
            progress = Progress(drawn=self.seeds.num_rows)
            size = generator.options.batch_size
            for batch, start in enumerate(range(0, self.seeds.num_rows, size)):
                caller.check()
                rows = _draw_seeded(generator, self.seeds.slice(start, size), batch, start)
                table = limit_strings(rows, generator.string_limits)
                progress.returned += table.num_rows
                yield table.cast(self.schema)
            progress.passed = progress.returned
        else:
            progress = Progress()
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


def _unique_columns(loaded: LoadedModel, options: GenerateOptions) -> list[str]:
    """Columns whose values may not repeat: those named, and with drop_unique_violation every
    column that had no duplicate in training (keys included)."""
    names = [name for name, _ in loaded.column_types()]
    lower = {n.lower(): n for n in names}
    columns = []
    for name in options.unique_columns or []:
        if name.lower() not in lower:
            raise SynthError(
                f"generate(): unique_columns: unknown column '{name}' (the model has: {', '.join(names)})"
            )
        columns.append(lower[name.lower()])
    if options.drop_unique_violation:
        facts = loaded.record.statistics.get("facts", {})
        keys = [e.name for e in loaded.encoders if isinstance(e, KeyEncoder)]
        if loaded.steps is not None:  # session keys are unique per session, not per row
            keys = [k for k in keys if k != loaded.steps.layout.key]
        columns += [c for c in names if facts.get(c, {}).get("unique") or c in keys]
    return list(dict.fromkeys(columns))


def target_units(con, generator: Generator, options: GenerateOptions) -> int:
    """How many rows (sessions) to return: target, magnitude, or the training data's; never
    more than at_most."""
    if options.at_most is None:
        return _uncapped_target(con, generator, options)
    if options.at_most == 0:
        return 0
    return min(options.at_most, _uncapped_target(con, generator, options))


def _uncapped_target(con, generator: Generator, options: GenerateOptions) -> int:
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


def _matching_training_rows(con, generator: Generator) -> int:
    """Default target under a filter: the training rows that satisfy it."""
    record = generator.loaded.record
    steps = generator.loaded.steps
    unit = "*" if steps is None else f"DISTINCT {sqltext.quote_identifier(steps.layout.key)}"
    try:
        relation = read_source(con, record.source)
        matching, total = con.execute(
            f"SELECT count({unit}) FILTER (WHERE {generator.compiled.sql}), count({unit}) "
            f"FROM ({relation})"
        ).fetchone()
        return int(round(matching * record.training_rows / max(total, 1)))
    except (duckdb.Error, SynthError):
        # the source is gone: estimate the share from an unconditional pilot sample
        pilot = Generator(
            generator.loaded,
            generator.options,
            CompiledFilter(sql=generator.compiled.sql),
            generator.seed,
        )
        sample = pilot.draw(20_000, batch=PILOT_BATCH)
        return int(round(pilot.keep(sample).num_rows / 20_000 * record.training_rows))


@dataclass
class Progress:
    """Where a run stands: batches drawn, rows (units) drawn and returned."""

    batch: int = 0
    drawn: int = 0
    returned: int = 0
    passed: int = 0  # units that survived every step (the last batch may bring more than needed)


def batches(generator: Generator, target: int, spec: str, progress: Progress):
    """Batches of surviving rows until ``target`` units; ``progress`` moves as they come (a
    resumed run passes the progress and generator state it stopped at)."""
    effort = max(EFFORT_FACTOR * target, MIN_EFFORT_ROWS)
    while progress.returned < target:
        caller.check()  # a cancelled statement stops between batches (generate_into's too)
        if progress.drawn >= effort:
            raise SynthError(
                f"generate('{spec}'): found {progress.returned:,} of {target:,} rows satisfying "
                f"{generator.compiled.sql or 'the unique columns'} after drawing "
                f"{progress.drawn:,}; the filter may be unsatisfiable for this model"
            )
        want = target - progress.returned
        if generator.compiled.filtered or generator.rejects():  # draw a little more
            acceptance = progress.returned / progress.drawn if progress.drawn else 1.0
            want = max(int(want / max(acceptance, 1e-3) * 1.2) + 16, 1024)
        n = generator.batch_units(want)
        table = generator.keep(generator.draw(n, progress.batch))
        progress.drawn, progress.batch = progress.drawn + n, progress.batch + 1
        survived = generator.units(table)
        progress.passed += survived
        kept = min(survived, target - progress.returned)
        progress.returned += kept
        yield generator.head(table, kept)


def _seed_rows(con, generator: Generator, options: GenerateOptions) -> pa.Table:
    """The seed rows of a seeded call, checked against the model's columns."""
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
    model = generator.loaded.record.name
    if generator.loaded.steps is None:
        names, where = [e.name for e in generator.loaded.encoders], f"in model '{model}'"
        listed = f"its columns: {', '.join(names)}"
    else:  # a session model is seeded with its sessions' metadata
        names = generator.loaded.steps.layout.metadata
        where = f"a metadata column of session model '{model}'"
        listed = f"its metadata: {', '.join(names)}"
    unknown = [c for c in seeds.column_names if c not in names]
    if unknown:
        raise SynthError(
            f"seed_rows: column {', '.join(repr(c) for c in unknown)} is not {where} ({listed})"
        )
    return seeds


def _draw_seeded(generator: Generator, seeds: pa.Table, batch: int, start: int) -> pa.Table:
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


__all__ = ["generate", "load", "LoadedModel", "Rows"]
