"""Fitting a training plan's networks in a recorded run: each part's loop with its progress
shown and written to synth.runs (a cancel honoured between steps), checkpoints saved to
continue from (checkpoints.py), parts an interrupted run had fitted taken as they were."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from . import caller, catalog
from .checkpoints import RunCheckpoints
from .models import default_epochs
from .models.base import FitConfig
from .models.loop import TimeBudget
from .shapes import Training, TrainingPlan


def fit_parts(
    con,
    run_id: int,
    plan: TrainingPlan,
    training: Training,
    time_budget: TimeBudget,
    device: str,
    checkpoints: RunCheckpoints | None = None,
) -> tuple[dict, dict, dict]:
    """(metrics, parameters, tensors) of the plan's parts, by part name ('model' for the main
    one; tensors prefixed by the part's name)."""
    options, budget = training.options, training.budget
    metrics, tensors, params = {}, {}, {}
    for part in plan.parts:
        key = part.name or "model"
        done_before = checkpoints.fitted(key) if checkpoints is not None else None
        if done_before is not None:  # fitted before the run was interrupted
            fitted, part_params, part_tensors = done_before
        else:
            config = FitConfig(
                epochs=(options.epochs or planned_epochs(training)) * part.epochs_factor,
                max_time=time_budget.part(part.time_share),
                batch_size=options.batch_size,
                validation_share=0.0 if budget is not None else options.validation_share,
                seed=training.seed,
                device=device,
                privacy=budget,
                checkpoints=checkpoints.for_part(key) if checkpoints is not None else None,
                warm_start=options.from_model is not None,
                # no epochs given: a table's rows network and a session model's steps network
                # train as long as they learn (the method's epochs a cap); text networks keep
                # their schedule
                adaptive=options.epochs is None
                and options.from_model is None
                and part.name in ADAPTIVE_PARTS
                and training.method == "autoregressive",
            )
            model = part.model
            if options.engine == "ray" and not part.name:  # the rows' network; texts: here
                from .distributed.training import RayFit

                model = RayFit(part.model, options.workers)
            fitted = (
                fit_recorded(con, run_id, model, part.data, config)
                if part.learns
                else {"epochs": 0, "history": []}
            )
            part_params, part_tensors = part.model.state()
            if checkpoints is not None and len(plan.parts) > 1:
                checkpoints.part_done(key, fitted, part_params, part_tensors)
        metrics[key] = fitted
        params[key] = part_params
        prefix = f"{part.name}." if part.name else ""
        tensors |= {prefix + k: value for k, value in part_tensors.items()}
    return metrics, params, tensors


ADAPTIVE_PARTS = ("", "steps")  # the main network (rows, or sessions) and a session's steps

# a continued training starts from learned weights: by default it takes this share of the
# method's epochs (nycflights13, December after January-November: benchmarks/continued.py)
CONTINUED_EPOCHS_SHARE = 0.25


def planned_epochs(training: Training) -> int:
    """The method's default epochs, or their share for a continued training."""
    epochs = default_epochs(training.method)
    if training.options.from_model is not None:
        return max(1, round(epochs * CONTINUED_EPOCHS_SHARE))
    return epochs


RUN_UPDATE_S = 1.0  # how often a training's progress is written to synth.runs
EVENT_ONLY = ("elapsed", "done", "epoch_done")  # in a progress event, not an epoch's losses


def fit_recorded(con, run_id: int, model, data: tuple[np.ndarray, ...], config: FitConfig) -> dict:
    """Fit ``model``, its progress shown and written to synth.runs, a cancel honoured."""
    resumed = config.checkpoints.resume if config.checkpoints is not None else None
    losses: list[dict] = list(resumed["history"]) if resumed is not None else []
    bar = progress_bar()
    last_write = [time.monotonic()]

    def progress(event: dict) -> None:
        """Called by the model after each step and epoch: where a cancel of the statement's
        call (Session.interrupt(), a client's cancel, Ctrl-C) or its timeout stops training.
        The share done is the model's (its loop's: never past max_time)."""
        caller.check()
        share = min(event["done"], 0.99)
        bar.update(round(100 * share, 1) - bar.n)
        if event.get("epoch_done"):
            losses.append({k: v for k, v in event.items() if k not in EVENT_ONLY})
            bar.set_postfix({k: f"{v:.4f}" for k, v in losses[-1].items() if k != "epoch"})
        if event.get("epoch_done") or time.monotonic() - last_write[0] >= RUN_UPDATE_S:
            # server clients follow a training in FROM runs()
            catalog.update_run(con, run_id, share, event["epoch"], losses)
            last_write[0] = time.monotonic()

    try:
        return model.fit(*data, config, progress)
    finally:
        bar.close()


def progress_bar() -> tqdm:
    """A bar in percent of the training: a widget in a notebook, a bar on a terminal, nothing
    in logs unless DUCK_SYNTH_PROGRESS is set (then tqdm's plain lines)."""
    shown = (
        sys.stderr.isatty()
        or "ipykernel" in sys.modules
        or bool(os.environ.get("DUCK_SYNTH_PROGRESS"))
    )
    return tqdm(
        total=100,
        desc="train",
        unit="%",
        bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]",
        file=sys.stderr,
        disable=not shown,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )
