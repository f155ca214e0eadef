"""The session shapes: rows are the steps of sessions (session_key, order_by, metadata).

A session is its metadata, start and length, then its steps (duck_synth/sessions.py lays them
out). ``SessionShape`` learns them with two networks of the row method (sessions, then steps
given their session, place and the steps before: models/steps.py); shapes/joint.py learns them
in one network. Either way generate() returns whole sessions with fresh keys and ``target``
counts sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from safetensors.torch import load as load_tensors

from ..catalog import ModelRecord
from ..conditions import CompiledFilter
from ..controls import imputation_masks
from ..encoding import Encoder, analyze, from_json, is_numeric_type
from ..errors import SynthError
from ..models import create_model, restore_model
from ..models.autoregressive import steps_per_epoch
from ..models.base import GenerativeModel
from ..models.steps import StepSpace, lags_for
from ..options import GenerateOptions, TrainOptions
from ..sessions import (
    DELTA,
    END,
    LENGTH,
    START,
    SessionLayout,
    assemble,
    delta_type,
    layout,
    split_sql,
)
from ..sqltext import quote_identifier
from .base import (
    STEPS_BATCH_OFFSET,
    Loaded,
    Training,
    TrainingPart,
    TrainingPlan,
    batch_generators,
    modelled,
    read_sql,
    rows_part,
    tokens,
)
from .rows import RowSampler

# the sessions' network takes as many optimizer steps as the steps' one, up to this many times
# its epochs (flights per plane, 1,223 planes: 10 epochs gave it 160 steps)
MAX_SESSION_EPOCHS_FACTOR = 10
SESSION_TIME_SHARE = 0.25  # of max_time for the session-level model; the steps get the rest
ROW_ONLY_METHODS = ("tabgan", "privbayes")  # no context columns: they cannot learn steps


@dataclass
class SessionSteps:
    """A session model's second half: how steps are laid out, encoded and sampled."""

    layout: SessionLayout
    encoders: list[Encoder]
    mean_length: float  # steps per training session
    model: GenerativeModel | None = None  # None: one network draws sessions and steps together
    space: StepSpace | None = None


@dataclass
class LoadedSessions(Loaded):
    """A session model: its main network draws sessions (metadata, start, length)."""

    steps: SessionSteps | None = None


@dataclass
class SessionData:
    """Sessions and their steps, read and encoded for training."""

    layout: SessionLayout
    session_encoders: list[Encoder]
    session_table: pa.Table  # one row per session: metadata, START, LENGTH
    step_encoders: list[Encoder]
    step_table: pa.Table  # one row per step: __session, __step, measurements, DELTA
    step_tokens: np.ndarray
    session_index: np.ndarray  # each step's session (0-based, in key order)
    step_index: np.ndarray  # each step's place in its session


class SessionShape:
    """Sessions by two networks of the row method: sessions, then their steps."""

    name = "sessions"
    tabular = False
    ends = True  # a session's end is drawn with it and its gaps scaled to end there

    def claims(self, method: str, options: TrainOptions) -> bool:
        return options.session_key is not None

    def owns(self, record: ModelRecord) -> bool:
        spec = record.statistics.get("sessions")
        return spec is not None and "step_model" in spec

    def check(self, method: str, options: TrainOptions) -> None:
        if options.epsilon is not None:
            raise SynthError(
                "train(): differential privacy for sessions is not available yet (a session "
                "has many rows); train on one row per session, or without epsilon"
            )
        if method in ROW_ONLY_METHODS:
            raise SynthError(
                f"train(): method '{method}' models rows, not sessions; for session data use "
                "'timegan' or 'autoregressive'"
            )

    def plan(self, con, relation: str, columns: list[tuple[str, str]], training: Training):
        data = read_sessions(con, relation, columns, training, self.ends)
        return session_plan(data, self.parts(data, training.method))

    def parts(self, data: SessionData, method: str) -> list[TrainingPart]:
        """Sessions (metadata, start, length), then steps given their session, their place
        and the steps before (models/steps.py)."""
        session_part = rows_part(
            "", method, data.session_encoders, data.session_table, SESSION_TIME_SHARE
        )
        step_learned = modelled(data.step_encoders)
        session_learned = modelled(data.session_encoders)
        space = StepSpace(
            [e.n_tokens for e in session_learned],
            [e.n_tokens for e in step_learned],
            lags_for(len(step_learned)),
        )
        rows = space.rows(
            session_part.data[0], data.step_tokens, data.session_index, data.step_index
        )
        step_model = create_model(
            method,
            space.vocab_sizes(),
            space.positions(
                [e.token_positions() for e in session_learned],
                [e.token_positions() for e in step_learned],
            ),
            [None] * len(space.vocab_sizes()),
            context=space.context,
        )
        learns = rows.shape[1] > space.context
        session_part.epochs_factor = min(
            MAX_SESSION_EPOCHS_FACTOR,
            math.ceil(steps_per_epoch(len(rows)) / steps_per_epoch(len(session_part.data[0]))),
        )
        return [session_part, TrainingPart("steps", step_model, (rows,), 1.0, learns=learns)]

    def stored(self, plan: TrainingPlan, params: dict[str, dict]) -> dict:
        step_encoders = [from_json(e) for e in plan.stored["sessions"]["step_encoders"]]
        lags = lags_for(len(modelled(step_encoders)))
        return {"sessions": plan.stored["sessions"] | {"step_model": params["steps"], "lags": lags}}

    def load(self, record: ModelRecord) -> LoadedSessions:
        loaded = self.load_sessions(record)
        spec, steps = record.statistics["sessions"], loaded.steps
        tensors = load_tensors(record.weights)
        step_tensors = {
            k.removeprefix("steps."): v for k, v in tensors.items() if k.startswith("steps.")
        }
        steps.model = restore_model(record.method, spec["step_model"], step_tensors)
        steps.space = StepSpace(
            [loaded.encoders[i].n_tokens for i in loaded.modelled],
            [e.n_tokens for e in modelled(steps.encoders)],
            spec["lags"],
        )
        return loaded

    def load_sessions(self, record: ModelRecord) -> LoadedSessions:
        """The session encoders and network, the steps' layout and encoders."""
        encoders = [from_json(spec) for spec in record.statistics["encoders"]]
        tensors = load_tensors(record.weights)
        own = {k: v for k, v in tensors.items() if not k.startswith("steps.")}
        model = restore_model(record.method, record.statistics["model"], own)
        spec = record.statistics["sessions"]
        steps = SessionSteps(
            SessionLayout.from_json(spec["layout"]),
            [from_json(e) for e in spec["step_encoders"]],
            mean_length=spec["steps"] / max(record.training_rows, 1),
        )
        modelled_ = [i for i, e in enumerate(encoders) if e.n_tokens > 0]
        return LoadedSessions(record, self, encoders, model, modelled_, steps=steps)

    def filter_scope(self, loaded: Loaded) -> tuple[list[Encoder], list[str]]:
        """Predicates condition the session model on metadata; others select sessions."""
        metadata = [e for e in loaded.encoders if e.name in loaded.steps.layout.metadata]
        return metadata, [name for name, _ in loaded.column_types()]

    def sampler(
        self, loaded: Loaded, options: GenerateOptions, compiled: CompiledFilter, seed: int
    ) -> RowSampler:
        return SessionSampler(loaded, options, compiled, seed)

    def refuse(self, options: GenerateOptions) -> None:
        if options.fairness is not None:
            raise SynthError("generate(): fairness is for tabular models, not session models")


def read_sessions(
    con, relation: str, columns: list[tuple[str, str]], training: Training, ends: bool
) -> SessionData:
    """Sessions (metadata, start, length, with ``ends`` the end) and their steps (measurements,
    delta), encoded."""
    options, seed, protection = training.options, training.seed, training.protection
    found = layout(con, relation, columns, options.session_key, options.order_by, options.metadata)
    types = dict(found.columns)
    read = read_sql(relation, found.columns, replace(options, nrows=None), seed)
    if options.nrows:  # nrows counts sessions here: sample keys, keep their whole sessions
        key = quote_identifier(found.key)
        read = (
            f"SELECT * FROM ({read}) WHERE {key} IN (SELECT {key} FROM "
            f"(SELECT DISTINCT {key} FROM ({read})) "
            f"USING SAMPLE reservoir({options.nrows} ROWS) REPEATABLE ({seed}))"
        )
    session_sql, step_sql = split_sql(found, read, ends)
    session_table = con.execute(session_sql).to_arrow_table().drop(["__session"])
    step_table = con.execute(step_sql).to_arrow_table()
    if session_table.num_rows == 0:
        raise SynthError(f"train(): no session has a non-NULL {found.key} and {found.order_by}")
    session_types = {c: types[c] for c in found.metadata}
    session_types |= {START: found.order_type, LENGTH: "BIGINT"}
    internal = {START: ordered_kind(found.order_type), LENGTH: "numeric"}
    if ends:
        session_types[END], internal[END] = found.order_type, ordered_kind(found.order_type)
    session_encoders = analyze(
        session_table, session_types, overrides(options, found.metadata) | internal, protection
    )
    step_columns = step_table.drop(["__session", "__step"])
    step_types = {c: types[c] for c in found.measurements}
    step_types[DELTA] = delta_type(found)
    step_encoders = analyze(
        step_columns,
        step_types,
        overrides(options, found.measurements) | {DELTA: "numeric"},
        protection,
    )
    return SessionData(
        found,
        session_encoders,
        session_table,
        step_encoders,
        step_table,
        tokens(step_encoders, step_columns),
        np.asarray(step_table.column("__session")),
        np.asarray(step_table.column("__step")),
    )


def session_plan(data: SessionData, parts: list[TrainingPart]) -> TrainingPlan:
    """The plan of a session shape: output columns in the source's order, keys counting
    sessions where the source's key type cannot."""
    found, types = data.layout, dict(data.layout.columns)
    kinds = {e.name: e.kind for e in data.session_encoders + data.step_encoders}
    kinds |= {found.key: "session_key", found.order_by: "order"}
    output_types = dict(found.columns)
    if not (is_numeric_type(types[found.key]) or types[found.key] == "VARCHAR"):
        output_types[found.key] = "BIGINT"  # fresh keys count sessions: 1, 2, ...
    return TrainingPlan(
        encoders=data.session_encoders,
        columns=[{"name": c, "type": output_types[c], "kind": kinds[c]} for c, _ in found.columns],
        parts=parts,
        training_rows=data.session_table.num_rows,
        rows=data.step_table.num_rows,
        stored={
            "sessions": {
                "layout": found.to_json(),
                "step_encoders": [e.to_json() for e in data.step_encoders],
                "steps": data.step_table.num_rows,
            }
        },
        summary={"sessions": data.session_table.num_rows},
    )


def delta_grid(steps: SessionSteps) -> float:
    """The grid the gaps were recorded on: their common step (whole hours in microseconds)
    or their precision; 0 where the gaps are not numbers."""
    delta = next(e for e in steps.encoders if e.name == DELTA)
    stats = getattr(delta, "stats", None) or {}
    if "decimals" not in stats:
        return 0.0
    return max(float(stats.get("step", 1)), 10.0 ** -stats["decimals"])


def ordered_kind(duck_type: str) -> str:
    return "numeric" if is_numeric_type(duck_type) else "datetime"


def overrides(options: TrainOptions, names: list[str]) -> dict[str, str]:
    return {c: kind for c, kind in options.encoding.items() if c in names}


class SessionSampler(RowSampler):
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
            np.asarray(session_table.column(LENGTH).fill_null(1), dtype=np.int64), 1
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
        end = next((e for e in self.loaded.encoders if e.name == END), None)
        latest = float(end.stats["high"]) if end is not None and "high" in end.stats else math.inf
        return assemble(
            steps.layout,
            session_table,
            pa.table(columns),
            session_index,
            delta_grid(steps),
            latest,
        )

    def kept_sql(self) -> str:
        key = quote_identifier(self.steps.layout.key)
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

    def unique_keys(self) -> list[str]:
        """Session keys are unique per session, not per row."""
        return [k for k in super().unique_keys() if k != self.loaded.steps.layout.key]

    def count_unit(self) -> str:
        return f"DISTINCT {quote_identifier(self.loaded.steps.layout.key)}"

    def seedable(self) -> tuple[list[str], str]:
        """A session model is seeded with its sessions' metadata."""
        names, model = self.loaded.steps.layout.metadata, self.loaded.record.name
        return names, (
            f"a metadata column of session model '{model}' (its metadata: {', '.join(names)})"
        )
