"""What the GAN methods share: token columns as the vectors a GAN learns, and WGAN-GP pieces.

A GAN needs continuous inputs, and multi-modal numbers are hard for it; CTGAN's answer is
**mode-specific normalization**: a variational Gaussian mixture is fitted to a numeric column,
and a value becomes (the mode it was drawn from, one-hot; its offset within that mode, scaled to
[-1, 1]). Here values come from tokens: an ordered column's token is spread uniformly over its
span (Encoder.token_spans), and a generated value goes back to the token whose value is nearest.
Columns with few values, and unordered ones, are one-hot over their tokens.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import SampleConfig, sample_logits

CONTINUOUS_FROM = 16  # an ordered column with more non-NULL tokens than this is a number
MAX_MODES = 10
MODE_WEIGHT_FLOOR = 0.005  # mixture components lighter than this are dropped (as CTGAN)
MIXTURE_SAMPLE = 5_000  # values the mixture is fitted on: enough for its modes, and fast
GUMBEL_TAU = 0.2
GP_WEIGHT = 10.0
REDRAWS = 20


@dataclass
class Piece:
    """A run of the data vector: ``width`` values under one activation ('tanh' or 'softmax')."""

    start: int
    width: int
    activation: str


class TokenColumn:
    """One column's GAN representation (see the module docstring); JSON-able via ``params``."""

    def __init__(self, vocab: int, spans=None, modes=None, scale=None, has_null: bool = True):
        self.vocab = vocab
        self.spans = None if spans is None else np.asarray(spans, dtype=np.float64)
        self.modes = None if modes is None else np.asarray(modes, dtype=np.float64)  # k x 3
        self.scale = scale  # (center, spread): values are standardised before the mixture
        self.has_null = has_null

    @property
    def continuous(self) -> bool:
        return self.modes is not None

    @property
    def width(self) -> int:
        if not self.continuous:
            return self.vocab
        return 1 + len(self.modes) + (2 if self.has_null else 0)

    def pieces(self, start: int) -> list[Piece]:
        if not self.continuous:
            return [Piece(start, self.vocab, "softmax")]
        pieces = [Piece(start, 1, "tanh"), Piece(start + 1, len(self.modes), "softmax")]
        if self.has_null:
            pieces.append(Piece(start + 1 + len(self.modes), 2, "softmax"))
        return pieces

    @classmethod
    def fit(cls, tokens: np.ndarray, vocab: int, spans, rng: np.random.Generator) -> TokenColumn:
        """A mixture over the column's values when it is ordered and many-valued."""
        spans = None if spans is None else np.asarray(spans, dtype=np.float64)
        if spans is None or vocab - 1 <= CONTINUOUS_FROM:
            return cls(vocab)
        column = cls(vocab, spans, modes=np.zeros((1, 3)), has_null=bool((tokens == 0).any()))
        present = tokens[tokens != 0]
        if len(present) == 0:
            return cls(vocab)
        values = column.dequantize(present, rng)
        center, spread = float(np.mean(values)), float(np.std(values)) or 1.0
        column.scale = (center, spread)
        z = (values - center) / spread
        if len(z) > MIXTURE_SAMPLE:
            z = rng.choice(z, MIXTURE_SAMPLE, replace=False)
        column.modes = _fit_modes(z, int(rng.integers(2**31)))
        return column

    def params(self) -> dict:
        return {
            "vocab": self.vocab,
            "spans": None if self.spans is None else np.nan_to_num(self.spans, nan=0.0).tolist(),
            "modes": None if self.modes is None else self.modes.tolist(),
            "scale": self.scale,
            "has_null": self.has_null,
        }

    # -- tokens <-> vectors ------------------------------------------------------------------------
    def dequantize(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        low, high = self.spans[tokens, 0], self.spans[tokens, 1]
        return low + rng.random(len(tokens)) * (high - low)

    def encode(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(tokens)
        if not self.continuous:
            out = np.zeros((n, self.vocab), dtype=np.float32)
            out[np.arange(n), tokens] = 1
            return out
        out = np.zeros((n, self.width), dtype=np.float32)
        present = tokens != 0
        z = np.zeros(n)
        z[present] = (self.dequantize(tokens[present], rng) - self.scale[0]) / self.scale[1]
        weights, means, stds = self.modes.T
        # the mode each value came from is drawn from its posterior, as CTGAN does
        log_p = np.log(weights) - np.log(stds) - 0.5 * ((z[:, None] - means) / stds) ** 2
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mode = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, len(means) - 1)
        alpha = np.clip((z - means[mode]) / (4 * stds[mode]), -0.99, 0.99)
        out[:, 0] = np.where(present, alpha, 0.0)
        out[np.arange(n), 1 + mode] = 1
        if self.has_null:
            out[np.arange(n), 1 + len(means) + present.astype(int)] = 1
        return out

    def decode(
        self,
        raw: torch.Tensor,
        config: SampleConfig,
        generator: torch.Generator,
        allowed: np.ndarray | None = None,
    ) -> np.ndarray:
        """Tokens from generator outputs (before activation); ``allowed`` masks the tokens."""
        if not self.continuous:
            return sample_logits(raw, config, generator, allowed).numpy()
        k = len(self.modes)
        mode = sample_logits(raw[:, 1 : 1 + k], config, generator, None).numpy()
        alpha = torch.tanh(raw[:, 0]).numpy().astype(np.float64)
        weights, means, stds = self.modes.T
        values = (alpha * 4 * stds[mode] + means[mode]) * self.scale[1] + self.scale[0]
        tokens = self.nearest(values, allowed)
        if self.has_null:
            null_allowed = None
            if allowed is not None:
                null_allowed = np.array([bool(allowed[0]), bool(allowed[1:].any())])
            is_null = sample_logits(raw[:, 1 + k :], config, generator, null_allowed).numpy() == 0
            tokens[is_null] = 0
        return tokens

    def nearest(self, values: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        """The non-NULL token (among ``allowed``) whose span is closest to each value."""
        candidates = np.arange(1, self.vocab)
        if allowed is not None:
            candidates = candidates[allowed[1:]]
        if len(candidates) == 0:
            return np.zeros(len(values), dtype=np.int64)
        low, high = self.spans[candidates, 0], self.spans[candidates, 1]
        centers = (low + high) / 2
        order = np.argsort(centers, kind="stable")
        centers, candidates = centers[order], candidates[order]
        right = np.clip(np.searchsorted(centers, values), 1, max(len(centers) - 1, 1))
        left = right - 1
        if len(centers) == 1:
            return np.full(len(values), candidates[0], dtype=np.int64)
        closer_left = np.abs(values - centers[left]) <= np.abs(values - centers[right])
        return np.where(closer_left, candidates[left], candidates[right]).astype(np.int64)


def fit_columns(tokens: np.ndarray, vocabs: list[int], spans: list, seed: int) -> list[TokenColumn]:
    """Every column's representation; the mixtures fitted on a thread each (numpy releases
    the GIL in their heavy steps), with a seeded generator per column."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> TokenColumn:
        rng = np.random.default_rng([seed, i])
        return TokenColumn.fit(tokens[..., i], vocabs[i], spans[i], rng)

    from sklearn.exceptions import ConvergenceWarning

    # warning filters are process-wide: set here, around every thread, not within one
    with warnings.catch_warnings(), ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        warnings.simplefilter("ignore", ConvergenceWarning)  # unconverged modes still serve
        return list(pool.map(one, range(len(vocabs))))


def _fit_modes(z: np.ndarray, seed: int) -> np.ndarray:
    """(weight, mean, std) of the mixture's active modes, by a variational Bayesian fit."""
    from sklearn.mixture import BayesianGaussianMixture  # imported here: slow, fit-time only

    distinct = len(np.unique(z[:1000]))
    mixture = BayesianGaussianMixture(
        n_components=max(1, min(MAX_MODES, distinct)),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.001,
        max_iter=100,
        random_state=seed,
    )
    mixture.fit(z.reshape(-1, 1))
    keep = mixture.weights_ > MODE_WEIGHT_FLOOR
    if not keep.any():
        keep[np.argmax(mixture.weights_)] = True
    weights = mixture.weights_[keep] / mixture.weights_[keep].sum()
    means = mixture.means_[keep, 0]
    stds = np.sqrt(mixture.covariances_[keep].reshape(-1)).clip(1e-3)
    return np.stack([weights, means, stds], axis=1)


def activate(raw: torch.Tensor, pieces: list[Piece]) -> torch.Tensor:
    """tanh or Gumbel-softmax per piece; the Gumbel noise drawn once for the whole vector."""
    if not pieces:
        return raw
    gumbel = -torch.empty_like(raw).exponential_().log()
    noisy = (raw + gumbel) / GUMBEL_TAU
    parts = []
    for piece in pieces:
        end = piece.start + piece.width
        if piece.activation == "tanh":
            parts.append(torch.tanh(raw[..., piece.start : end]))
        else:
            parts.append(torch.softmax(noisy[..., piece.start : end], dim=-1))
    return torch.cat(parts, dim=-1)


class Layout:
    """The columns of a row, end to end."""

    def __init__(self, columns: list[TokenColumn]):
        self.columns = columns
        self.starts = np.cumsum([0] + [c.width for c in columns])[:-1].tolist()
        self.pieces = [p for c, s in zip(columns, self.starts, strict=True) for p in c.pieces(s)]
        self.width = int(sum(c.width for c in columns))

    def encode(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.columns:
            return np.zeros((len(tokens), 0), dtype=np.float32)
        return np.concatenate(
            [c.encode(tokens[:, i], rng) for i, c in enumerate(self.columns)], axis=1
        )

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Generator outputs as data vectors: tanh offsets, Gumbel-softmax one-hots."""
        return activate(raw, self.pieces)

    def decode(
        self,
        raw: torch.Tensor,
        config: SampleConfig,
        generator: torch.Generator,
        allowed: dict[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        allowed = allowed or {}
        tokens = np.zeros((len(raw), len(self.columns)), dtype=np.int64)
        for i, (column, start) in enumerate(zip(self.columns, self.starts, strict=True)):
            piece = raw[:, start : start + column.width]
            tokens[:, i] = column.decode(piece, config, generator, allowed.get(i))
        return tokens


class Residual(nn.Module):
    """CTGAN's generator block: its output is concatenated to its input."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(width, out), nn.BatchNorm1d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)


def critic(width: int, hidden: int, layers: int = 2, dropout: float = 0.5) -> nn.Sequential:
    """A WGAN critic: LeakyReLU (and dropout, as CTGAN), one unbounded score."""
    parts, inner = [], width
    for _ in range(layers):
        parts += [nn.Linear(inner, hidden), nn.LeakyReLU(0.2)]
        parts += [nn.Dropout(dropout)] if dropout else []
        inner = hidden
    return nn.Sequential(*parts, nn.Linear(inner, 1))


def gradient_penalty(critic_fn, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (|grad| - 1)^2 at random points between real and fake rows (per pack)."""
    mix = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    points = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic_fn(points).sum(), points, create_graph=True)
    return GP_WEIGHT * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def adam(parameters, lr: float = 2e-4) -> torch.optim.Adam:
    """The optimiser both CTGAN and DoppelGANger use for WGAN-GP."""
    return torch.optim.Adam(parameters, lr=lr, betas=(0.5, 0.9), weight_decay=1e-6)


def satisfied(tokens: np.ndarray, fixed: dict, allowed: dict) -> np.ndarray:
    """Rows holding every given value and only allowed tokens."""
    ok = np.ones(len(tokens), dtype=bool)
    for c, values in fixed.items():
        ok &= tokens[:, c] == values
    for c, mask in allowed.items():
        if c not in fixed:
            ok &= mask[tokens[:, c]]
    return ok


def redraw_until_satisfied(n: int, draw, project, fixed: dict, allowed: dict) -> np.ndarray:
    """``n`` rows of tokens from ``draw(rows)`` (``rows``: which of the n); rows breaking a
    given value or an allowed set are drawn again, up to REDRAWS times, so they follow the
    model's conditional; what still breaks one comes from ``project(rows, allowed)`` (sampling
    restricted to the allowed tokens) with the given values set."""
    everything = np.arange(n)
    tokens = draw(everything)
    for _ in range(REDRAWS):
        broken = np.flatnonzero(~satisfied(tokens, fixed, allowed))
        if len(broken) == 0:
            return tokens
        tokens[broken] = draw(broken)
    broken = np.flatnonzero(~satisfied(tokens, fixed, allowed))
    if len(broken):
        tokens[broken] = project(broken, allowed)
        for c, values in fixed.items():
            tokens[:, c] = values
    return tokens
