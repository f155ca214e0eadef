"""The one training loop of the torch methods and the one max_time budget.

``TimeBudget`` is max_time: the seconds a training (or one part of it) may take, as a deadline
checked before each step, the share of it used (learning-rate schedules, the progress bar), the
time a part gets, and the steps that still fit (DP-SGD's planning). ``run_epochs`` is the epoch
loop every torch method runs: its steps, progress after each, the deadline, one history entry
per epoch (means over the steps taken), early stopping on a validation loss with the best
weights restored, and checkpoints at epoch ends to resume from. A method gives it a step and,
when it has them, hooks and what its training is made of (``Resumable``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import FitConfig, Progress, Synchronizer

MIN_PART_SECONDS = 1.0  # a part of a training always gets at least this much


class TimeBudget:
    """max_time from now. ``reached`` is a deadline, not a threshold: training stops before a
    step that would run past it (a step is taken to last as long as the longest so far but the
    first, which warms up)."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, time.monotonic()
        self.last: float | None = None
        self.longest = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def used(self) -> float:
        """The share of the budget spent (0 for an unbounded one)."""
        return self.elapsed() / self.seconds if math.isfinite(self.seconds) else 0.0

    def part(self, share: float) -> float:
        """The seconds a part may take that ends at ``share`` of the whole budget, counting what
        was spent before it (reading, encoding, earlier parts)."""
        return max(share * self.seconds - self.elapsed(), MIN_PART_SECONDS)

    def steps_fitting(self, step_seconds: float, margin: float = 1.0) -> int:
        """How many steps of ``step_seconds`` fit in ``margin`` of what is left, one spare."""
        return int(margin * self.remaining() / step_seconds) - 1

    def reached(self) -> bool:
        """Call after each step (the first call marks where the steps start)."""
        now = time.monotonic()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now
        return now - self.started + self.longest > self.seconds


@dataclass
class Step:
    """What one step reports: its losses, weighted by ``weight`` (rows) in the epoch's means."""

    values: dict[str, float]
    weight: float = 1.0


class Stop(Exception):  # noqa: N818  a signal, not an error
    """Raised by a step before it does any work: training ends here, for ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class EarlyStopping:
    """Keep the weights of the epoch with the lowest validation loss ("val_loss" in the epoch's
    entry) and stop when it has not improved for ``patience`` epochs, once ``start`` of the
    budget is done (at the peak learning rate the validation loss wanders, and stopping there
    left small tables half-learned)."""

    network: torch.nn.Module
    patience: int
    start: float
    best: float = math.inf
    stale: int = 0
    state: dict | None = field(default=None, repr=False)

    finished: Callable[[], bool] | None = None  # a schedule that ends the training itself

    def stops(self, loss: float, done: float) -> bool:
        if loss < self.best - 1e-4:
            self.best, self.stale = loss, 0
            self.state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        else:
            self.stale += 1
        if self.finished is not None:
            return self.finished()
        return self.stale >= self.patience and done >= self.start

    def reason(self) -> str:
        """Why it stopped the training: a plateau schedule's end, or patience."""
        return "plateau" if self.finished is not None else "early_stopping"

    def restore(self) -> None:
        if self.state is not None:
            self.network.load_state_dict(self.state)


def cosine_share(done: float) -> float:
    """The learning rate's share of its peak at ``done`` of the budget: a warm-up over the
    first 5%, then a cosine decay to 5%."""
    if done < 0.05:
        return max(done / 0.05, 0.05)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min((done - 0.05) / 0.95, 1.0)))


@dataclass
class PlateauSchedule:
    """The learning rate of a training whose length follows the data (train() without epochs):
    a warm-up over the first epoch, the peak while the validation loss improves, then, once its
    best of the last ``window`` epochs improved on the one before them by less than
    ``min_progress`` of all it improved since the first epoch (a flattened loss, whatever its
    scale), a cosine decay over ``decay_share`` of the epochs taken so far (at least
    ``min_decay``), and the training ends there. The budget's share ``done`` (the larger of the
    epoch cap's and max_time's) also moves the decay, so it ends before either cap."""

    steps_per_epoch: int
    epochs: int  # the cap
    window: int = 3
    min_progress: float = 0.01
    decay_share: float = 0.25
    min_decay: int = 2
    decay_from: float = 0.7
    bests: list = field(default_factory=list)  # the best loss after each epoch
    first: float = math.nan  # the first epoch's loss
    steps: int = 0
    decay: list | None = None  # [first step, steps, done] when the decay started
    done: float = 0.0  # the budget's share at the last step

    def share(self, done: float) -> float:
        """After each step: the learning rate's share of its peak."""
        self.steps, self.done = self.steps + 1, done
        if self.decay is None:
            if done >= self.decay_from:
                self._start_decay(done, self.epochs - self.steps // self.steps_per_epoch)
            else:
                return max(min(self.steps / self.steps_per_epoch, 1.0), 0.05)
        first, length, at = self.decay
        by_steps = (self.steps - first) / max(length, 1)
        by_budget = (done - at) / max(1.0 - at, 1e-9)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(max(by_steps, by_budget), 1.0)))

    def epoch_end(self, loss: float, epoch: int) -> None:
        if not self.bests:
            self.first = loss
        self.bests.append(min(loss, self.bests[-1]) if self.bests else loss)
        if self.decay is None and len(self.bests) > self.window:
            recent = self.bests[-1 - self.window] - self.bests[-1]
            if recent < self.min_progress * (self.first - self.bests[-1]):
                length = max(self.min_decay, math.ceil(self.decay_share * epoch))
                self._start_decay(self.done, min(length, self.epochs - epoch))

    def _start_decay(self, done: float, epochs: int) -> None:
        self.decay = [self.steps, max(epochs, 0) * self.steps_per_epoch, done]

    def finished(self) -> bool:
        return self.decay is not None and self.steps >= self.decay[0] + self.decay[1]

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("bests", "first", "steps", "decay", "done")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class Resumable:
    """What a method's training is made of, to checkpoint at an epoch's end and restore: its
    networks, optimizers and random generators (torch or numpy). torch's global generator
    (dropout) is always saved with them."""

    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    generators: dict[str, torch.Generator | np.random.Generator] = field(default_factory=dict)
    schedules: dict[str, PlateauSchedule] = field(default_factory=dict)

    def state(self) -> dict:
        return {
            "modules": {k: _cloned(m.state_dict()) for k, m in self.modules.items()},
            "optimizers": {k: _cloned(o.state_dict()) for k, o in self.optimizers.items()},
            "generators": {k: _generator_state(g) for k, g in self.generators.items()},
            "schedules": {k: s.state_dict() for k, s in self.schedules.items()},
            "torch": torch.get_rng_state(),
        }

    def load(self, state: dict) -> None:
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, schedule in self.schedules.items():
            schedule.load_state_dict(state.get("schedules", {})[key])
        for key, generator in self.generators.items():
            if isinstance(generator, torch.Generator):
                generator.set_state(state["generators"][key])
            else:
                generator.bit_generator.state = state["generators"][key]
        torch.set_rng_state(state["torch"])


def _cloned(value):
    """A state dict copied off the device, so later steps do not change the checkpoint."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cloned(v) for v in value)
    return value


def _generator_state(generator: torch.Generator | np.random.Generator):
    if isinstance(generator, torch.Generator):
        return generator.get_state()
    return generator.bit_generator.state


def optimizer_step(optimizer: torch.optim.Optimizer, sync: Synchronizer | None) -> None:
    """``optimizer.step()``; with workers, on the mean of their gradients (data-parallel)."""
    if sync is not None:
        sync.gradients(p for group in optimizer.param_groups for p in group["params"])
    optimizer.step()


def run_epochs(
    config: FitConfig,
    budget: TimeBudget,
    progress: Progress,
    steps_per_epoch: int,
    step: Callable[[int], Step],
    *,
    start_epoch: Callable[[], None] = lambda: None,
    after_step: Callable[[float], None] = lambda done: None,
    end_epoch: Callable[[dict], dict] = lambda entry: {},
    early_stopping: EarlyStopping | None = None,
    planned_steps: Callable[[], int] | None = None,
    resumable: Resumable | None = None,
) -> dict:
    """Up to ``config.epochs`` epochs of ``step(epoch)``; ``after_step(done)`` with the share of
    the training done (the larger of the steps taken and the budget used: schedules and the
    progress bar follow whichever ends first, so neither runs past max_time), also in every
    progress event; ``end_epoch(entry)`` adds values to the epoch's entry (a validation loss,
    the privacy spent). Returns epochs, history and why it stopped: epochs, max_time,
    early_stopping, or a ``Stop`` reason.

    With ``resumable`` and ``config.checkpoints``, the loop continues from the checkpoint given
    to resume from, and saves one at an epoch's end when one is due (never after the last):
    the epochs after it are then the ones an uninterrupted run takes."""
    planned = planned_steps or (lambda: max(steps_per_epoch * config.epochs, 1))
    history, first, taken_all, stopped = [], 1, 0, None
    saver = config.checkpoints if resumable is not None else None
    if saver is not None and saver.resume is not None:
        done_before, taken_all, history = _restore(saver.resume, resumable, budget, early_stopping)
        first = done_before + 1
    epoch = first - 1
    for epoch in range(first, config.epochs + 1):
        start_epoch()
        totals: dict[str, float] = {}
        weight, taken = 0.0, 0
        for index in range(1, steps_per_epoch + 1):
            try:
                result = step(epoch)
            except Stop as stop:
                stopped = stop.reason
                break
            for name, value in result.values.items():
                totals[name] = totals.get(name, 0.0) + value * result.weight
            weight += result.weight
            taken, taken_all = taken + 1, taken_all + 1
            done = _done(taken_all / planned(), budget, config.sync)
            after_step(done)
            progress(
                {
                    "epoch": epoch,
                    "step": index,
                    "steps": steps_per_epoch,
                    "elapsed": budget.elapsed(),
                    "done": done,
                }
            )
            if _agreed(budget.reached(), config.sync):
                stopped = "max_time"
                break
        if taken == 0 and stopped:  # stopped before this epoch's first step: no epoch
            epoch -= 1
            break
        # means over the steps this epoch took (a cut epoch took fewer than all)
        entry = {"epoch": epoch} | {k: v / max(weight, 1e-12) for k, v in totals.items()}
        entry |= end_epoch(entry)
        entry = _means(entry, config.sync)  # with workers, theirs: early stopping agrees
        history.append(entry)
        done = _done(taken_all / planned(), budget, config.sync)
        progress(entry | {"elapsed": budget.elapsed(), "done": done, "epoch_done": True})
        stalled = early_stopping is not None and early_stopping.stops(entry["val_loss"], done)
        if stopped:
            break
        if stalled:
            stopped = early_stopping.reason() if epoch < config.epochs else None
            break
        if saver is not None and epoch < config.epochs and saver.due():
            saver.save(_state(epoch, taken_all, history, budget, early_stopping, resumable))
    if early_stopping:
        early_stopping.restore()
    return {"epochs": epoch, "history": history, "stopped": stopped or "epochs"}


def _done(steps_share: float, budget: TimeBudget, sync: Synchronizer | None) -> float:
    """The share of the training done; with workers, their mean (one learning rate for all)."""
    done = max(steps_share, budget.used())
    return done if sync is None else sync.mean(done)


def _agreed(reached: bool, sync: Synchronizer | None) -> bool:
    """max_time's stop; with workers, any one's (none is left waiting in a collective)."""
    return reached if sync is None else sync.any(reached)


def _means(entry: dict, sync: Synchronizer | None) -> dict:
    """An epoch's entry; with workers, each loss as their mean."""
    if sync is None:
        return entry
    return {k: v if k == "epoch" else sync.mean(v) for k, v in entry.items()}


def _state(
    epoch: int,
    taken: int,
    history: list[dict],
    budget: TimeBudget,
    stopping: EarlyStopping | None,
    resumable: Resumable,
) -> dict:
    """A checkpoint: what the epochs after ``epoch`` start from."""
    early = None
    if stopping is not None:
        early = {"best": stopping.best, "stale": stopping.stale, "state": stopping.state}
    return {
        "epoch": epoch,
        "taken": taken,
        "history": history,
        "elapsed": budget.elapsed(),
        "early": early,
        "method": resumable.state(),
    }


def _restore(
    state: dict, resumable: Resumable, budget: TimeBudget, stopping: EarlyStopping | None
) -> tuple[int, int, list[dict]]:
    """Load a checkpoint: (epochs done, steps taken, history). The budget counts the time the
    checkpointed epochs took."""
    resumable.load(state["method"])
    budget.started = time.monotonic() - state["elapsed"]
    if stopping is not None and state["early"] is not None:
        early = state["early"]
        stopping.best, stopping.stale, stopping.state = (
            early["best"],
            early["stale"],
            early["state"],
        )
    return state["epoch"], state["taken"], list(state["history"])
