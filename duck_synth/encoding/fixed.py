"""Columns the model does not learn: constants and unique keys.

A constant column (one protected value, no NULLs) is emitted as is. A unique key is regenerated
fresh (never copied): integers count up from 1, strings are random hex of the typical length.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import Encoder, Protection, Restriction
from .datetime import arrow_type_for
from .numeric import is_integer_type


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
        if self.stats["value"] is None:
            # typed NULLs, not arrow's null type: a batch that went through the residual filter
            # comes back typed (e.g. int32) and must cast to the first batch's schema; every
            # DuckDB type casts to and from a string
            return pa.nulls(len(tokens), pa.string())
        return pa.array([self.stats["value"]] * len(tokens))

    def restrict(self, op, value) -> Restriction | None:
        constant = self.stats["value"]
        if op in ("is_null", "is_not_null"):
            ok = (constant is None) == (op == "is_null")
        elif op in ("eq", "in"):
            same = [self._equals(v) for v in (value if op == "in" else [value])]
            if True not in same and None in same:
                return None  # a value of another kind: only the residual filter can tell
            ok = True in same
        elif op in ("ne", "not_in"):  # NULL <> x is NULL: a NULL constant satisfies neither
            same = [self._equals(v) for v in (value if op == "not_in" else [value])]
            if None in same and constant is not None:
                return None
            ok = constant is not None and True not in same
        else:
            return None
        return Restriction(allowed=np.array([ok]))

    def _equals(self, value) -> bool | None:
        """Whether ``value`` equals the constant as DuckDB compares them in the column's type
        (None: cannot tell here). NULL equals nothing."""
        constant = self.stats["value"]
        if constant is None:
            return False
        if isinstance(constant, bool):
            if isinstance(value, str):
                value = {"true": True, "false": False}.get(value.lower(), value)
            return value == constant if isinstance(value, bool) else None
        if isinstance(constant, int | float):
            try:
                return float(value) == float(constant) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                return None
        if not isinstance(value, str):
            return None
        if self.duck_type in ("DATE", "TIME") or self.duck_type.startswith("TIMESTAMP"):
            try:  # the constant is kept as text: compare as values, not spellings
                kind = arrow_type_for(self.duck_type)
                return pa.scalar(value).cast(kind) == pa.scalar(constant).cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        return value == constant

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
        if is_integer_type(self.duck_type):
            return pa.array(np.arange(offset + 1, offset + 1 + n, dtype=np.int64))
        nbytes = (self.stats["length"] + 1) // 2
        raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
        hexes = [row.tobytes().hex()[: self.stats["length"]] for row in raw]
        return pa.array(hexes, type=pa.string())

    def arrow_type(self) -> pa.DataType:
        """What decode() emits (seed rows that give a key are cast to it)."""
        return pa.int64() if is_integer_type(self.duck_type) else pa.string()

    def summary(self) -> dict:
        return {"null_share": 0.0, "unique": True}
