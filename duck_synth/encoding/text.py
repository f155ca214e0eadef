"""Free-text columns (kind ``text``): the main network learns only NULL and a length bucket;
a character model of its own (models/text.py) writes the text given the row's other columns.

Tokens: 0 NULL, 1.. length buckets (quantiles of the lengths). The longest length kept is the
k-th longest, so no single row's length is stored; longer texts are cut to it for training.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import NULL_TOKEN, Encoder, Protection, Restriction

LENGTH_BUCKETS = 8
MAX_MODELLED_LENGTH = 400  # characters a text model writes at most (longer texts are cut)
MIN_TEXT_ROWS = 50  # fewer rows teach a character model nothing: such a column stays categorical
TEXT_DISTINCT_SHARE = 0.5  # mostly distinct values...
TEXT_SPACED_SHARE = 0.5  # ...most of them several words
LONG_TEXT = 100  # or long on average (mean characters)


def looks_like_text(rows: int, distinct: int, mean_length: float, spaced_share: float) -> bool:
    """Whether a VARCHAR column of ``rows`` non-NULL values is free text: mostly distinct values
    that are sentences (words with spaces) or long. Names of things (titles, comments) are;
    codes, ids and categories are not."""
    if rows < MIN_TEXT_ROWS or distinct <= TEXT_DISTINCT_SHARE * rows:
        return False
    return mean_length > LONG_TEXT or (spaced_share >= TEXT_SPACED_SHARE and mean_length >= 8)


def text_shape(values: pa.Array) -> tuple[int, int, float, float]:
    """(non-NULL values, distinct ones, mean length, share containing whitespace)."""
    present = values.drop_null()
    if len(present) == 0:
        return 0, 0, 0.0, 0.0
    spaced = pc.match_substring_regex(present, r"\s")
    return (
        len(present),
        len(pc.unique(present)),
        pc.mean(pc.utf8_length(present)).as_py(),
        pc.mean(spaced.cast(pa.float64())).as_py(),
    )


class TextEncoder(Encoder):
    kind = "text"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> TextEncoder:
        present = values.drop_null()
        lengths = np.sort(np.asarray(pc.utf8_length(present).to_numpy(zero_copy_only=False)))
        k = protection.threshold()
        longest = int(lengths[-min(k, len(lengths))]) if len(lengths) else 1
        longest = max(1, min(longest, MAX_MODELLED_LENGTH))
        cut = np.minimum(lengths, longest)
        quantiles = (
            np.quantile(cut, np.arange(1, LENGTH_BUCKETS) / LENGTH_BUCKETS) if len(cut) else []
        )
        edges = sorted({int(round(q)) for q in quantiles})
        stats = {
            "null_share": values.null_count / len(values) if len(values) else 0.0,
            "edges": edges,  # bucket b holds lengths in [edges[b-1], edges[b])
            "max_length": longest,
            "mean_length": float(cut.mean()) if len(cut) else 0.0,
        }
        return cls(name, duck_type, stats)

    @property
    def max_length(self) -> int:
        return int(self.stats["max_length"])

    @property
    def n_tokens(self) -> int:
        return 2 + len(self.stats["edges"])

    def token_positions(self) -> np.ndarray | None:
        buckets = self.n_tokens - 1
        positions = np.full(self.n_tokens, np.nan)
        positions[1:] = np.linspace(-1, 1, buckets) if buckets > 1 else 0.0
        return positions

    def encode(self, values: pa.Array) -> np.ndarray:
        lengths = pc.utf8_length(values).fill_null(0).to_numpy(zero_copy_only=False)
        tokens = 1 + np.searchsorted(np.asarray(self.stats["edges"]), lengths, side="right")
        tokens[np.asarray(values.is_null().to_numpy(zero_copy_only=False))] = NULL_TOKEN
        return tokens.astype(np.int64)

    def decode(self, tokens, rng, restriction: Restriction | None = None) -> pa.Array:
        """Only which rows are NULL: the column's text model writes the others
        (shapes/text.py)."""
        return pa.nulls(len(tokens), pa.string())

    def restrict(self, op: str, value) -> Restriction | None:
        # IS [NOT] NULL is the main network's; any other predicate reads the written text
        return self.null_restriction(op)

    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def summary(self) -> dict:
        return {
            "null_share": self.stats["null_share"],
            "mean_length": round(self.stats["mean_length"], 1),
            "max_length": self.max_length,
        }
