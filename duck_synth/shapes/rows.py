"""Drawing rows: the sampler every shape's sampler is or builds on.

A sampler draws decoded batches from a loaded model under a compiled filter (conditions in
token space, and a residual SQL filter run after drawing) and the generation controls (shares,
imputation, fairness, unique values, string limits). generate.py's batch loop drives it; what
target counts (rows here, sessions for session shapes) is the sampler's to say.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import torch

from .. import spool
from ..conditions import CompiledFilter
from ..controls import Fairness, Quotas, UniqueValues, imputation_masks, limit_strings
from ..encoding.fixed import KeyEncoder
from ..errors import SynthError
from ..models.base import Conditions, SampleConfig
from ..options import GenerateOptions
from .base import PILOT_BATCH, Loaded, batch_generators
from .text import draw_texts

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


class RowSampler:
    """Draws decoded batches of rows from a loaded model under a compiled filter."""

    def __init__(
        self, loaded: Loaded, options: GenerateOptions, compiled: CompiledFilter, seed: int
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
        self.unique = UniqueValues(self.unique_columns())
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
        if loaded.texts:  # each row's text is written given the columns just drawn
            given = set(seed_table.column_names) if seed_table is not None else set()
            draw_texts(loaded, tokens, columns, torch_gen, self.config, given)
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
        """What survives every step after drawing (``screen``, then ``admit``)."""
        return self.admit(self.screen(table))

    def screen(self, table: pa.Table) -> pa.Table:
        """The steps that read the batch alone: strings cut, the residual filter (rows typed
        as the output first). A Ray worker runs them (distributed/generation.py)."""
        table = limit_strings(table, self.string_limits)
        if self.filter_con is not None:
            self.filter_con.register("batch", table)
            typed = spool.cast_sql("batch", self.loaded.column_types())
            table = self.filter_con.execute(
                f"WITH typed AS ({typed}) {self.kept_sql()}"
            ).to_arrow_table()
        return table

    def admit(self, table: pa.Table) -> pa.Table:
        """The steps that read the batches before this one, taken in batch order: unique
        values, the shares' quotas."""
        table = self.unique.admit(table)
        if self.quotas is not None:
            table = self.quotas.admit(table, self.unit_of_row(table))
        return table

    def full_batch(self) -> int:
        """The units of a batch that is not the last."""
        return self.batch_units(2**62)

    def may_reject(self) -> bool:
        """Whether a step after drawing may drop rows: the filter run on each batch (even a
        pushed-down one is checked again), unique values."""
        return bool(self.compiled.sql) or self.rejects()

    def planned_units(self, target: int, batch: int) -> int:
        """Batch ``batch``'s units in a run of ``target`` units that follows the plan every
        engine shares: full batches; when no step after drawing may drop units, the last one
        holds what is left. Depends only on the target, the batch number and batch_size."""
        full = self.full_batch()
        if self.may_reject():
            return full
        return max(0, min(full, target - batch * full))

    def planned_batches(self, target: int, batch: int) -> Iterator[tuple[int, dict]]:
        """(units, the state it starts from) of each batch of the plan from ``batch`` on, this
        sampler's state being the one batch ``batch`` starts from; computed without drawing:
        keys move by the units drawn, and quotas as they do when nothing is rejected (under a
        filter or unique values they depend on the rows, and are refused here, at once)."""
        if self.quotas is not None and self.may_reject():
            raise SynthError(
                "generate_into(): equalize and rebalance under a filter or unique values "
                "depend on every batch before: give engine => 'local'"
            )
        return self._plan_from(target, batch)

    def _plan_from(self, target: int, batch: int) -> Iterator[tuple[int, dict]]:
        keys, quotas = self.keys_emitted, self.quotas
        # copies: the run's quotas move in place as batches are taken, while this runs ahead
        kept, drawn = (None, None) if quotas is None else (quotas.kept.copy(), quotas.drawn.copy())
        while (n := self.planned_units(target, batch)) > 0:
            shares = None if quotas is None else [kept.tolist(), drawn.tolist()]
            yield n, {"keys_emitted": keys, "quotas": shares}
            if quotas is not None:  # every unit drawn is kept
                counts = quotas.counts(kept, drawn, n)
                kept, drawn = kept + counts, drawn + counts
            keys, batch = keys + n, batch + 1

    def drawn_elsewhere(self, n: int) -> None:
        """The next batch, of ``n`` units, was drawn by another process from this sampler's
        state: the state moves as that draw moved it there (what a resumed run starts from)."""
        self.keys_emitted += n
        if self.quotas is not None:
            self.quotas.advance(n)

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

    def unique_columns(self) -> list[str]:
        """Columns whose values may not repeat: those named, and with drop_unique_violation
        every column that had no duplicate in training (keys included)."""
        loaded, options = self.loaded, self.options
        names = [name for name, _ in loaded.column_types()]
        lower = {n.lower(): n for n in names}
        columns = []
        for name in options.unique_columns or []:
            if name.lower() not in lower:
                raise SynthError(
                    f"generate(): unique_columns: unknown column '{name}' "
                    f"(the model has: {', '.join(names)})"
                )
            columns.append(lower[name.lower()])
        if options.drop_unique_violation:
            facts = loaded.record.statistics.get("facts", {})
            keys = self.unique_keys()
            columns += [c for c in names if facts.get(c, {}).get("unique") or c in keys]
        return list(dict.fromkeys(columns))

    def unique_keys(self) -> list[str]:
        """Key columns, unique per unit: every key column of a row."""
        return [e.name for e in self.loaded.encoders if isinstance(e, KeyEncoder)]

    def pilot(self) -> RowSampler:
        """A sampler of the same kind without conditions, whose kept share estimates the
        filter's acceptance."""
        return type(self)(
            self.loaded, self.options, CompiledFilter(sql=self.compiled.sql), self.seed
        )

    def count_unit(self) -> str:
        """What target counts, as a count() argument over the training data."""
        return "*"

    def seedable(self) -> tuple[list[str], str]:
        """(columns seed rows may give, how to say a column is not one of them)."""
        names = [e.name for e in self.loaded.encoders]
        model = self.loaded.record.name
        return names, f"in model '{model}' (its columns: {', '.join(names)})"
