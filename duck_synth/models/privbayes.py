"""PrivBayes (Zhang et al., 2017): a Bayesian network learnt and filled in with differential
privacy (method ``privbayes``).

Structure: columns join the network one at a time; each step picks a (column, parents) pair
among the candidates (parents: up to ``n_parents`` columns already in the network; at most
``sample_parents`` parent sets sampled per column) by the exponential mechanism on mutual
information, with a share ``STRUCTURE_SHARE`` of epsilon split evenly over the steps. Only pairs
whose joint table is small enough for the noise (theta-usefulness) are candidates.
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

from .base import Conditions, FitConfig, GenerativeModel, Progress, SampleConfig

STRUCTURE_SHARE = 0.3  # of the training epsilon, as in the paper
THETA = 4.0  # theta-usefulness: expected rows per cell over the noise scale
MAX_CELLS = 1_000_000
SAMPLE_CHUNK = 16_384  # without DP, the largest joint table a column and its parents may have


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
    ):
        self.params = {
            "vocab_sizes": list(vocab_sizes),
            "n_parents": n_parents,
            "sample_parents": sample_parents,
            "order": list(order or []),
            "parents": [list(p) for p in (parents or [])],
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
        order, parents = self._structure(tokens, structure_eps, max_cells, rng)
        progress({"epoch": 1, "step": 1, "steps": 2, "elapsed": 0.0})
        tables = [np.zeros(0)] * d
        for c in range(d):
            cells = _joint_index(tokens, parents[c], sizes) * sizes[c] + tokens[:, c]
            width = _cells(parents[c], sizes)
            counts = np.bincount(cells, minlength=width * sizes[c]).astype(np.float64)
            if tables_eps:
                counts += rng.laplace(0.0, d / tables_eps, counts.shape)
            tables[c] = _normalised(np.clip(counts, 0, None).reshape(width, sizes[c]))
        self.params["order"], self.params["parents"] = order, parents
        self.tables = tables
        progress({"epoch": 1, "elapsed": 0.0, "epoch_done": True})
        spent = {"epsilon": epsilon, "delta": 0.0} if epsilon else {}
        return {
            "epochs": 1,
            "best_val_loss": None,
            "history": [],
            "stopped": "epochs",
            "network": [[c, parents[c]] for c in order],
            **({"privacy": spent | {"mechanism": "exponential + laplace"}} if epsilon else {}),
        }

    def _structure(self, tokens, epsilon, max_cells, rng) -> tuple[list[int], list[list[int]]]:
        sizes = self.params["vocab_sizes"]
        n, d = tokens.shape
        first = int(rng.integers(d))
        order, parents = [first], [[] for _ in range(d)]
        # the exponential mechanism's sensitivity of mutual information (nats), one row changed
        sensitivity = (math.log(n) / n + (n - 1) / n * math.log(n / (n - 1))) if n > 1 else 1.0
        step_eps = epsilon / max(d - 1, 1) if epsilon else None
        while len(order) < d:
            candidates = []
            for c in (c for c in range(d) if c not in order):
                for parent_set in self._parent_sets(order, c, max_cells, rng):
                    candidates.append((c, parent_set))
            scores = np.array([_mutual_information(tokens, c, p, sizes) for c, p in candidates])
            if step_eps:
                weights = step_eps * scores / (2 * sensitivity)
                weights = np.exp(weights - weights.max())
                pick = int(rng.choice(len(candidates), p=weights / weights.sum()))
            else:
                pick = int(np.argmax(scores))
            c, parent_set = candidates[pick]
            order.append(c)
            parents[c] = list(parent_set)
        return order, parents

    def _parent_sets(self, known: list[int], c: int, max_cells: float, rng) -> list[tuple]:
        """Parent sets for column c among ``known``: the largest size (up to n_parents) with a
        joint table that fits, sampled down to sample_parents."""
        sizes = self.params["vocab_sizes"]
        for k in range(min(self.params["n_parents"], len(known)), 0, -1):
            sets = [
                p
                for p in itertools.combinations(known, k)
                if sizes[c] * _cells(list(p), sizes) <= max_cells
            ]
            if sets:
                limit = self.params["sample_parents"]
                if limit and len(sets) > limit:
                    chosen = rng.choice(len(sets), limit, replace=False)
                    sets = [sets[i] for i in sorted(chosen)]
                return sets
        return [()]

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
            probs = self.tables[c][_joint_index(out, self.params["parents"][c], sizes)]
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


def _cells(parents: list[int], sizes: list[int]) -> int:
    return int(np.prod([sizes[p] for p in parents])) if parents else 1


def _joint_index(tokens: np.ndarray, parents: list[int], sizes: list[int]) -> np.ndarray:
    if not parents:
        return np.zeros(len(tokens), dtype=np.int64)
    return np.ravel_multi_index(tuple(tokens[:, p] for p in parents), [sizes[p] for p in parents])


def _mutual_information(tokens: np.ndarray, c: int, parents: tuple, sizes: list[int]) -> float:
    if not parents:
        return 0.0
    a = _joint_index(tokens, list(parents), sizes)
    width = _cells(list(parents), sizes)
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
