"""Numeric columns: integers, floats and decimals.

Values are clipped to a protected range (the k-th smallest and k-th largest value), so extremes
are never emitted. Frequent exact values become "point" tokens (decoded exactly); the rest falls
into quantile bins decoded uniformly within the bin and rounded to the column's precision, so
integers stay integers, decimals keep the places the data has (at most the type's scale) and
integers keep their common step (``stats["step"]``: whole seconds in microseconds stay whole
seconds; a model without it has none). Tokens: 0 NULL, 1.. points, then bins.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..privacy import ColumnBudget, Grid, noisy_histogram, quantiles_from_histogram
from .base import NULL_TOKEN, Encoder, Protection, Restriction, pooled_share

MAX_DECIMALS = 6
# integers up to this are exact in float64: a common divisor of larger ones would be an artefact
EXACT_INTEGERS = 2**53


def _decimals_of(values: np.ndarray) -> int:
    """Smallest number of decimals that represents every value (capped)."""
    sample = values[:100_000]
    for d in range(MAX_DECIMALS + 1):
        if np.allclose(np.round(sample, d), sample, rtol=0, atol=10 ** -(d + 3)):
            return d
    return MAX_DECIMALS


def _step_of(values: np.ndarray) -> int:
    """The largest integer every value is a multiple of (1 when none): the grid integers were
    recorded on, as whole seconds are in microseconds, kept when decoding."""
    if len(values) == 0 or np.abs(values).max() >= EXACT_INTEGERS:
        return 1
    step = int(np.gcd.reduce(np.abs(values).astype(np.int64)))
    return max(step, 1)


class NumericEncoder(Encoder):
    kind = "numeric"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> NumericEncoder:
        stats = cls.analyze(values_to_float(values), len(values), protection, duck_type)
        return cls(name, duck_type, stats)

    @staticmethod
    def analyze(
        x: np.ndarray, n: int, protection: Protection, duck_type: str, grid: Grid | None = None
    ) -> dict:
        """Protected statistics of the non-null values ``x`` out of ``n`` rows (differentially
        private on ``grid`` when the protection has a budget)."""
        if protection.budget is not None:
            return private_statistics(x, n, protection, duck_type, grid or Grid())
        null_share = 1 - len(x) / n if n else 0.0
        integer = is_integer_type(duck_type) or (len(x) > 0 and bool(np.all(np.mod(x, 1) == 0)))
        # the data's own precision, within the type's scale (cents stay cents in a DECIMAL(9,4))
        scale = _scale_of(duck_type)
        decimals = 0 if integer else min(_decimals_of(x), MAX_DECIMALS if scale is None else scale)
        if len(x) == 0:
            return {
                "null_share": 1.0,
                "integer": integer,
                "decimals": decimals,
                "step": 1,
                "low": 0.0,
                "high": 0.0,
                "points": [],
                "edges": [],
            }
        xs = np.sort(x)
        k_low = min(protection.threshold(), len(xs))
        k_high = min(protection.threshold(), len(xs))
        low, high = float(xs[k_low - 1]), float(xs[len(xs) - k_high])
        if high < low:
            low = high = float(np.median(xs))
        xs = np.clip(xs, low, high)
        uniq, counts = np.unique(xs, return_counts=True)
        bins = protection.max_bins
        frequent = (counts >= max(len(xs) / (2 * bins), protection.rare_threshold)) & (
            counts >= protection.threshold()
        )
        points = uniq[frequent]
        rest = xs[~np.isin(xs, points)]
        if len(rest) > 1:
            cuts = np.linspace(0, 1, bins + 1)
            if protection.uniform_bins:
                edges = np.unique(rest.min() + cuts * (rest.max() - rest.min()))
            else:
                edges = np.unique(np.quantile(rest, cuts))
            if len(edges) == 1:
                edges = np.array([edges[0], edges[0]])
        else:
            edges = np.array([])
        return {
            "null_share": float(null_share),
            "integer": bool(integer),
            "decimals": int(decimals),
            "step": _step_of(x) if integer else 1,
            "low": low,
            "high": high,
            "points": points.tolist(),
            "point_counts": counts[frequent].tolist(),
            "edges": edges.tolist(),
            "quantiles": np.quantile(xs, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(),
        }

    def extended(self, values, protection: Protection, rows_before: int):
        """The protected range widens to the new rows' (the outer bins stretch to it), their
        frequent values join the points (a month 12 after months 1-11); precision and step
        cover both."""
        fresh, stats = (
            type(self).fit(self.name, self.duck_type, values, protection).stats,
            self.stats,
        )
        rows = len(values)
        grown = stats | {
            "null_share": pooled_share(stats["null_share"], rows_before, fresh["null_share"], rows)
        }
        if fresh["null_share"] >= 1.0:  # no value to learn a range from
            return type(self)(self.name, self.duck_type, grown), {}
        low, high = min(stats["low"], fresh["low"]), max(stats["high"], fresh["high"])
        edges = list(stats["edges"])
        if edges:
            edges[0], edges[-1] = min(edges[0], low), max(edges[-1], high)
        added = sorted(set(fresh["points"]) - set(stats["points"]))
        points = sorted(stats["points"] + added)
        before = dict(zip(stats["points"], stats.get("point_counts") or [], strict=False))
        now = dict(zip(fresh["points"], fresh["point_counts"], strict=True))
        grown |= {
            "low": low,
            "high": high,
            "points": points,
            "point_counts": [before.get(v, 0) + now.get(v, 0) for v in points],
            "edges": edges,
            "integer": stats["integer"] and fresh["integer"],
            "decimals": max(stats["decimals"], fresh["decimals"]),
            "step": math.gcd(stats.get("step", 1), fresh.get("step", 1)),
        }
        changes = {"added": added} if added else {}
        if (low, high) != (stats["low"], stats["high"]):
            changes["range"] = [[stats["low"], stats["high"]], [low, high]]
        return type(self)(self.name, self.duck_type, grown), changes

    def token_origin(self, before: Encoder) -> np.ndarray:
        """Each token's value (a point, a bin's middle) as ``before`` encoded it."""
        edges = self.edges
        middles = (edges[:-1] + edges[1:]) / 2 if self.n_bins else np.empty(0)
        return before.encode_floats(np.concatenate([[np.nan], self.points, middles]))

    # -- tokens ------------------------------------------------------------------------------------
    @property
    def points(self) -> np.ndarray:
        return np.asarray(self.stats["points"], dtype=np.float64)

    @property
    def edges(self) -> np.ndarray:
        return np.asarray(self.stats["edges"], dtype=np.float64)

    @property
    def n_bins(self) -> int:
        return max(len(self.stats["edges"]) - 1, 0)

    @property
    def n_tokens(self) -> int:
        return 1 + len(self.stats["points"]) + self.n_bins

    def token_positions(self) -> np.ndarray:
        """Points and bin middles ranked together: bins hold equal shares of the values, so a
        rank is close to the value's quantile."""
        edges = self.edges
        middles = (edges[:-1] + edges[1:]) / 2 if self.n_bins else np.empty(0)
        values = np.concatenate([self.points, middles])
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        places = 2 * ranks / max(len(values) - 1, 1) - 1
        return np.concatenate([[np.nan], places])

    def token_spans(self) -> np.ndarray:
        """Points are their value; a bin spans its edges (decoding draws uniformly within)."""
        edges = self.edges
        points = np.repeat(self.points[:, None], 2, axis=1)
        bins = np.stack([edges[:-1], edges[1:]], axis=1) if self.n_bins else np.empty((0, 2))
        return np.concatenate([np.full((1, 2), np.nan), points, bins])

    def encode(self, values: pa.Array) -> np.ndarray:
        return self.encode_floats(values_to_float(values, keep_nulls=True))

    def encode_floats(self, x: np.ndarray) -> np.ndarray:
        tokens = np.zeros(len(x), dtype=np.int64)
        present = ~np.isnan(x)
        v = np.clip(x[present], self.stats["low"], self.stats["high"])
        points, edges = self.points, self.edges
        out = np.full(len(v), -1, dtype=np.int64)
        if len(points):
            pos = np.clip(np.searchsorted(points, v), 0, len(points) - 1)
            hit = points[pos] == v
            out[hit] = 1 + pos[hit]
        if self.n_bins:
            miss = out < 0
            b = np.clip(np.searchsorted(edges, v[miss], side="right") - 1, 0, self.n_bins - 1)
            out[miss] = 1 + len(points) + b
        elif len(points):  # no bins: snap to the nearest point
            miss = out < 0
            nearest = np.abs(v[miss, None] - points[None, :]).argmin(axis=1)
            out[miss] = 1 + nearest
        tokens[present] = out
        return tokens

    def decode(self, tokens, rng, restriction: Restriction | None = None) -> pa.Array:
        return floats_to_arrow(self.decode_floats(tokens, rng, restriction), self)

    def decode_floats(self, tokens, rng, restriction: Restriction | None = None) -> np.ndarray:
        tokens = np.asarray(tokens)
        if restriction is not None and restriction.has_fixed:
            out = np.full(len(tokens), float(restriction.fixed))
            out[tokens == NULL_TOKEN] = np.nan
            return out
        out = np.full(len(tokens), np.nan)
        points, edges = self.points, self.edges
        is_point = (tokens >= 1) & (tokens <= len(points))
        out[is_point] = points[tokens[is_point] - 1]
        is_bin = tokens > len(points)
        if is_bin.any():
            b = tokens[is_bin] - 1 - len(points)
            lo, hi = edges[b], edges[b + 1]
            if restriction is not None:
                lo = np.maximum(lo, restriction.low) if restriction.low is not None else lo
                hi = np.minimum(hi, restriction.high) if restriction.high is not None else hi
                hi = np.maximum(hi, lo)
            out[is_bin] = lo + rng.random(len(b)) * (hi - lo)
        return self._round(out, restriction)

    def _round(self, x: np.ndarray, restriction: Restriction | None) -> np.ndarray:
        step = 10.0 ** -self.stats["decimals"]
        low, high = self.stats["low"], self.stats["high"]
        if restriction is not None:
            low = max(low, restriction.low) if restriction.low is not None else low
            high = min(high, restriction.high) if restriction.high is not None else high
        x = np.round(x, self.stats["decimals"])
        # integers keep the grid they were recorded on (models without "step" have none)
        grid = self.stats.get("step", 1)
        if grid > 1 and math.ceil(low / grid) <= math.floor(high / grid):
            return np.clip(
                np.round(x / grid) * grid,
                math.ceil(low / grid) * grid,
                math.floor(high / grid) * grid,
            )
        # rounding must not leave the protected (or requested) range
        return np.clip(
            x, math.ceil(low / step - 1e-9) * step, math.floor(high / step + 1e-9) * step
        )

    # -- conditions --------------------------------------------------------------------------------
    def restrict(self, op: str, value) -> Restriction | None:
        if (nulls := self.null_restriction(op)) is not None:
            return nulls
        allowed = np.zeros(self.n_tokens, dtype=bool)
        if op in ("eq", "in"):
            wanted = [self.to_number(v) for v in (value if op == "in" else [value])]
            for w in wanted:
                if w is not None and self.stats["low"] <= w <= self.stats["high"]:
                    allowed[self.encode_floats(np.array([w]))[0]] = True
            if op == "eq" and allowed.any():
                return Restriction(allowed=allowed, fixed=wanted[0], has_fixed=True)
            return Restriction(allowed=allowed)
        bound = self.to_number(value)
        if bound is None:
            return None
        step = 10.0 ** -self.stats["decimals"]
        low, high = {
            "gt": (bound + step, None) if self._on_grid(bound) else (bound, None),
            "ge": (bound, None),
            "lt": (None, bound - step) if self._on_grid(bound) else (None, bound),
            "le": (None, bound),
        }.get(op, (None, None))
        if low is None and high is None:
            return None
        lo = self.stats["low"] if low is None else low
        hi = self.stats["high"] if high is None else high
        points, edges = self.points, self.edges
        allowed[1 : 1 + len(points)] = (points >= lo) & (points <= hi)
        if self.n_bins:
            allowed[1 + len(points) :] = (edges[1:] >= lo) & (edges[:-1] <= hi)
        return Restriction(allowed=allowed, low=low, high=high)

    def _on_grid(self, value: float) -> bool:
        scaled = value * 10 ** self.stats["decimals"]
        return abs(scaled - round(scaled)) < 1e-9

    def to_number(self, value) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    def arrow_type(self) -> pa.DataType:
        return pa.int64() if self.stats["integer"] and self.stats["decimals"] == 0 else pa.float64()

    def summary(self) -> dict:
        return {
            "null_share": self.stats["null_share"],
            "low": self.stats["low"],
            "high": self.stats["high"],
            "quantiles": self.stats.get("quantiles"),
            "cardinality": len(self.stats["points"]) + self.n_bins,
        }


# DP: the share of rows that may need more decimals than the ones chosen, and the quantiles of
# the noisy histogram used as the range (instead of the k-th smallest and largest value).
DECIMALS_SLACK = 0.01
RANGE_QUANTILES = (0.001, 0.999)


def private_statistics(
    x: np.ndarray, n: int, protection: Protection, duck_type: str, grid: Grid
) -> dict:
    """The statistics of ``analyze`` through DP mechanisms: a noisy NULL count, a two-level
    noisy histogram on a fixed grid (its range, bins and quantiles), and for floats the decimals
    as the fewest that fit all but a noisy 1% of the rows. No exact value is kept ("points")."""
    budget, bins = protection.budget, protection.max_bins
    integer = is_integer_type(duck_type)
    scale = 0 if integer else _scale_of(duck_type)
    # NULL rows and present rows are disjoint: the NULL count costs nothing extra (parallel
    # composition); the histogram's two levels and the decimals share the column's epsilon.
    nulls = max(n - len(x) + float(budget.laplace(1)[0]), 0.0)
    histogram_eps = budget.epsilon if scale is not None else budget.epsilon * 0.75
    decimals = scale if scale is not None else _private_decimals(x, budget, budget.epsilon / 4)
    bounds = _type_range(duck_type)
    if bounds is not None:  # the type's own range is public: the grid stops there
        grid = Grid(
            grid.linear,
            grid.unit,
            max(grid.low, math.floor(grid.forward(np.array([bounds[0]]))[0])),
            min(grid.high, math.ceil(grid.forward(np.array([bounds[1]]))[0])),
        )
    t = grid.forward(x)
    histogram = noisy_histogram(
        t, grid.low, grid.high, ColumnBudget(histogram_eps, budget.delta, budget.rng)
    )
    edges_t, counts = histogram["edges"], histogram["counts"]  # never empty (privacy.py)
    present = max(float(counts.sum()), 0.0)
    null_share = nulls / (nulls + present) if nulls + present > 0 else 1.0
    stats = {
        "null_share": float(min(null_share, 1.0)),
        "integer": integer,
        "decimals": int(decimals),
    }
    qs = np.concatenate([RANGE_QUANTILES, np.linspace(*RANGE_QUANTILES, bins + 1)])
    qs = np.concatenate([qs, [0.05, 0.25, 0.5, 0.75, 0.95]])
    values = grid.backward(quantiles_from_histogram(edges_t, counts, qs))
    if bounds is not None:
        values = np.clip(values, *bounds)
    low, high = float(values[0]), float(max(values[1], values[0]))
    edges = values[2 : 3 + bins]
    if protection.uniform_bins:
        edges = low + np.linspace(0, 1, bins + 1) * (high - low)
    edges = np.unique(np.clip(edges, low, high))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    return stats | {
        "low": low,
        "high": high,
        "points": [],
        "point_counts": [],
        "edges": edges.tolist(),
        "quantiles": values[3 + bins :].tolist(),
    }


def _private_decimals(x: np.ndarray, budget: ColumnBudget, epsilon: float) -> int:
    """The fewest decimals (0..MAX_DECIMALS) leaving a noisy count of at most 1% of the rows
    unrepresented; each row counts in the total and once per candidate: they share epsilon."""
    share = epsilon / (MAX_DECIMALS + 2)
    scale = max(len(x) + float(budget.laplace(1, share)[0]), 1.0)
    for d in range(MAX_DECIMALS + 1):
        misses = np.count_nonzero(np.abs(np.round(x, d) - x) > 10 ** -(d + 3))
        if misses + float(budget.laplace(1, share)[0]) <= DECIMALS_SLACK * scale:
            return d
    return MAX_DECIMALS


def is_integer_type(duck_type: str) -> bool:
    return duck_type.rstrip() in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }


INTEGER_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1),
    "UINTEGER": (0, 2**32 - 1),
    "UBIGINT": (0, 2**63 - 1),
    "UHUGEINT": (0, 2**63 - 1),
}


def _type_range(duck_type: str) -> tuple[float, float] | None:
    """The values a column's type can hold, where narrower than any float (None otherwise)."""
    if duck_type.rstrip() in INTEGER_RANGES:
        return tuple(float(v) for v in INTEGER_RANGES[duck_type.rstrip()])
    if duck_type.startswith("DECIMAL("):
        width, scale = (int(v) for v in duck_type[len("DECIMAL(") : -1].split(","))
        limit = 10.0 ** (width - scale) - 10.0**-scale
        return (-limit, limit)
    return None


def _scale_of(duck_type: str) -> int | None:
    if duck_type.startswith("DECIMAL("):
        return int(duck_type[:-1].split(",")[1])
    return None


def values_to_float(values: pa.Array, keep_nulls: bool = False) -> np.ndarray:
    """Non-null values as float64 (or all values with NaN for NULL when ``keep_nulls``)."""
    x = values.cast(pa.float64())
    if keep_nulls:
        return np.asarray(x.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(x.drop_null().to_numpy(zero_copy_only=False), dtype=np.float64)


def floats_to_arrow(x: np.ndarray, encoder: NumericEncoder) -> pa.Array:
    mask = np.isnan(x)
    if encoder.arrow_type() == pa.int64():
        return pa.array(np.where(mask, 0, x).astype(np.int64), mask=mask)
    return pa.array(x, mask=mask)
