"""Columns the model does not learn: constants and unique keys.

A constant column (one protected value, no NULLs) is emitted as is. A unique key is regenerated
fresh (never copied): integers count up from 1, strings are random hex of the typical length.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import Encoder, Protection, Restriction
from .numeric import _is_integer_type


class ConstantEncoder(Encoder):
    kind = "constant"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> ConstantEncoder:
        distinct = pc.unique(values.drop_null())
        n = len(values) - values.null_count
        value = distinct[0].as_py() if len(distinct) == 1 and n >= protection.threshold() else None
        if value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        return cls(
            name, duck_type, {"value": value, "null_share": values.null_count / max(len(values), 1)}
        )

    def decode(self, tokens, rng, restriction: Restriction | None = None) -> pa.Array:
        return pa.array([self.stats["value"]] * len(tokens))

    def restrict(self, op, value) -> Restriction | None:
        ok = {"eq": value == self.stats["value"], "in": self.stats["value"] in (value or [])}
        ok.update(is_null=self.stats["value"] is None, is_not_null=self.stats["value"] is not None)
        if op in ok:
            return Restriction(allowed=np.array([bool(ok[op])]))
        return None

    def summary(self) -> dict:
        return {"null_share": self.stats["null_share"], "cardinality": 1}


class KeyEncoder(Encoder):
    kind = "key"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> KeyEncoder:
        lengths = pc.utf8_length(values.drop_null().cast(pa.string()))
        length = int(np.median(lengths.to_numpy())) if len(lengths) else 12
        if protection.budget is not None:  # under DP no length is read from the data
            length = 16
        return cls(name, duck_type, {"length": max(length, 8), "null_share": 0.0})

    def decode(
        self, tokens, rng, restriction: Restriction | None = None, offset: int = 0
    ) -> pa.Array:
        n = len(tokens)
        if _is_integer_type(self.duck_type):
            return pa.array(np.arange(offset + 1, offset + 1 + n, dtype=np.int64))
        nbytes = (self.stats["length"] + 1) // 2
        raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
        hexes = [row.tobytes().hex()[: self.stats["length"]] for row in raw]
        return pa.array(hexes, type=pa.string())

    def summary(self) -> dict:
        return {"null_share": 0.0, "unique": True}
