"""The interface every generative method implements. Models see integer tokens only."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import torch

from ..errors import Cancelled  # noqa: F401  raised by a progress callback
from ..privacy import PrivacyBudget

T = TypeVar("T")


class Checkpoints(Protocol):
    """Where a training loop keeps its checkpoints (train() gives one; a model never learns
    where they go)."""

    resume: dict | None  # the loop's state to continue from (None: from the start)

    def due(self) -> bool:
        """Whether a checkpoint should be saved now (an epoch just ended)."""

    def save(self, state: dict) -> None:
        """Keep ``state`` (tensors, numbers, lists, dicts, strings) in place of the last."""


class Synchronizer(Protocol):
    """Data-parallel training's collectives (distributed/training.py gives one to each worker):
    every worker calls each at the same point of its loop, so all take the same steps, stop
    together and keep the same weights."""

    rank: int  # this worker's place among them (0: the one whose model is kept)
    size: int  # how many workers there are (each fits an equal share of the rows)

    def gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its mean over the workers."""

    def mean(self, value: float) -> float:
        """``value``'s mean over the workers (the same number on every one)."""

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any worker."""


@dataclass
class FitConfig:
    """How long to fit: epochs, bounded by max_time (train() sets both from its arguments)."""

    epochs: int
    max_time: float
    batch_size: int | None = None  # None: chosen from the data size
    validation_share: float = 0.1
    seed: int = 0
    device: str = "cpu"
    patience: int = 5
    privacy: PrivacyBudget | None = None  # DP-SGD within this budget (methods that support it)
    checkpoints: Checkpoints | None = None  # methods that pass a Resumable to run_epochs
    # the weights are learned already (a continued training): early stopping may act from the
    # first epoch and the learning rate peaks lower, so what was learned is refined, not shaken
    warm_start: bool = False
    # data-parallel training (methods that support it): gradients, epoch losses, the share done
    # and the max_time stop agreed by every worker; None: one process, nothing changes
    sync: Synchronizer | None = None
    # train() was given no epochs: the training's length follows the data (loop.PlateauSchedule,
    # methods that support it); ``epochs`` is then a cap
    adaptive: bool = False


@dataclass
class Conditions:
    """Per-column sampling constraints in token space.

    ``fixed``: column -> tokens (one per row) that are given, not sampled.
    ``allowed``: column -> boolean mask over the column's tokens (sampling is restricted to it).
    ``first``: columns sampled before the others (the conditioned ones), so the rest follows them.
    """

    fixed: dict[int, np.ndarray] = field(default_factory=dict)
    allowed: dict[int, np.ndarray] = field(default_factory=dict)
    first: list[int] = field(default_factory=list)


SAMPLE_THREADS = max(1, min(4, os.cpu_count() or 1))
# a process given fewer cores (a Ray task's, distributed/generation.py) says how many here
SAMPLE_THREADS_VARIABLE = "DUCK_SYNTH_SAMPLE_THREADS"


def sample_threads() -> int:
    """The threads sampling runs chunks on: the process's setting, else up to 4 of the cores."""
    given = os.environ.get(SAMPLE_THREADS_VARIABLE, "")
    return int(given) if given.isdigit() and int(given) > 0 else SAMPLE_THREADS


def map_chunks(run: Callable[[int], T], count: int) -> list[T]:
    """``run(k)`` for each of ``count`` chunks, one intra-op thread each, on a thread pool when
    there are several (a pool's threads cost more than one small chunk's sampling)."""
    with single_thread():
        if count <= 1:
            return [run(k) for k in range(count)]
        with ThreadPoolExecutor(min(sample_threads(), count)) as pool:
            return list(pool.map(run, range(count)))


@contextlib.contextmanager
def single_thread():
    """Sampling runs many small ops: one intra-op thread each; chunks run on a thread pool."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class SampleConfig:
    temperature: float = 1.0
    top_p: float = 1.0


# Called after each step ({epoch, step, steps, elapsed, done}) and epoch ({epoch, its losses,
# elapsed, done, epoch_done: True}); ``done`` is the share of the training done (models/loop.py).
# It may raise Cancelled.
Progress = Callable[[dict], None]


def network_tensors(network: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """A network's weights as stored (contiguous, names under ``prefix``)."""
    return {prefix + k: v.contiguous() for k, v in network.state_dict().items()}


def load_network(network: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str = ""):
    """Load what ``network_tensors`` stored into ``network``, ready to sample (eval mode)."""
    network.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items()})
    network.eval()


class StoredModel:
    """What a model stores: JSON-able hyper-parameters from which ``cls(**params)`` builds it
    again, and the weights of its one sampling network (the attribute ``network_attribute``,
    names under ``network_prefix``). A model storing something else overrides both methods."""

    network_attribute = "net"
    network_prefix = ""

    def hyper_parameters(self) -> dict:
        raise NotImplementedError

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON-able hyper-parameters, tensors) to store."""
        network = getattr(self, self.network_attribute)
        return self.hyper_parameters(), network_tensors(network, self.network_prefix)

    @classmethod
    def restore(cls, params: dict, tensors: dict[str, torch.Tensor]):
        """The stored model, ready to sample."""
        model = cls(**params)
        load_network(getattr(model, cls.network_attribute), tensors, cls.network_prefix)
        return model


class GenerativeModel(StoredModel):
    method: str = ""
    default_epochs: int = 100

    def fit(self, tokens: np.ndarray, config: FitConfig, progress: Progress) -> dict:
        """Train on ``tokens`` (rows x columns); return metrics. ``progress`` may raise Cancelled."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        conditions: Conditions,
        config: SampleConfig,
        generator: torch.Generator,
    ) -> np.ndarray:
        raise NotImplementedError


class SessionModel(StoredModel):
    """The interface of a method that models whole sessions in one network (timegan): a
    session's attributes (its per-session tokens: metadata, start), its steps and its length
    are learned and drawn together. Models see tokens only, as GenerativeModel's do."""

    method: str = ""
    default_epochs: int = 100

    @classmethod
    def create(
        cls,
        attribute_vocab: list[int],
        step_vocab: list[int],
        max_length: int,
        attribute_spans: list | None = None,
        step_spans: list | None = None,
    ) -> SessionModel:
        """A fresh model for attributes and steps of these token counts and value spans."""
        return cls(attribute_vocab, step_vocab, max_length, attribute_spans, step_spans)

    def fit(
        self,
        attributes: np.ndarray,
        steps: np.ndarray,
        lengths: np.ndarray,
        config: FitConfig,
        progress: Progress,
    ) -> dict:
        """Train on ``attributes`` (sessions x attribute tokens), ``steps`` (sessions x
        max_length x step tokens, padded after each session's length) and ``lengths``; return
        metrics. ``progress`` may raise Cancelled."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        conditions: Conditions,
        step_allowed: dict[int, np.ndarray],
        config: SampleConfig,
        generator: torch.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attribute tokens n x a, step tokens n x max_length x s, lengths) of ``n`` sessions;
        ``conditions`` on the attributes, ``step_allowed``: per step column, its allowed tokens."""
        raise NotImplementedError


AnyModel = GenerativeModel | SessionModel  # what a training part fits and a record restores


def sample_logits(
    logits: torch.Tensor,
    config: SampleConfig,
    generator: torch.Generator,
    allowed: np.ndarray | None,
) -> torch.Tensor:
    """Inverse-CDF sampling with temperature, nucleus (top-p) and an allowed-token mask."""
    if config.temperature != 1.0:
        logits = logits / max(config.temperature, 1e-6)
    if allowed is not None:
        logits = logits.masked_fill(~torch.as_tensor(allowed), -math.inf)
    weights = row_softmax(logits)
    if config.top_p < 1.0:
        sorted_w, sorted_idx = weights.sort(dim=-1, descending=True)
        keep = sorted_w.cumsum(-1) - sorted_w < config.top_p
        weights = torch.zeros_like(weights).scatter_(-1, sorted_idx, sorted_w * keep)
    cdf = weights.cumsum_(-1)
    u = torch.rand(len(cdf), 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(cdf.shape[1] - 1)


# torch's CPU softmax over a last dimension this short takes a slow path: [2048, 8] took 296 us
# against 36 us over the transposed tensor, which is vectorised along the rows
SHORT_SOFTMAX = 16


def row_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension of (rows x values), whichever way is faster."""
    if logits.shape[-1] >= SHORT_SOFTMAX or logits.dim() != 2 or logits.device.type != "cpu":
        return torch.softmax(logits, dim=-1)
    return torch.softmax(logits.T, dim=0).T.contiguous()
