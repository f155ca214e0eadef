"""A DoppelGANger-style session GAN (method ``timegan``).

The DoppelGANger design (Lin et al., 2020), on tokens (models/gan.py):

- an **attribute generator** (an MLP) draws a session's metadata (and start);
- a **min/max generator** draws, per numeric measurement, the session's own centre and spread
  (**auto-normalization**: the steps are learned scaled to [-1, 1] within their session, so
  sessions of very different levels are equally easy);
- a **feature generator**, an LSTM over the attributes, min/max and noise, emits ``batch_steps``
  steps per RNN step (**batched generation**), each with a **generation flag** (go on / stop):
  a session ends at its first stop, which gives variable lengths; steps after it are masked;
- a critic over the whole session and an **auxiliary critic over attributes and min/max**,
  both trained with the Wasserstein loss and gradient penalty.

What common implementations lack, **generation conditioned on given metadata**: half of each
generated training batch runs the min/max and feature generators on real sessions' attributes
(the critic judges those sessions too), so they learn to follow attributes they did not draw;
sampling then feeds given values (seed rows), or attributes drawn until they satisfy the
pushed-down predicates, to the same generators.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .base import (
    Conditions,
    FitConfig,
    Progress,
    SampleConfig,
    SessionModel,
    sample_logits,
)
from .gan import (
    CONTINUOUS_FROM,
    Layout,
    Piece,
    TokenColumn,
    activate,
    adam,
    critic,
    fit_columns,
    gradient_penalty,
    redraw_until_satisfied,
)
from .loop import Resumable, Step, TimeBudget, run_epochs

NOISE = 32
HIDDEN = 64
CRITIC_HIDDEN = 128
BATCH = 100
MAX_RNN_STEPS = 50  # longer sessions emit several steps per RNN step
AUX_WEIGHT = 1.0
LEARNING_RATE = 1e-3


class StepColumn:
    """A measurement at one step: one-hot over its tokens, or (many-valued ordered columns) a
    value in [-1, 1] relative to its session's min/max, plus a NULL flag when it has NULLs."""

    def __init__(self, vocab: int, spans=None, low: float = 0.0, high: float = 1.0, has_null=False):
        self.vocab = vocab
        self.spans = None if spans is None else np.asarray(spans, dtype=np.float64)
        self.low, self.high, self.has_null = low, high, has_null

    @property
    def continuous(self) -> bool:
        return self.spans is not None

    @property
    def width(self) -> int:
        return (1 + 2 * self.has_null) if self.continuous else self.vocab

    @classmethod
    def fit(cls, tokens: np.ndarray, vocab: int, spans) -> StepColumn:
        present = tokens[tokens > 0]
        if spans is None or vocab - 1 <= CONTINUOUS_FROM or len(present) == 0:
            return cls(vocab)
        spans = np.asarray(spans, dtype=np.float64)
        low, high = float(np.nanmin(spans[1:, 0])), float(np.nanmax(spans[1:, 1]))
        return cls(vocab, spans, low, high if high > low else low + 1.0, bool((tokens == 0).any()))

    def params(self) -> dict:
        spans = None if self.spans is None else np.nan_to_num(self.spans, nan=0.0).tolist()
        return {
            "vocab": self.vocab,
            "spans": spans,
            "low": self.low,
            "high": self.high,
            "has_null": self.has_null,
        }

    def as_token_column(self) -> TokenColumn:
        """For decoding values back to the nearest token."""
        return TokenColumn(self.vocab, self.spans)


class StepLayout:
    """Steps as vectors: each column's piece, then the two generation flags."""

    def __init__(self, columns: list[StepColumn]):
        self.columns = columns
        self.starts = np.cumsum([0] + [c.width for c in columns])[:-1].tolist()
        self.width = int(sum(c.width for c in columns))
        self.continuous = [i for i, c in enumerate(columns) if c.continuous]
        self.pieces = []
        for column, start in zip(columns, self.starts, strict=True):
            if not column.continuous:
                self.pieces.append(Piece(start, column.vocab, "softmax"))
                continue
            self.pieces.append(Piece(start, 1, "tanh"))
            if column.has_null:
                self.pieces.append(Piece(start + 1, 2, "softmax"))

    def encode(self, tokens: np.ndarray, lengths: np.ndarray, rng) -> tuple:
        """(features n x T x width, flags n x T x 2, min/max n x 2k) of padded step tokens."""
        n, steps = tokens.shape[:2]
        alive = np.arange(steps)[None, :] < lengths[:, None]
        features = np.zeros((n, steps, self.width), dtype=np.float32)
        ranges = np.zeros((n, 2 * len(self.continuous)), dtype=np.float32)
        for k, (column, start) in enumerate(zip(self.columns, self.starts, strict=True)):
            t = tokens[:, :, k]
            if not column.continuous:
                one_hot = np.eye(column.vocab, dtype=np.float32)[t]
                features[:, :, start : start + column.vocab] = one_hot * alive[..., None]
                continue
            present = alive & (t > 0)
            low, high = column.spans[t, 0], column.spans[t, 1]
            values = np.where(present, low + rng.random(t.shape) * (high - low), np.nan)
            with np.errstate(all="ignore"):
                lo = np.where(present.any(1), np.nanmin(np.where(present, values, np.inf), 1), 0)
                hi = np.where(present.any(1), np.nanmax(np.where(present, values, -np.inf), 1), 0)
            middle, half = (hi + lo) / 2, (hi - lo) / 2
            scaled = (values - middle[:, None]) / np.maximum(half, 1e-12)[:, None]
            features[:, :, start] = np.where(present, np.clip(scaled, -1, 1), 0)
            if column.has_null:
                features[:, :, start + 1] = alive & (t == 0)
                features[:, :, start + 2] = present
            j = self.continuous.index(k)
            span = column.high - column.low
            ranges[:, 2 * j] = 2 * (middle - column.low) / span - 1
            ranges[:, 2 * j + 1] = 4 * half / span - 1
        flags = np.zeros((n, steps, 2), dtype=np.float32)
        flags[:, :, 0] = np.arange(steps)[None, :] < lengths[:, None] - 1
        flags[np.arange(n), lengths - 1, 1] = 1
        return features, flags, ranges

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        return activate(raw, self.pieces)

    def decode(self, raw, ranges, allowed, config, generator) -> np.ndarray:
        """Step tokens (n x T x columns) from raw feature outputs and activated min/max."""
        n, steps = raw.shape[:2]
        flat = raw.reshape(n * steps, -1)
        tokens = np.zeros((n * steps, len(self.columns)), dtype=np.int64)
        for k, (column, start) in enumerate(zip(self.columns, self.starts, strict=True)):
            piece, mask = flat[:, start : start + column.width], allowed.get(k)
            if not column.continuous:
                tokens[:, k] = sample_logits(piece, config, generator, mask).numpy()
                continue
            j = self.continuous.index(k)
            span = column.high - column.low
            middle = (ranges[:, 2 * j].numpy() + 1) / 2 * span + column.low
            half = np.maximum((ranges[:, 2 * j + 1].numpy() + 1) / 4 * span, 0)
            x = torch.tanh(piece[:, 0]).numpy().astype(np.float64)
            values = x * np.repeat(half, steps) + np.repeat(middle, steps)
            tokens[:, k] = column.as_token_column().nearest(values, mask)
            if column.has_null:
                null_mask = None if mask is None else np.array([mask[0], mask[1:].any()])
                is_null = sample_logits(piece[:, 1:], config, generator, null_mask).numpy() == 0
                tokens[is_null, k] = 0
        return tokens.reshape(n, steps, len(self.columns))


def mlp(inputs: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    parts, width = [], inputs
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*parts, nn.Linear(width, out))


class SessionNetwork(nn.Module):
    def __init__(self, attributes: Layout, steps: StepLayout, n_ranges: int, batch_steps: int):
        super().__init__()
        self.attributes, self.steps, self.batch_steps = attributes, steps, batch_steps
        self.attribute_net = mlp(NOISE, HIDDEN, max(attributes.width, 1))
        self.range_net = mlp(attributes.width + NOISE, HIDDEN, max(n_ranges, 1))
        self.n_ranges = n_ranges
        self.rnn = nn.LSTM(attributes.width + n_ranges + NOISE, HIDDEN, batch_first=True)
        self.step_out = nn.Linear(HIDDEN, batch_steps * (steps.width + 2))

    @property
    def device(self) -> torch.device:
        return self.step_out.weight.device

    def draw_attributes(self, n: int, generator=None) -> torch.Tensor:
        """Raw attribute outputs (before activation); none when every attribute is constant."""
        noise = torch.randn(n, NOISE, generator=generator).to(self.device)
        return self.attribute_net(noise)[:, : self.attributes.width]

    def ranges(self, attributes: torch.Tensor, generator=None) -> torch.Tensor:
        noise = torch.randn(len(attributes), NOISE, generator=generator).to(self.device)
        return torch.tanh(self.range_net(torch.cat([attributes, noise], 1)))[:, : self.n_ranges]

    def raw_steps(self, attributes, ranges, length: int, generator=None) -> torch.Tensor:
        """Raw step outputs (n x length x (width + 2)), the flags' logits last."""
        rnn_steps = math.ceil(length / self.batch_steps)
        n = len(attributes)
        given = torch.cat([attributes, ranges], 1)[:, None, :].expand(-1, rnn_steps, -1)
        noise = torch.randn(n, rnn_steps, NOISE, generator=generator).to(self.device)
        hidden, _ = self.rnn(torch.cat([given, noise], 2))
        out = self.step_out(hidden).reshape(n, rnn_steps * self.batch_steps, -1)
        return out[:, :length]

    def sessions(self, attributes, ranges, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Activated, masked (features, flags): steps after the first stop flag are zero."""
        raw = self.raw_steps(attributes, ranges, length)
        features = self.steps.activate(raw[..., :-2])
        flags = activate(raw[..., -2:], [Piece(0, 2, "softmax")])
        go_on = torch.cumprod(flags[..., 0], dim=1)
        alive = torch.cat([torch.ones_like(go_on[:, :1]), go_on[:, :-1]], 1)[..., None]
        return features * alive, flags * alive


class TimeGanModel(SessionModel):
    """Sessions in one network: attributes (per-session tokens) and their steps."""

    method = "timegan"
    network_attribute = "generator"  # the critics are not kept
    default_epochs = 2000

    def __init__(
        self,
        attribute_vocab: list[int],
        step_vocab: list[int],
        max_length: int,
        attribute_spans: list | None = None,
        step_spans: list | None = None,
        attributes: list[dict] | None = None,
        steps: list[dict] | None = None,
    ):
        self.attribute_vocab, self.step_vocab = list(attribute_vocab), list(step_vocab)
        self.max_length = int(max_length)
        self.attribute_spans = attribute_spans or [None] * len(attribute_vocab)
        self.step_spans = step_spans or [None] * len(step_vocab)
        self.attribute_columns = (
            None if attributes is None else [TokenColumn(**a) for a in attributes]
        )
        self.step_columns = None if steps is None else [StepColumn(**s) for s in steps]
        if self.attribute_columns is not None:
            self._build()

    def _build(self) -> None:
        self.attribute_layout = Layout(self.attribute_columns)
        self.step_layout = StepLayout(self.step_columns)
        n_ranges = 2 * len(self.step_layout.continuous)
        batch_steps = math.ceil(self.max_length / MAX_RNN_STEPS)
        self.generator = SessionNetwork(
            self.attribute_layout, self.step_layout, n_ranges, batch_steps
        )
        whole = self.attribute_layout.width + n_ranges
        whole += self.max_length * (self.step_layout.width + 2)
        # DoppelGANger's critics: plain MLPs, no dropout
        self.critic = critic(whole, CRITIC_HIDDEN, layers=3, dropout=0)
        head = max(self.attribute_layout.width + n_ranges, 1)
        self.aux_critic = critic(head, CRITIC_HIDDEN, dropout=0)

    # -- training ------------------------------------------------------------------------------
    def fit(
        self,
        attributes: np.ndarray,
        steps: np.ndarray,
        lengths: np.ndarray,
        config: FitConfig,
        progress: Progress,
    ) -> dict:
        """``attributes``: sessions x attribute tokens; ``steps``: sessions x max_length x step
        tokens (padding after each session's length); ``lengths``: steps per session."""
        budget = TimeBudget(config.max_time)  # max_time counts the mixtures' fitting too
        rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        lengths = np.clip(lengths, 1, self.max_length)
        self._fit_columns(attributes, steps, lengths, config.seed)
        device = torch.device(config.device)
        attr = torch.from_numpy(self.attribute_layout.encode(attributes, rng)).to(device)
        features, flags, ranges = (
            torch.from_numpy(a).to(device) for a in self.step_layout.encode(steps, lengths, rng)
        )
        gen = self.generator.to(device)
        self.critic.to(device)
        self.aux_critic.to(device)
        g_opt = adam(gen.parameters(), LEARNING_RATE)
        d_opt = adam(
            list(self.critic.parameters()) + list(self.aux_critic.parameters()), LEARNING_RATE
        )
        n = len(attributes)
        batch = max(2, min(config.batch_size or BATCH, n))
        steps_per_epoch = max(1, n // batch)

        def train_step(epoch: int) -> Step:
            rows = torch.from_numpy(rng.choice(n, batch, replace=False))
            real = (attr[rows], ranges[rows], features[rows], flags[rows])
            given = attr[torch.from_numpy(rng.choice(n, batch // 2))]
            fake = self._fake(batch, given)
            d_real, d_fake, penalty = self._critics(real, tuple(x.detach() for x in fake))
            d_opt.zero_grad(set_to_none=True)
            (d_fake - d_real + penalty).backward()
            d_opt.step()
            fake = self._fake(batch, given)
            whole, aux = self._scores(fake)
            g_loss = -(whole.mean() + AUX_WEIGHT * aux.mean())
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            distance = float((d_real - d_fake).detach())
            return Step({"generator_loss": float(g_loss.detach()), "critic_distance": distance})

        resumable = Resumable(
            {"generator": gen, "critic": self.critic, "aux_critic": self.aux_critic},
            {"generator": g_opt, "critic": d_opt},
            {"rows": rng},
        )
        fitted = run_epochs(
            config, budget, progress, steps_per_epoch, train_step,
            start_epoch=gen.train, resumable=resumable,
        )  # fmt: skip
        gen.to("cpu").eval()
        self.critic.to("cpu")
        self.aux_critic.to("cpu")
        return fitted | {"history": fitted["history"][-20:]}

    def _fit_columns(
        self, attributes: np.ndarray, steps: np.ndarray, lengths: np.ndarray, seed: int
    ) -> None:
        """How each attribute and step column is represented, from the training sessions;
        then the networks."""
        self.attribute_columns = fit_columns(
            attributes, self.attribute_vocab, self.attribute_spans, seed
        )
        self.step_columns = []
        for k, (vocab, spans) in enumerate(zip(self.step_vocab, self.step_spans, strict=True)):
            alive = np.arange(steps.shape[1])[None, :] < lengths[:, None]
            self.step_columns.append(StepColumn.fit(steps[:, :, k][alive], vocab, spans))
        self._build()

    def _fake(self, n: int, given: torch.Tensor) -> tuple:
        """Generated sessions; the last ``len(given)`` on given (real) attributes."""
        gen = self.generator
        drawn = self.attribute_layout.activate(gen.draw_attributes(n - len(given)))
        attributes = torch.cat([drawn, given], 0)
        ranges = gen.ranges(attributes)
        features, flags = gen.sessions(attributes, ranges, self.max_length)
        return attributes, ranges, features, flags

    def _scores(self, session: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        attributes, ranges, features, flags = session
        head = torch.cat([attributes, ranges], 1)
        whole = torch.cat([head, features.flatten(1), flags.flatten(1)], 1)
        return self.critic(whole), self.aux_critic(head)

    def _critics(self, real: tuple, fake: tuple):
        real_whole, real_aux = self._scores(real)
        fake_whole, fake_aux = self._scores(fake)
        d_real = real_whole.mean() + AUX_WEIGHT * real_aux.mean()
        d_fake = fake_whole.mean() + AUX_WEIGHT * fake_aux.mean()

        def joined(session):
            attributes, ranges, features, flags = session
            head = torch.cat([attributes, ranges], 1)
            return torch.cat([head, features.flatten(1), flags.flatten(1)], 1), head

        (real_in, real_head), (fake_in, fake_head) = joined(real), joined(fake)
        penalty = gradient_penalty(self.critic, real_in, fake_in)
        penalty = penalty + AUX_WEIGHT * gradient_penalty(self.aux_critic, real_head, fake_head)
        return d_real, d_fake, penalty

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        conditions: Conditions,
        step_allowed: dict[int, np.ndarray],
        config: SampleConfig,
        generator: torch.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attribute tokens n x a, step tokens n x max_length x s, lengths) for ``n`` sessions;
        ``conditions`` on the attributes (given values, allowed tokens), ``step_allowed`` per
        step column."""
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        gen = self.generator.eval()
        layout = self.attribute_layout

        def draw(rows: np.ndarray, allowed=None) -> np.ndarray:
            raw = gen.draw_attributes(len(rows), generator)
            return layout.decode(raw, config, generator, allowed)

        fixed = {c: np.asarray(v) for c, v in conditions.fixed.items()}
        tokens = redraw_until_satisfied(n, draw, draw, fixed, conditions.allowed)
        attributes = torch.from_numpy(layout.encode(tokens, rng))
        ranges = gen.ranges(attributes, generator)
        raw = gen.raw_steps(attributes, ranges, self.max_length, generator)
        flags = raw[..., -2:]
        stop = sample_logits(flags.reshape(-1, 2), config, generator, None).numpy() == 1
        stop = stop.reshape(n, self.max_length)
        stop[:, -1] = True
        lengths = stop.argmax(axis=1) + 1
        steps = self.step_layout.decode(raw[..., :-2], ranges, step_allowed, config, generator)
        return tokens, steps, lengths

    # -- storage ---------------------------------------------------------------------------------
    def hyper_parameters(self) -> dict:
        return {
            "attribute_vocab": self.attribute_vocab,
            "step_vocab": self.step_vocab,
            "max_length": self.max_length,
            "attributes": [c.params() for c in self.attribute_columns],
            "steps": [c.params() for c in self.step_columns],
        }
