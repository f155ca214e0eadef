"""A CTGAN-style tabular GAN (method ``tabgan``).

The CTGAN design (Xu et al., 2019): numbers by mode-specific normalization (models/gan.py); a
**conditional vector** naming one value of one discrete column, with **training-by-sampling**
(the column drawn uniformly, its value by log-frequency, and the real rows the critic sees drawn
among those holding that value), so rare values are learned and the generator can be asked for
them; a generator of residual blocks; a critic judging **packs** of rows at once (PacGAN,
against mode collapse); the Wasserstein loss with gradient penalty.

Sampling honours Conditions: equality (or IN) on a discrete column sets the conditional vector,
the CTGAN way; rows breaking any other restriction are drawn again, and what still breaks one
after a few rounds is sampled restricted to the allowed tokens (gan.redraw_until_satisfied).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import (
    Conditions,
    FitConfig,
    GenerativeModel,
    Progress,
    SampleConfig,
)
from .gan import (
    Layout,
    Residual,
    TokenColumn,
    adam,
    critic,
    fit_columns,
    gradient_penalty,
    redraw_until_satisfied,
)
from .loop import Resumable, Step, TimeBudget, run_epochs

NOISE = 128
HIDDEN = (256, 256)
CRITIC_HIDDEN = 256
PAC = 10
BATCH = 500
SAMPLE_CHUNK = 50_000


class ConditionSampler:
    """Conditional vectors over the discrete columns, and real rows that match them."""

    def __init__(self, counts: list[np.ndarray], tokens: np.ndarray | None = None):
        """``counts``: per discrete column, how often each token occurs (or its share);
        ``tokens``: the training rows' discrete columns, to find real rows (training only)."""
        self.counts = [np.asarray(c, dtype=np.float64) for c in counts]
        vocabs = [len(c) for c in self.counts]
        self.vocabs = vocabs
        self.offsets = np.cumsum([0] + vocabs)[:-1].astype(np.int64)
        self.width = int(sum(vocabs))
        if tokens is not None:
            self.order = [np.argsort(tokens[:, j], kind="stable") for j in range(len(vocabs))]
            self.starts = [(np.cumsum(c) - c).astype(np.int64) for c in self.counts]

    def vector(self, columns: np.ndarray, values: np.ndarray) -> torch.Tensor:
        cond = np.zeros((len(columns), self.width), dtype=np.float32)
        cond[np.arange(len(columns)), self.offsets[columns] + values] = 1
        return torch.from_numpy(cond)

    def draw(self, n: int, rng: np.random.Generator, log_frequency: bool) -> tuple:
        """(column, value) pairs: a column uniformly, a value by (log-)frequency."""
        columns = rng.integers(len(self.vocabs), size=n)
        values = np.zeros(n, dtype=np.int64)
        for j, counts in enumerate(self.counts):
            rows = np.flatnonzero(columns == j)
            weights = np.log1p(counts) if log_frequency else counts
            weights = np.where(counts > 0, weights, 0.0)
            values[rows] = rng.choice(len(counts), size=len(rows), p=weights / weights.sum())
        return columns, values

    def real_rows(self, columns: np.ndarray, values: np.ndarray, rng) -> np.ndarray:
        rows = np.zeros(len(columns), dtype=np.int64)
        for j in range(len(self.vocabs)):
            at = np.flatnonzero(columns == j)
            counts, starts = self.counts[j][values[at]], self.starts[j][values[at]]
            rows[at] = self.order[j][starts + (rng.random(len(at)) * counts).astype(np.int64)]
        return rows

    def restricted(self, j: int, allowed: np.ndarray, n: int, rng) -> np.ndarray:
        """Values of column ``j`` among ``allowed``, by their frequency in the training data."""
        weights = np.where(allowed, self.counts[j], 0.0)
        if weights.sum() == 0:
            weights = allowed.astype(np.float64)
        return rng.choice(len(weights), size=n, p=weights / weights.sum())


class GeneratorNet(nn.Module):
    def __init__(self, inputs: int, hidden: tuple[int, ...], out: int):
        super().__init__()
        blocks, width = [], inputs
        for h in hidden:
            blocks.append(Residual(width, h))
            width += h
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x))


class TabGanModel(GenerativeModel):
    method = "tabgan"
    network_attribute, network_prefix = "generator", "generator."  # the critic is not kept
    default_epochs = 300  # CTGAN's

    def __init__(
        self,
        vocab_sizes: list[int],
        spans: list | None = None,
        columns: list[dict] | None = None,
        frequencies: list[list[float]] | None = None,
        pac: int = PAC,
    ):
        """``spans``: per column, Encoder.token_spans() (None for unordered columns).
        ``columns``, ``frequencies`` (each discrete column's token shares, what unconditional
        sampling draws conditional vectors from): fitted, given on restore only."""
        self.vocab_sizes = list(vocab_sizes)
        self.spans = spans or [None] * len(vocab_sizes)
        self.pac = pac
        if columns is None and not vocab_sizes:
            # every column constant: nothing to fit, an empty network to store
            columns, frequencies = [], []
        self.columns = None if columns is None else [TokenColumn(**c) for c in columns]
        self.frequencies = frequencies
        if self.columns is not None:
            self._build()

    def _build(self) -> None:
        self.layout = Layout(self.columns)
        self.discrete = [i for i, c in enumerate(self.columns) if not c.continuous]
        self.cond_width = int(sum(self.vocab_sizes[i] for i in self.discrete))
        self.generator = GeneratorNet(NOISE + self.cond_width, HIDDEN, self.layout.width)
        self.critic = critic((self.layout.width + self.cond_width) * self.pac, CRITIC_HIDDEN)

    # -- training ------------------------------------------------------------------------------
    def fit(self, tokens: np.ndarray, config: FitConfig, progress: Progress) -> dict:
        budget = TimeBudget(config.max_time)  # max_time counts the mixtures' fitting too
        rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        self.columns = fit_columns(tokens, self.vocab_sizes, self.spans, config.seed)
        if len(tokens) < 2 * PAC:
            self.pac = 1
        self._build()
        device = torch.device(config.device)
        data = torch.from_numpy(self.layout.encode(tokens, rng)).to(device)
        discrete = tokens[:, self.discrete]
        counts = [
            np.bincount(discrete[:, j], minlength=self.vocab_sizes[c])
            for j, c in enumerate(self.discrete)
        ]
        self.frequencies = [(c / max(len(tokens), 1)).tolist() for c in counts]
        sampler = ConditionSampler(counts, discrete)
        generator, critic_net = self.generator.to(device), self.critic.to(device)
        g_opt, d_opt = adam(generator.parameters()), adam(critic_net.parameters())
        batch = config.batch_size or BATCH
        batch = max(self.pac, min(batch, len(tokens)) // self.pac * self.pac)
        steps = max(1, len(tokens) // batch)

        def train_mode() -> None:
            generator.train()
            critic_net.train()

        def train_step(epoch: int) -> Step:
            cond, columns, values = self._training_conditions(sampler, batch, rng, device)
            raw = generator(self._inputs(cond, batch, device))
            fake = self.layout.activate(raw)
            # the critic: real rows holding the (shuffled) conditions against generated ones
            perm = rng.permutation(batch)
            real = data[sampler.real_rows(columns[perm], values[perm], rng)]
            real_in = self._packed(real, cond[perm])
            fake_in = self._packed(fake.detach(), cond)
            d_real, d_fake = critic_net(real_in).mean(), critic_net(fake_in).mean()
            penalty = gradient_penalty(critic_net, real_in, fake_in)
            d_opt.zero_grad(set_to_none=True)
            (d_fake - d_real + penalty).backward()
            d_opt.step()
            # the generator: fool the updated critic on the same rows (one generator pass per
            # step, where CTGAN makes two) and honour the conditional vector
            g_loss = -critic_net(self._packed(fake, cond)).mean()
            g_loss = g_loss + self._condition_loss(raw, columns, values, device)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            distance = float((d_real - d_fake).detach())
            return Step({"generator_loss": float(g_loss.detach()), "critic_distance": distance})

        resumable = Resumable(
            {"generator": generator, "critic": critic_net},
            {"generator": g_opt, "critic": d_opt},
            {"rows": rng},
        )
        fitted = run_epochs(
            config, budget, progress, steps, train_step,
            start_epoch=train_mode, resumable=resumable,
        )  # fmt: skip
        generator.to("cpu").eval()
        critic_net.to("cpu").eval()
        return fitted

    def _training_conditions(self, sampler, n, rng, device):
        if not self.discrete:
            empty = np.zeros(n, dtype=np.int64)
            return torch.zeros(n, 0, device=device), empty, empty
        columns, values = sampler.draw(n, rng, log_frequency=True)
        return sampler.vector(columns, values).to(device), columns, values

    def _inputs(self, cond: torch.Tensor, n: int, device, generator=None) -> torch.Tensor:
        noise = torch.randn(n, NOISE, generator=generator).to(device)
        return torch.cat([noise, cond], dim=1)

    def _packed(self, rows: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([rows, cond], dim=1).reshape(
            -1, (rows.shape[1] + cond.shape[1]) * self.pac
        )

    def _condition_loss(self, raw, columns, values, device) -> torch.Tensor:
        """Cross-entropy between the conditioned column's output and the asked value."""
        if not self.discrete:
            return torch.zeros((), device=device)
        loss = torch.zeros((), device=device)
        for j, column in enumerate(self.discrete):
            rows = np.flatnonzero(columns == j)
            if len(rows) == 0:
                continue
            start = self.layout.starts[column]
            logits = raw[rows, start : start + self.vocab_sizes[column]]
            target = torch.as_tensor(values[rows], device=device)
            loss = loss + nn.functional.cross_entropy(logits, target, reduction="sum")
        return loss / len(columns)

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, conditions: Conditions, config: SampleConfig, generator: torch.Generator
    ) -> np.ndarray:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        out = np.zeros((n, len(self.columns)), dtype=np.int64)
        for start in range(0, n, SAMPLE_CHUNK):
            stop = min(start + SAMPLE_CHUNK, n)
            out[start:stop] = self._sample_chunk(start, stop, conditions, config, generator, rng)
        return out

    def _sample_chunk(self, start, stop, conditions, config, generator, rng) -> np.ndarray:
        fixed = {c: np.asarray(v[start:stop]) for c, v in conditions.fixed.items()}
        cond = self._sampling_conditions(stop - start, fixed, conditions, rng)
        return redraw_until_satisfied(
            stop - start,
            lambda rows: self._draw(cond[rows], config, generator, None),
            lambda rows, allowed: self._draw(cond[rows], config, generator, allowed),
            fixed,
            conditions.allowed,
        )

    def _draw(self, cond, config, generator, allowed) -> np.ndarray:
        noise = torch.randn(len(cond), NOISE, generator=generator)
        return self.layout.decode(
            self.generator(torch.cat([noise, cond], 1)), config, generator, allowed
        )

    def _sampling_conditions(self, n, fixed, conditions, rng) -> torch.Tensor:
        """The conditional vector: a given discrete column's values, else the most selective
        restricted discrete column's (drawn by training frequency among the allowed values),
        else CTGAN's own: a random column's value by its frequency."""
        if not self.discrete:
            return torch.zeros(n, 0)
        sampler = ConditionSampler(self.frequencies)
        place = {column: j for j, column in enumerate(self.discrete)}
        given = [c for c in fixed if c in place]
        columns = np.zeros(n, dtype=np.int64)
        if given:
            columns[:] = place[given[0]]
            return sampler.vector(columns, fixed[given[0]])
        restricted = [c for c in conditions.first if c in place and c in conditions.allowed]
        if restricted:
            share = {c: self._share(c, conditions.allowed[c]) for c in restricted}
            c = min(restricted, key=share.get)
            columns[:] = place[c]
            return sampler.vector(
                columns, sampler.restricted(place[c], conditions.allowed[c], n, rng)
            )
        columns, values = sampler.draw(n, rng, log_frequency=False)
        return sampler.vector(columns, values)

    def _share(self, column: int, allowed: np.ndarray) -> float:
        return float(np.asarray(self.frequencies[self.discrete.index(column)])[allowed].sum())

    # -- storage ---------------------------------------------------------------------------------
    def hyper_parameters(self) -> dict:
        return {
            "vocab_sizes": self.vocab_sizes,
            "columns": [c.params() for c in self.columns],
            "frequencies": self.frequencies,
            "pac": self.pac,
        }
