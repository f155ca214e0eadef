"""The joint session shape: one session network (models/base.SessionModel, e.g. timegan)
learns a session's attributes (metadata, start), its steps and its length together, the
DoppelGANger way; reading, keys, filters and targets as shapes/sessions.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from ..catalog import ModelRecord
from ..conditions import CompiledFilter
from ..encoding import NULL_TOKEN
from ..models import METHODS
from ..models.base import Conditions, SessionModel
from ..options import GenerateOptions, TrainOptions
from ..sessions import DELTA, LENGTH
from .base import (
    STEPS_BATCH_OFFSET,
    Loaded,
    TrainingPart,
    TrainingPlan,
    batch_generators,
    modelled,
    tokens,
)
from .rows import RowSampler
from .sessions import LoadedSessions, SessionData, SessionSampler, SessionShape


class JointSessionShape(SessionShape):
    """Sessions in one network of a SessionModel method."""

    name = "joint_sessions"
    ends = False  # its network draws a session's steps together, gaps with them

    def claims(self, method: str, options: TrainOptions) -> bool:
        joint = issubclass(METHODS.get(method, object), SessionModel)
        return options.session_key is not None and joint

    def owns(self, record: ModelRecord) -> bool:
        spec = record.statistics.get("sessions")
        return spec is not None and "step_model" not in spec

    def parts(self, data: SessionData, method: str) -> list[TrainingPart]:
        """One network; the length comes from its generation flags, so the session's LENGTH
        column is not one of its attributes."""
        attributes = [e for e in modelled(data.session_encoders) if e.name != LENGTH]
        steps = modelled(data.step_encoders)
        session_index, step_tokens = data.session_index, data.step_tokens
        lengths = np.bincount(session_index, minlength=data.session_table.num_rows)
        names = [e.name for e in steps]
        if DELTA in names:
            step_tokens = first_gap_filled(step_tokens, names.index(DELTA), session_index)
        padded = np.zeros((len(lengths), int(lengths.max()), len(steps)), dtype=np.int64)
        padded[session_index, data.step_index] = step_tokens
        model = METHODS[method].create(
            [e.n_tokens for e in attributes],
            [e.n_tokens for e in steps],
            int(lengths.max()),
            [e.token_spans() for e in attributes],
            [e.token_spans() for e in steps],
        )
        data = (tokens(attributes, data.session_table), padded, lengths)
        return [TrainingPart("", model, data, time_share=1.0)]

    def stored(self, plan: TrainingPlan, params: dict[str, dict]) -> dict:
        return {"sessions": dict(plan.stored["sessions"])}

    def load(self, record: ModelRecord) -> LoadedSessions:
        return self.load_sessions(record)

    def sampler(
        self, loaded: Loaded, options: GenerateOptions, compiled: CompiledFilter, seed: int
    ) -> RowSampler:
        return JointSessionSampler(loaded, options, compiled, seed)


def first_gap_filled(tokens: np.ndarray, column: int, session_index: np.ndarray) -> np.ndarray:
    """A first step has no gap (NULL, which assembling ignores); it takes its session's next
    gap (or the most common one), so a network drawing all steps at once never learns NULL
    gaps, which would repeat a timestamp."""
    tokens = tokens.copy()
    first = np.r_[True, session_index[1:] != session_index[:-1]]
    later = tokens[~first, column]
    common = np.bincount(later).argmax() if len(later) else 0
    following = np.flatnonzero(first) + 1
    has_next = following < len(tokens)
    has_next[has_next] &= ~first[following[has_next]]
    fill = np.full(int(first.sum()), common)
    fill[has_next] = tokens[following[has_next], column]
    tokens[first, column] = fill
    return tokens


class JointSessionSampler(SessionSampler):
    """Whole sessions from one network (timegan): it draws a session's attributes (metadata,
    start), its length and its steps together; keys, filters and targets as SessionSampler."""

    def sample_tokens(self, n: int, conditions: Conditions, generator: torch.Generator):
        """Session tokens as the session encoders read them (LENGTH from the generated
        lengths); the steps wait in ``self.drawn_steps`` for draw()."""
        names = [self.loaded.encoders[i].name for i in self.loaded.modelled]
        length = names.index(LENGTH) if LENGTH in names else None

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
        if DELTA in names:
            k = names.index(DELTA)
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
