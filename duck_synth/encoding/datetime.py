"""Dates, timestamps (with or without time zone) and times.

They are modelled as integers (days, or microseconds since the epoch / midnight) with the
numeric encoder's protected range, points and bins, and turned back into their own type.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from .base import Encoder, Protection, Restriction
from .numeric import NumericEncoder


def arrow_type_for(duck_type: str) -> pa.DataType:
    if duck_type == "DATE":
        return pa.date32()
    if duck_type == "TIME":
        return pa.time64("us")
    if duck_type == "TIMESTAMP WITH TIME ZONE":
        return pa.timestamp("us", tz="UTC")
    return pa.timestamp("us")


class DatetimeEncoder(NumericEncoder):
    kind = "datetime"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> DatetimeEncoder:
        encoder = cls(name, duck_type, {})
        ints = encoder._to_int(values)
        present = ints[~np.isnan(ints)]
        encoder.stats = cls.analyze(present, len(values), protection, "BIGINT")
        return encoder

    def _to_int(self, values: pa.Array) -> np.ndarray:
        width = pa.int32() if pa.types.is_date32(values.type) else pa.int64()
        ints = values.cast(self.arrow_type()).cast(width)
        return np.asarray(ints.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)

    def encode(self, values: pa.Array) -> np.ndarray:
        return self.encode_floats(self._to_int(values))

    def decode(self, tokens, rng, restriction: Restriction | None = None) -> pa.Array:
        return self._from_ints(self.decode_floats(tokens, rng, restriction))

    def _from_ints(self, x: np.ndarray) -> pa.Array:
        mask = np.isnan(x)
        ints = np.where(mask, 0, x).astype(np.int64)
        if pa.types.is_date32(self.arrow_type()):
            return pa.array(ints.astype(np.int32), mask=mask).cast(pa.date32())
        return pa.array(ints, mask=mask).cast(self.arrow_type())

    def to_number(self, value) -> float | None:
        if isinstance(value, dt.datetime | dt.date | dt.time):
            scalar = pa.scalar(value)
        elif isinstance(value, str):
            try:
                scalar = pa.scalar(value).cast(self.arrow_type())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        else:
            return None
        arr = pa.array([scalar.as_py()], type=self.arrow_type())
        return float(self._to_int(arr)[0])

    def arrow_type(self) -> pa.DataType:
        return arrow_type_for(self.duck_type)

    def summary(self) -> dict:
        bounds = self._from_ints(np.array([self.stats["low"], self.stats["high"]]))
        low, high = (str(v) for v in bounds.to_pylist())
        return {"null_share": self.stats["null_share"], "low": low, "high": high}


__all__ = ["DatetimeEncoder", "Encoder"]
