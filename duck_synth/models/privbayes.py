"""PrivBayes (Zhang et al., 2017): a Bayesian network learnt and filled in with differential
privacy (method ``privbayes``).

Structure: columns join the network one at a time; each step picks a (column, parents) pair
among the candidates (parents: 1 to ``n_parents`` columns already in the network; at most
``sample_parents`` parent sets sampled per column, PARENT_SETS when not given) by the exponential
mechanism on mutual information, with a share ``STRUCTURE_SHARE`` of epsilon split evenly over
the steps. A joint table must be small enough for the noise (theta-usefulness): parents whose
tokens would not fit are coarsened, adjacent tokens merged into fewer levels (numbers are
binned in order, so a coarse parent is a coarser bin), rather than left out.
Conditionals: each column's joint table with its parents is counted, Laplace noise added (the
rest of epsilon split evenly over the d tables; a row is in one cell of each), clipped at zero
and normalised. Without epsilon the same network is learnt without noise.

Sampling is ancestral, column by column in the network's order, vectorised over rows. A
condition on a column restricts that column's draw (exact for the first column, and for any
column the rows keep the condition; its ancestors are not re-weighted by it).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .. import caller
from .base import Conditions, FitConfig, GenerativeModel, Progress, SampleConfig

STRUCTURE_SHARE = 0.3  # of the training epsilon, as in the paper
THETA = 4.0  # theta-usefulness: expected rows per cell over the noise scale
MAX_CELLS = 1_000_000  # without DP, the largest joint table a column and its parents may have
SAMPLE_CHUNK = 16_384
PARENT_SETS = 64  # parent sets scored per column and step when sample_parents is not given


class PrivBayesModel(GenerativeModel):
    method = "privbayes"
    default_epochs = 1  # one pass: structure, then tables

    def __init__(
        self,
        vocab_sizes: list[int],
        positions: list | None = None,
        context: int = 0,
        n_parents: int = 3,
        sample_parents: int | None = None,
        order: list[int] | None = None,
        parents: list[list[int]] | None = None,
        levels: list[list[int]] | None = None,
    ):
        self.params = {
            "vocab_sizes": list(vocab_sizes),
            "n_parents": n_parents,
            "sample_parents": sample_parents,
            "order": list(order or []),
            "parents": [list(p) for p in (parents or [])],
            "levels": [list(g) for g in (levels or [])],  # each parent's levels (coarsened)
        }
        self.tables: list[np.ndarray] = []  # per column: (parent cells, column tokens)

    # -- learning --------------------------------------------------------------------------------
    def fit(self, tokens: np.ndarray, config: FitConfig, progress: Progress) -> dict:
        rng = np.random.default_rng(None if config.privacy is not None else config.seed)
        sizes = self.params["vocab_sizes"]
        n, d = tokens.shape
        epsilon = config.privacy.training_epsilon if config.privacy is not None else None
        structure_eps = epsilon * STRUCTURE_SHARE if epsilon else None
        tables_eps = epsilon - structure_eps if epsilon else None
        max_cells = (
            max(n * tables_eps / (d * THETA), 2.0) if tables_eps else min(MAX_CELLS, max(n, 2))
        )
        order, parents, levels = self._structure(tokens, structure_eps, max_cells, rng)
        progress({"epoch": 1, "step": 1, "steps": 2, "elapsed": 0.0, "done": 0.5})
        tables = [np.zeros(0)] * d
        for c in range(d):
            caller.check()
            cells = _joint_index(tokens, parents[c], levels[c], sizes) * sizes[c] + tokens[:, c]
            width = _cells(levels[c])
            counts = np.bincount(cells, minlength=width * sizes[c]).astype(np.float64)
            if tables_eps:
                counts += rng.laplace(0.0, d / tables_eps, counts.shape)
            tables[c] = _normalised(np.clip(counts, 0, None).reshape(width, sizes[c]))
        self.params["order"], self.params["parents"], self.params["levels"] = (
            order,
            parents,
            levels,
        )
        self.tables = tables
        progress({"epoch": 1, "elapsed": 0.0, "done": 1.0, "epoch_done": True})
        spent = {"epsilon": epsilon, "delta": 0.0} if epsilon else {}
        return {
            "epochs": 1,
            "best_val_loss": None,
            "history": [],
            "stopped": "epochs",
            "network": [[c, parents[c], levels[c]] for c in order],
            **({"privacy": spent | {"mechanism": "exponential + laplace"}} if epsilon else {}),
        }

    def _structure(self, tokens, epsilon, max_cells, rng) -> tuple[list, list, list]:
        sizes = self.params["vocab_sizes"]
        n, d = tokens.shape
        first = int(rng.integers(d))
        order, parents, levels = [first], [[] for _ in range(d)], [[] for _ in range(d)]
        # the exponential mechanism's sensitivity of mutual information (nats), one row changed
        sensitivity = (math.log(n) / n + (n - 1) / n * math.log(n / (n - 1))) if n > 1 else 1.0
        step_eps = epsilon / max(d - 1, 1) if epsilon else None
        while len(order) < d:
            caller.check()  # many columns: the search is long; a cancel stops it between them
            candidates = []
            for c in (c for c in range(d) if c not in order):
                for parent_set, parent_levels in self._parent_sets(order, c, max_cells, rng):
                    candidates.append((c, parent_set, parent_levels))
            scores = np.array(
                [_mutual_information(tokens, c, p, g, sizes) for c, p, g in candidates]
            )
            if step_eps:
                weights = step_eps * scores / (2 * sensitivity)
                weights = np.exp(weights - weights.max())
                pick = int(rng.choice(len(candidates), p=weights / weights.sum()))
            else:
                pick = int(np.argmax(scores))
            c, parent_set, parent_levels = candidates[pick]
            order.append(c)
            parents[c], levels[c] = list(parent_set), list(parent_levels)
        return order, parents, levels

    def _parent_sets(self, known: list[int], c: int, max_cells: float, rng) -> list[tuple]:
        """(parents, levels) for column c among ``known``: every set of 1 to n_parents columns
        whose joint table fits max_cells once coarsened (each parent at least 2 levels), sampled
        down to sample_parents (PARENT_SETS when not given)."""
        sizes = self.params["vocab_sizes"]
        sets = []
        for k in range(1, min(self.params["n_parents"], len(known)) + 1):
            for parent_set in itertools.combinations(known, k):
                parent_levels = _fitting_levels(
                    [sizes[p] for p in parent_set], max_cells / sizes[c]
                )
                if parent_levels is not None:
                    sets.append((parent_set, parent_levels))
        if not sets:
            return [((), ())]
        limit = self.params["sample_parents"] or PARENT_SETS
        if len(sets) > limit:
            chosen = rng.choice(len(sets), limit, replace=False)
            sets = [sets[i] for i in sorted(chosen)]
        return sets

    # -- sampling --------------------------------------------------------------------------------
    def sample(
        self, n: int, conditions: Conditions, config: SampleConfig, generator: torch.Generator
    ) -> np.ndarray:
        sizes = self.params["vocab_sizes"]
        out = np.zeros((n, len(sizes)), dtype=np.int64)
        for start in range(0, n, SAMPLE_CHUNK):  # bounds the (rows x tokens) tables in memory
            stop = min(start + SAMPLE_CHUNK, n)
            fixed = {c: np.asarray(v)[start:stop] for c, v in conditions.fixed.items()}
            part = Conditions(fixed=fixed, allowed=conditions.allowed, first=conditions.first)
            out[start:stop] = self._sample_chunk(stop - start, part, config, generator)
        return out

    def _sample_chunk(
        self, n: int, conditions: Conditions, config: SampleConfig, generator: torch.Generator
    ) -> np.ndarray:
        sizes = self.params["vocab_sizes"]
        out = np.zeros((n, len(sizes)), dtype=np.int64)
        for c in self.params["order"]:
            if c in conditions.fixed:
                out[:, c] = np.asarray(conditions.fixed[c], dtype=np.int64)
                continue
            parents, levels = self.params["parents"][c], self._levels(c)
            probs = self.tables[c][_joint_index(out, parents, levels, sizes)]
            if config.temperature != 1.0:
                probs = probs ** (1.0 / max(config.temperature, 1e-6))
            allowed = conditions.allowed.get(c)
            if allowed is not None:
                probs = probs * np.asarray(allowed, dtype=np.float64)
                empty = probs.sum(axis=1) == 0  # the condition beats the table: uniform on it
                probs[empty] = np.asarray(allowed, dtype=np.float64)
            if config.top_p < 1.0:
                probs = _nucleus(probs, config.top_p)
            cdf = np.cumsum(probs, axis=1)
            u = torch.rand(n, generator=generator, dtype=torch.float64).numpy() * cdf[:, -1]
            out[:, c] = np.minimum((cdf < u[:, None]).sum(axis=1), sizes[c] - 1)
        return out

    def _levels(self, c: int) -> list[int]:
        levels = self.params["levels"]
        if c < len(levels):
            return levels[c]
        return [self.params["vocab_sizes"][p] for p in self.params["parents"][c]]

    # -- storage -----------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {
            f"table.{c}": torch.from_numpy(t.astype(np.float32)) for c, t in enumerate(self.tables)
        }
        return dict(self.params), tensors

    @classmethod
    def restore(cls, params: dict, tensors: dict[str, torch.Tensor]) -> PrivBayesModel:
        model = cls(**params)
        model.tables = [
            tensors[f"table.{c}"].double().numpy() for c in range(len(params["vocab_sizes"]))
        ]
        return model


def _cells(levels) -> int:
    return int(np.prod(levels)) if len(levels) else 1


def _fitting_levels(parent_sizes: list[int], room: float) -> tuple[int, ...] | None:
    """Levels per parent with a product at most ``room``: the smallest parents first keep what
    they can, the rest share what remains evenly; None when a parent would get under 2."""
    levels = [0] * len(parent_sizes)
    for rank, i in enumerate(sorted(range(len(parent_sizes)), key=lambda i: parent_sizes[i])):
        share = int(room ** (1.0 / (len(parent_sizes) - rank)) + 1e-9)
        levels[i] = min(parent_sizes[i], share)
        if levels[i] < 2:
            return None
        room /= levels[i]
    return tuple(levels)


def _joint_index(
    tokens: np.ndarray, parents: list[int], levels: list[int], sizes: list[int]
) -> np.ndarray:
    """Each row's cell among its parents' (coarsened) values: token * levels // size merges
    adjacent tokens evenly."""
    if not len(parents):
        return np.zeros(len(tokens), dtype=np.int64)
    coarse = tuple(tokens[:, p] * g // sizes[p] for p, g in zip(parents, levels, strict=True))
    return np.ravel_multi_index(coarse, list(levels))


def _mutual_information(
    tokens: np.ndarray, c: int, parents: tuple, levels: tuple, sizes: list[int]
) -> float:
    if not parents:
        return 0.0
    a = _joint_index(tokens, list(parents), list(levels), sizes)
    width = _cells(levels)
    joint = np.bincount(a * sizes[c] + tokens[:, c], minlength=width * sizes[c]).reshape(
        width, sizes[c]
    ) / len(tokens)
    pa, pc = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pc)[nz])).sum())


def _normalised(counts: np.ndarray) -> np.ndarray:
    """Rows of counts as distributions; a row with no mass becomes the column's marginal (or
    uniform), so a parent combination the noise emptied still samples sensibly."""
    totals = counts.sum(axis=1, keepdims=True)
    marginal = counts.sum(axis=0)
    fallback = (
        marginal / marginal.sum()
        if marginal.sum() > 0
        else np.full(counts.shape[1], 1.0 / counts.shape[1])
    )
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), fallback)


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    order = np.argsort(-probs, axis=1)
    sorted_p = np.take_along_axis(probs, order, axis=1)
    total = sorted_p.sum(axis=1, keepdims=True)
    keep = (np.cumsum(sorted_p, axis=1) - sorted_p) < top_p * total
    out = np.zeros_like(probs)
    np.put_along_axis(out, order, sorted_p * keep, axis=1)
    return out
