"""The one training loop of the torch methods and the one max_time budget.

``TimeBudget`` is max_time: the seconds a training (or one part of it) may take, as a deadline
checked before each step, the share of it used (learning-rate schedules, the progress bar), the
time a part gets, and the steps that still fit (DP-SGD's planning). ``run_epochs`` is the epoch
loop every torch method runs: its steps, progress after each, the deadline, one history entry
per epoch (means over the steps taken), early stopping on a validation loss with the best
weights restored. A method gives it a step and, when it has them, hooks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .base import FitConfig, Progress

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

    def stops(self, loss: float, done: float) -> bool:
        if loss < self.best - 1e-4:
            self.best, self.stale = loss, 0
            self.state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.patience and done >= self.start

    def restore(self) -> None:
        if self.state is not None:
            self.network.load_state_dict(self.state)


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
) -> dict:
    """Up to ``config.epochs`` epochs of ``step(epoch)``; ``after_step(done)`` with the share of
    the training done (the larger of the steps taken and the budget used: schedules and the
    progress bar follow whichever ends first, so neither runs past max_time), also in every
    progress event; ``end_epoch(entry)`` adds values to the epoch's entry (a validation loss,
    the privacy spent). Returns epochs, history and why it stopped: epochs, max_time,
    early_stopping, or a ``Stop`` reason."""
    planned = planned_steps or (lambda: max(steps_per_epoch * config.epochs, 1))
    history, epoch, taken_all, stopped = [], 0, 0, None
    for epoch in range(1, config.epochs + 1):
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
            done = max(taken_all / planned(), budget.used())
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
            if budget.reached():
                stopped = "max_time"
                break
        if taken == 0 and stopped:  # stopped before this epoch's first step: no epoch
            epoch -= 1
            break
        # means over the steps this epoch took (a cut epoch took fewer than all)
        entry = {"epoch": epoch} | {k: v / max(weight, 1e-12) for k, v in totals.items()}
        entry |= end_epoch(entry)
        history.append(entry)
        done = max(taken_all / planned(), budget.used())
        progress(entry | {"elapsed": budget.elapsed(), "done": done, "epoch_done": True})
        stalled = early_stopping is not None and early_stopping.stops(entry["val_loss"], done)
        if stopped:
            break
        if stalled:
            stopped = "early_stopping" if epoch < config.epochs else None
            break
    if early_stopping:
        early_stopping.restore()
    return {"epochs": epoch, "history": history, "stopped": stopped or "epochs"}
