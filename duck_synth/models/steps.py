"""The steps of sessions as rows the autoregressive model learns.

Each step's measurements are predicted from a context that is always given: its session's tokens
(metadata, start, length), its place (steps so far and steps left, capped) and the previous
``LAGS`` steps' tokens (a padding token before the first step). Sampling runs step by step over
all sessions at once; the session's length comes from the session model, so the steps stop
exactly where the generated length says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import Conditions, GenerativeModel, SampleConfig

LAGS = 3
# lagged columns at most (a step of 1-3 columns sees 3 steps back, of 5 or more columns 1):
# plyr's baseball careers (22 columns a season) with 3 lags drew counts pulled towards zero
# (games median 39 vs 59 real, column shapes 0.90); with 1 lag, 61 and 0.97 (holdout 0.98)
MAX_LAGGED_COLUMNS = 9
PLACES = 32  # place tokens 0..31: steps so far / steps left, capped


def lags_for(width: int) -> int:
    """How many previous steps a step of ``width`` modelled columns is given."""
    return max(1, min(LAGS, MAX_LAGGED_COLUMNS // max(width, 1)))


@dataclass
class StepSpace:
    """The token layout of a step row: context columns first, then the step's own."""

    session_vocab: list[int]
    step_vocab: list[int]
    lags: int = LAGS

    @property
    def context(self) -> int:
        return len(self.session_vocab) + 2 + self.lags * len(self.step_vocab)

    def vocab_sizes(self) -> list[int]:
        lagged = [v + 1 for v in self.step_vocab] * self.lags  # + padding before the first step
        return self.session_vocab + [PLACES, PLACES] + lagged + self.step_vocab

    def positions(
        self, session: list[np.ndarray | None], step: list[np.ndarray | None]
    ) -> list[np.ndarray | None]:
        place = np.linspace(-1, 1, PLACES)
        lagged = [None if p is None else np.append(p, np.nan) for p in step] * self.lags
        return list(session) + [place, place] + lagged + list(step)

    def rows(
        self,
        session_tokens: np.ndarray,
        step_tokens: np.ndarray,
        session_index: np.ndarray,
        step_index: np.ndarray,
    ) -> np.ndarray:
        """Training rows (one per step; steps sorted by session, then step)."""
        lengths = np.bincount(session_index, minlength=len(session_tokens))
        left = lengths[session_index] - 1 - step_index
        parts = [session_tokens[session_index], _place(step_index)[:, None], _place(left)[:, None]]
        pad = np.asarray(self.step_vocab, dtype=np.int64)
        for lag in range(1, self.lags + 1):
            lagged = np.broadcast_to(pad, step_tokens.shape).copy()
            has = step_index >= lag
            lagged[has] = step_tokens[np.flatnonzero(has) - lag]
            parts.append(lagged)
        parts.append(step_tokens)
        return np.concatenate(parts, axis=1).astype(np.int64)

    def sample(
        self,
        model: GenerativeModel,
        session_tokens: np.ndarray,
        lengths: np.ndarray,
        allowed: dict[int, np.ndarray],
        config: SampleConfig,
        generator: torch.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(step tokens, session index, step index) for sessions of the given lengths, sorted by
        session then step. ``allowed``: per step column, the tokens it may take."""
        n_sessions, width = len(session_tokens), len(self.step_vocab)
        history = np.broadcast_to(
            np.asarray(self.step_vocab, dtype=np.int64), (n_sessions, self.lags, width)
        ).copy()
        tokens, sessions, places = [], [], []
        for t in range(int(lengths.max(initial=0))):
            active = np.flatnonzero(lengths > t)
            context = np.concatenate(
                [
                    session_tokens[active],
                    np.full((len(active), 1), min(t, PLACES - 1)),
                    _place(lengths[active] - 1 - t)[:, None],
                    history[active].reshape(len(active), -1),
                ],
                axis=1,
            )
            conditions = Conditions(
                fixed={c: context[:, c] for c in range(self.context)},
                allowed={self.context + c: mask for c, mask in allowed.items()},
            )
            drawn = model.sample(len(active), conditions, config, generator)[:, self.context :]
            history[active, 1:] = history[active, :-1]
            history[active, 0] = drawn
            tokens.append(drawn)
            sessions.append(active)
            places.append(np.full(len(active), t))
        if not tokens:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros((0, width), dtype=np.int64), empty, empty
        session_index, step_index = np.concatenate(sessions), np.concatenate(places)
        order = np.lexsort((step_index, session_index))
        return np.concatenate(tokens)[order], session_index[order], step_index[order]


def _place(values: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(values, dtype=np.int64), PLACES - 1)
