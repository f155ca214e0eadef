"""Differential privacy: one (epsilon, delta) budget per model, split between the statistics the
encoders learn from the data and the network's DP-SGD.

A share of epsilon (``statistics_share``, 30% by default) pays for everything the encoders read
from the data: per column, a noisy histogram (categories kept only when their noisy count clears
a threshold, which makes releasing category names from an open domain (epsilon, delta)-DP) or,
for numbers and dates, a two-level noisy histogram over a fixed, data-independent grid, from
which the range, the bins and the quantiles are read. Columns compose by basic composition.
The rest of epsilon pays for DP-SGD (Opacus: per-sample clipping, Gaussian noise, RDP
accounting, Poisson sampling). Statistics (pure epsilon plus the thresholds' delta share) and
DP-SGD (RDP converted at the remaining delta) add up to the model's (epsilon, delta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import SynthError

# of epsilon (and of delta) for the encoders' statistics: on SLID at epsilon 1, 0.1 / 0.3 / 0.5
# gave privbayes 0.88 / 0.95 / 0.95 overall and DP-SGD 0.87 / 0.89 (0.1 / 0.3); diamonds
# privbayes 0.86 / 0.87 / 0.87
STATISTICS_SHARE = 0.3
# Numbers are histogrammed as sign(x) * log1p(|x|): a fixed grid then covers every magnitude
# to 1e15 with a resolution relative to the value (level one: unit cells; level two: 64 each).
NUMERIC_BOUND = math.log1p(1e15)
FINE_CELLS = 64


@dataclass
class PrivacyBudget:
    """What train(epsilon => ..., delta => ...) asks for, and how it is split."""

    epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None  # None: calibrated so the planned steps spend the rest
    statistics_share: float = STATISTICS_SHARE

    @property
    def statistics_epsilon(self) -> float:
        return self.epsilon * self.statistics_share

    @property
    def statistics_delta(self) -> float:
        return self.delta * self.statistics_share

    @property
    def training_epsilon(self) -> float:
        return self.epsilon - self.statistics_epsilon

    @property
    def training_delta(self) -> float:
        return self.delta - self.statistics_delta


@dataclass
class ColumnBudget:
    """One column's share of the statistics budget (columns compose additively)."""

    epsilon: float
    delta: float
    rng: np.random.Generator

    def laplace(self, size, epsilon: float | None = None) -> np.ndarray:
        """Noise for counts (one row changes one count by one: sensitivity 1)."""
        return self.rng.laplace(0.0, 1.0 / (epsilon or self.epsilon), size)

    def threshold(self) -> float:
        """The noisy count a category seen in the data must clear to be released: with it, a
        category held by one row appears with probability at most delta."""
        return 1.0 + math.log(1.0 / (2.0 * self.delta)) / self.epsilon


def noisy_histogram(values: np.ndarray, low: float, high: float, budget: ColumnBudget) -> dict:
    """Counts of ``values`` over a grid fixed in advance on [low, high] in two levels (half the
    budget each): unit-width cells, then FINE_CELLS sub-cells of the cells whose noisy count
    clears a threshold (so empty space costs no noise; the noisiest cell when none does).
    The grid is public, so every cell is released noisy and the threshold is post-processing:
    pure epsilon, no delta; it is set so that an empty cell clears it with odds of 1 in 100
    over the whole grid (a stray cell far out would stretch the range).
    Returns the fine edges and their noisy counts (cumulated and made monotone by the caller)."""
    half = budget.epsilon / 2
    coarse_edges = np.arange(math.floor(low), math.ceil(high) + 1, dtype=np.float64)
    cells = len(coarse_edges) - 1
    coarse = np.histogram(values, coarse_edges)[0] + budget.laplace(cells, half)
    # P(Laplace(b) > t) = exp(-t / b) / 2 per cell: cells * that = 0.01 at t = b ln(50 cells)
    kept = np.flatnonzero(coarse > 1.0 + math.log(50 * max(cells, 1)) / half)
    if len(kept) == 0:
        kept = np.array([int(np.argmax(coarse))])
    edges = np.unique(
        np.concatenate(
            [np.linspace(coarse_edges[c], coarse_edges[c + 1], FINE_CELLS + 1) for c in kept]
        )
    )
    inside = np.isin(np.clip(np.searchsorted(coarse_edges, values, "right") - 1, 0, None), kept)
    fine = np.histogram(values[inside], edges)[0].astype(np.float64)
    # sub-cells between two kept cells that are not adjacent are a gap: counted (zero) too
    fine += budget.laplace(len(fine), half)
    return {"edges": edges, "counts": fine}


def quantiles_from_histogram(edges: np.ndarray, counts: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles of a noisy histogram: the cumulated counts made monotone, then interpolated."""
    cdf = np.maximum.accumulate(np.concatenate([[0.0], np.cumsum(counts)]))
    cdf = np.maximum(cdf, 0.0)
    total = cdf[-1]
    if total <= 0:
        return np.full(len(qs), (edges[0] + edges[-1]) / 2)
    return np.interp(qs * total, cdf, edges)


@dataclass
class Grid:
    """A data-independent scale for a column's histogram: ``linear`` (value / unit, within
    [low, high] units) or signed log1p (every magnitude to 1e15, resolution relative to the
    value). Level-one cells are one unit wide."""

    linear: bool = False
    unit: float = 1.0
    low: float = -NUMERIC_BOUND
    high: float = NUMERIC_BOUND

    def forward(self, x: np.ndarray) -> np.ndarray:
        t = x / self.unit if self.linear else np.sign(x) * np.log1p(np.abs(x))
        return np.clip(t, self.low, self.high)

    def backward(self, t: np.ndarray) -> np.ndarray:
        return t * self.unit if self.linear else np.sign(t) * np.expm1(np.abs(t))


def noise_multiplier_for(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    history: list[tuple[float, float, int]] | None = None,
) -> float:
    """The smallest DP-SGD noise multiplier (to 1%) with which ``steps`` more steps, after
    ``history``, spend at most epsilon by Opacus' RDP accountant."""
    history = list(history or [])
    if spent_epsilon(history, delta) >= epsilon:
        raise SynthError(f"train(): the budget epsilon={epsilon:.3g} is already spent")
    low, high = 0.1, 1.0
    while spent_epsilon(history + [(high, sample_rate, max(steps, 1))], delta) > epsilon:
        low, high = high, high * 2
        if high > 1e4:
            raise SynthError(f"train(): epsilon={epsilon:.3g} cannot be met with {steps} steps")
    while high / low > 1.01:
        middle = (low * high) ** 0.5
        over = spent_epsilon(history + [(middle, sample_rate, max(steps, 1))], delta) > epsilon
        low, high = (middle, high) if over else (low, middle)
    return high


def steps_within(
    epsilon: float, delta: float, noise_multiplier: float, sample_rate: float, limit: int
) -> int:
    """The most DP-SGD steps (at most ``limit``) that spend at most epsilon."""

    def fits(steps: int) -> bool:
        return spent_epsilon([(noise_multiplier, sample_rate, steps)], delta) <= epsilon

    if fits(limit):
        return limit
    low, high = 0, limit  # fits(low), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def spent_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon of DP-SGD steps (noise multiplier, sample rate, steps), by Opacus' RDP accountant."""
    import warnings

    from opacus.accountants import RDPAccountant

    if not history:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser bound
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta))
