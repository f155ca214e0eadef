"""The contract every column encoder keeps.

An encoder is built from a column's values (``fit``), serialises to JSON (``to_json``), turns
values into integer tokens (``encode``) and tokens back into values (``decode``). Token 0 is
always NULL, so NULL is a learned state of every column. Encoders with ``n_tokens == 0`` are not
modelled (constant columns, keys): they produce values on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..privacy import ColumnBudget

NULL_TOKEN = 0


@dataclass
class Protection:
    """Value protection: rare values and extremes are never emitted verbatim. With ``budget``
    (differential privacy) every statistic is read through a DP mechanism of that budget."""

    rare_threshold: int = 5
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    budget: ColumnBudget | None = None
    # how finely values are told apart: bins of a numeric column (equal shares, or equal widths
    # when ``uniform_bins``), kept categories of a categorical one
    max_bins: int = 100
    uniform_bins: bool = False
    max_categories: int = 2000  # the rest are rare

    def threshold(self) -> int:
        """k plus a small random jitter, so the cut-off itself is not an exact statistic."""
        return self.rare_threshold + int(self.rng.integers(0, 3))


@dataclass
class Restriction:
    """What a pushed-down predicate allows for one column.

    ``allowed``: boolean mask over tokens (None = all). ``low``/``high``: a closed numeric interval
    (in the encoder's numeric domain) that decoding must respect. ``fixed``: a value to emit as is
    (equality with a value the encoder can represent).
    """

    allowed: np.ndarray | None = None
    low: float | None = None
    high: float | None = None
    fixed: object = None
    has_fixed: bool = False

    def intersect(self, other: Restriction) -> Restriction:
        allowed = self.allowed
        if other.allowed is not None:
            allowed = other.allowed if allowed is None else allowed & other.allowed
        low = max((v for v in (self.low, other.low) if v is not None), default=None)
        high = min((v for v in (self.high, other.high) if v is not None), default=None)
        fixed, has_fixed = (other.fixed, True) if other.has_fixed else (self.fixed, self.has_fixed)
        return Restriction(allowed, low, high, fixed, has_fixed)


class Encoder:
    kind: str = ""

    def __init__(self, name: str, duck_type: str, stats: dict):
        self.name = name
        self.duck_type = duck_type
        self.stats = stats

    # -- construction and serialisation -------------------------------------------------------
    @classmethod
    def fit(cls, name: str, duck_type: str, values: pa.Array, protection: Protection) -> Encoder:
        raise NotImplementedError

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "type": self.duck_type, "stats": self.stats}

    def extended(
        self, values: pa.Array, protection: Protection, rows_before: int
    ) -> tuple[Encoder, dict]:
        """This encoder grown by new training values (a continued training, trained before on
        ``rows_before`` rows): (the encoder, what changed; empty when nothing did). Tokens keep
        their meaning (``token_origin``). This kind learns nothing more."""
        return self, {}

    def token_origin(self, before: Encoder) -> np.ndarray:
        """For each of this (extended) encoder's tokens, the token of the encoder ``before`` it
        was, or was drawn as before it existed (a new category: the rare token)."""
        return np.arange(self.n_tokens)

    # -- tokens ----------------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return 0

    def token_positions(self) -> np.ndarray | None:
        """Each token's place in the column's order, in [-1, 1] (NaN: NULL and other tokens
        outside the order); None for unordered columns."""
        return None

    def token_spans(self) -> np.ndarray | None:
        """Each token's interval of values (n_tokens x 2: low, high; NaN for NULL) in the
        encoder's numeric domain, for models that learn values rather than tokens; None for
        unordered columns."""
        return None

    def sampling_mask(self) -> np.ndarray | None:
        """Tokens the model may emit unconditionally (None: all): never NULL if none was seen."""
        if self.n_tokens == 0 or self.stats.get("null_share", 0.0) > 0:
            return None
        mask = np.ones(self.n_tokens, dtype=bool)
        mask[NULL_TOKEN] = False
        return mask

    def encode(self, values: pa.Array) -> np.ndarray:
        raise NotImplementedError

    def decode(
        self, tokens: np.ndarray, rng: np.random.Generator, restriction: Restriction | None = None
    ) -> pa.Array:
        raise NotImplementedError

    # -- conditions ------------------------------------------------------------------------------
    def restrict(self, op: str, value: object) -> Restriction | None:
        """Restriction for ``column <op> value``; None when the encoder cannot narrow sampling."""
        return None

    def null_restriction(self, op: str) -> Restriction | None:
        """``IS NULL`` / ``IS NOT NULL`` for token-based encoders (None for other operators)."""
        if op not in ("is_null", "is_not_null"):
            return None
        allowed = np.zeros(self.n_tokens, dtype=bool)
        if op == "is_null":
            allowed[NULL_TOKEN] = True
            return Restriction(allowed=allowed)
        allowed[NULL_TOKEN + 1 :] = True
        mask = self.sampling_mask()
        return Restriction(allowed=allowed if mask is None else allowed & mask)

    def arrow_type(self) -> pa.DataType:
        raise NotImplementedError

    def summary(self) -> dict:
        """Protected per-column facts shown by describe_model()."""
        return {"null_share": self.stats.get("null_share", 0.0)}


def pooled_share(before: float, rows_before: int, now: float, rows_now: int) -> float:
    """A share (NULLs, rare values) over the rows of both trainings."""
    return (before * rows_before + now * rows_now) / max(rows_before + rows_now, 1)
