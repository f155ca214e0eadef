"""Dates, timestamps (with or without time zone) and times.

They are modelled as integers (days, or microseconds since the epoch / midnight) with the
numeric encoder's protected range, points and bins, and turned back into their own type at the
training values' granularity (the numeric step: whole seconds, minutes or days stay so).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pyarrow as pa

from ..privacy import ColumnBudget, Grid
from .base import Encoder, Protection, Restriction
from .numeric import DECIMALS_SLACK, NumericEncoder


def arrow_type_for(duck_type: str) -> pa.DataType:
    if duck_type == "DATE":
        return pa.date32()
    if duck_type == "TIME":
        return pa.time64("us")
    if duck_type == "TIMESTAMP WITH TIME ZONE":
        return pa.timestamp("us", tz="UTC")
    return pa.timestamp("us")


YEAR_DAYS = 365.2425
HOUR_US = 3_600_000_000
# With differential privacy the step is chosen among these units (microseconds: a day, an hour,
# a minute, a second, a millisecond) from this share of the column's budget.
UNITS_US = (24 * HOUR_US, HOUR_US, 60_000_000, 1_000_000, 1_000)
STEP_EPSILON_SHARE = 0.1


def datetime_grid(arrow_type: pa.DataType) -> Grid:
    """The DP histogram's fixed scale (privacy.py) in the column's integer unit: years
    from 1800 to 2200 (cells of about six days at the fine level), or a day's hours for TIME."""
    if pa.types.is_time(arrow_type):
        return Grid(linear=True, unit=HOUR_US, low=0, high=24)
    unit = YEAR_DAYS if pa.types.is_date32(arrow_type) else YEAR_DAYS * 24 * HOUR_US
    return Grid(linear=True, unit=unit, low=-170, high=230)


class DatetimeEncoder(NumericEncoder):
    kind = "datetime"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> DatetimeEncoder:
        encoder = cls(name, duck_type, {})
        ints = encoder._to_int(values)
        present = ints[~np.isnan(ints)]
        grid = datetime_grid(encoder.arrow_type())
        budget = protection.budget
        if budget is None or pa.types.is_date32(encoder.arrow_type()):
            encoder.stats = cls.analyze(present, len(values), protection, "BIGINT", grid)
            return encoder
        rest = ColumnBudget(budget.epsilon * (1 - STEP_EPSILON_SHARE), budget.delta, budget.rng)
        stats = cls.analyze(present, len(values), replace(protection, budget=rest), "BIGINT", grid)
        units = UNITS_US[1:] if pa.types.is_time(encoder.arrow_type()) else UNITS_US
        step = private_step(present, budget, budget.epsilon * STEP_EPSILON_SHARE, units)
        encoder.stats = stats | {"step": step}
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


def private_step(x: np.ndarray, budget: ColumnBudget, epsilon: float, units) -> int:
    """The coarsest of ``units`` leaving a noisy count of at most 1% of the values off its grid
    (1: none). Each value counts in the total and once per unit: they share epsilon."""
    share = epsilon / (len(units) + 1)
    scale = max(len(x) + float(budget.laplace(1, share)[0]), 1.0)
    for unit in units:
        misses = np.count_nonzero(np.mod(x, unit) != 0)
        if misses + float(budget.laplace(1, share)[0]) <= DECIMALS_SLACK * scale:
            return int(unit)
    return 1


__all__ = ["DatetimeEncoder", "Encoder"]
