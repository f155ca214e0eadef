"""DP-SGD training of the autoregressive network (train(..., epsilon => ...)).

Poisson-sampled batches, per-row gradients clipped (ColumnNets.clipped_gradients) and noised by
Opacus' DPOptimizerFastGradientClipping, steps counted by its RDP accountant. No validation
split and no early stopping (both would read the data outside the budget); training stops
before a step that would take epsilon past the budget. With max_time and no given noise, the
steps are planned from a timed step, then re-planned as the real step time is known, the noise
fitted each time so that the planned steps spend exactly the rest of the budget.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import SynthError
from ..privacy import PrivacyBudget, noise_multiplier_for, spent_epsilon, steps_within
from .autoregressive import PEAK_LR, WEIGHT_DECAY, batch_size
from .base import FitConfig, Progress
from .loop import Step, Stop, TimeBudget, cosine_share, run_epochs

if TYPE_CHECKING:
    from .autoregressive import AutoregressiveModel

REPLAN_AFTER = 3  # steps timed before the noise is fitted to the steps max_time allows
REPLAN_SHARES = (0.25, 0.5, 0.75, 0.9)  # of the planned steps: fitted again as steps speed up


@dataclass
class Plan:
    """How many DP-SGD steps to take, why that many, and the noise that spends the budget on
    them."""

    batch: int
    rate: float  # Poisson sampling rate: batch / rows
    steps_per_epoch: int
    all_steps: int  # what the epochs ask for
    planned: int
    limit: str  # why training stops at ``planned`` steps: epochs, max_time or epsilon
    sigma: float


def plan(
    model: AutoregressiveModel,
    data: torch.Tensor,
    config: FitConfig,
    generator: torch.Generator,
    time_budget: TimeBudget,
) -> Plan:
    budget = config.privacy
    n = len(data)
    batch = batch_size(config, n)
    rate = batch / n
    steps_per_epoch = math.ceil(n / batch)
    all_steps = planned = steps_per_epoch * config.epochs
    limit = "epochs"
    if budget.noise_multiplier is None and math.isfinite(config.max_time):
        # plan only the steps max_time allows, timed on one step whose gradient is thrown away
        # (nothing is released: it costs no privacy)
        timing = time.monotonic()
        model.net.clipped_gradients(data[:batch], model.known_masks(batch, generator), 1.0)
        model.net.zero_grad(set_to_none=True)
        step_time = 1.2 * (time.monotonic() - timing)  # the optimizer's step and noise too
        fitting = time_budget.steps_fitting(step_time)
        if fitting < planned:
            planned, limit = max(fitting, 1), "max_time"
    if budget.noise_multiplier is None:
        sigma = noise_multiplier_for(budget.training_epsilon, budget.training_delta, rate, planned)
    else:  # the noise is given: as many steps as the budget allows
        sigma = budget.noise_multiplier
        allowed = steps_within(budget.training_epsilon, budget.training_delta, sigma, rate, planned)
        if allowed == 0:
            raise SynthError(
                f"train(): noise_multiplier {sigma} is too small for epsilon "
                f"{budget.epsilon}: not one step fits the budget"
            )
        limit = "epsilon" if allowed < planned else "epochs"
        planned = allowed
    return Plan(batch, rate, steps_per_epoch, all_steps, planned, limit, sigma)


def replan(
    planned: Plan, steps: int, config: FitConfig, time_budget: TimeBudget, accountant
) -> None:
    """The steps that really fit in max_time at the mean step time so far (the longest
    overshoots: one slow step made a 120 s fit stop at 59 s): the rest of the budget is spent on
    those; later replans correct the estimate."""
    budget: PrivacyBudget = config.privacy
    fitting = time_budget.steps_fitting(time_budget.elapsed() / steps, margin=0.97)
    target = min(planned.all_steps, steps + max(fitting, 1))
    if abs(target - planned.planned) > 0.05 * planned.planned:
        planned.limit = "max_time" if target < planned.all_steps else "epochs"
        planned.planned = target
        planned.sigma = noise_multiplier_for(
            budget.training_epsilon, budget.training_delta, planned.rate,
            planned.planned - steps, accountant.history,
        )  # fmt: skip


def fit_private(
    model: AutoregressiveModel, tokens: np.ndarray, config: FitConfig, progress: Progress
) -> dict:
    from opacus.accountants import RDPAccountant
    from opacus.optimizers import DPOptimizerFastGradientClipping

    budget = config.privacy
    time_budget = TimeBudget(config.max_time)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    data = torch.as_tensor(tokens, dtype=torch.long)
    net = model.net.train()
    net.dropout.p = 0.0  # the noise regularises; dropout would only slow per-row gradients
    steps_plan = plan(model, data, config, generator, time_budget)
    # the noise must not be predictable from the seed: it comes from the OS
    noise = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    optimizer = DPOptimizerFastGradientClipping(
        torch.optim.AdamW(net.parameters(), lr=PEAK_LR, weight_decay=WEIGHT_DECAY),
        noise_multiplier=steps_plan.sigma,
        max_grad_norm=budget.max_grad_norm,
        expected_batch_size=steps_plan.batch,
        loss_reduction="mean",
        generator=noise,
    )
    accountant = RDPAccountant()
    optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=steps_plan.rate))
    steps = [0]

    def step(epoch: int) -> Step:
        if steps[0] >= steps_plan.planned:  # the budget is planned for exactly these steps
            raise Stop(steps_plan.limit)
        rows = data[torch.rand(len(data), generator=generator) < steps_plan.rate]
        known = model.known_masks(len(rows), generator)
        optimizer.zero_grad(set_to_none=True)
        if len(rows):
            net.clipped_gradients(rows, known, budget.max_grad_norm)
        else:  # an empty Poisson batch still takes its (noise-only) step
            for p in net.parameters():
                p.grad = torch.zeros_like(p)
        optimizer.step()
        steps[0] += 1
        replan_at = {REPLAN_AFTER, *(int(steps_plan.planned * f) for f in REPLAN_SHARES)}
        if steps[0] in replan_at and budget.noise_multiplier is None:
            replan(steps_plan, steps[0], config, time_budget, accountant)
            optimizer.noise_multiplier = steps_plan.sigma
        # no loss is reported: it would be read from the data outside the budget
        return Step({}, weight=len(rows))

    def after_step(done: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = PEAK_LR * cosine_share(done)

    def spent(entry: dict) -> dict:
        return {"epsilon": spent_epsilon(accountant.history, budget.training_delta)}

    fitted = run_epochs(
        config, time_budget, progress, steps_plan.steps_per_epoch, step,
        after_step=after_step, end_epoch=spent, planned_steps=lambda: steps_plan.planned,
    )  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    net.eval()
    return fitted | {
        "best_val_loss": None,
        "privacy": privacy_spent(steps_plan, accountant, budget, steps[0]),
    }


def privacy_spent(steps_plan: Plan, accountant, budget: PrivacyBudget, steps: int) -> dict:
    return {
        "epsilon": spent_epsilon(accountant.history, budget.training_delta),
        "delta": budget.training_delta,
        "noise_multiplier": steps_plan.sigma,
        "history": [list(h) for h in accountant.history],
        "sample_rate": steps_plan.rate,
        "steps": steps,
        "max_grad_norm": budget.max_grad_norm,
        "accountant": "rdp",
    }
