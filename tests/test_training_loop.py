"""The one training loop (models/loop.py) on toy steps: epochs, means, stops, early stopping
with the best weights restored, and the max_time budget's arithmetic. No real model: the loop's
behaviour, whatever the method."""

from __future__ import annotations

import math

import torch

from duck_synth.models import loop
from duck_synth.models.base import FitConfig
from duck_synth.models.loop import EarlyStopping, Step, Stop, TimeBudget, run_epochs


def test_an_epochs_losses_are_means_weighted_by_the_rows_of_its_steps():
    losses = iter([(1.0, 10), (4.0, 30), (2.0, 20), (2.0, 20)])
    fitted = run_epochs(
        FitConfig(epochs=2, max_time=math.inf),
        TimeBudget(math.inf),
        lambda event: None,
        2,
        lambda epoch: Step({"train_loss": (pair := next(losses))[0]}, weight=pair[1]),
    )
    assert fitted["stopped"] == "epochs" and fitted["epochs"] == 2
    assert [e["train_loss"] for e in fitted["history"]] == [(10 + 120) / 40, 2.0]


def test_a_stop_before_an_epochs_first_step_does_not_count_that_epoch():
    taken = []

    def step(epoch: int) -> Step:
        if len(taken) == 6:  # a DP budget planned for exactly six steps
            raise Stop("epsilon")
        taken.append(epoch)
        return Step({})

    fitted = run_epochs(FitConfig(epochs=10, max_time=math.inf), TimeBudget(math.inf),
                        lambda event: None, 3, step)  # fmt: skip
    assert (fitted["epochs"], fitted["stopped"], len(fitted["history"])) == (2, "epsilon", 2)


def test_early_stopping_keeps_the_weights_of_the_best_epoch():
    network = torch.nn.Linear(1, 1)
    validation = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])

    def step(epoch: int) -> Step:
        with torch.no_grad():
            network.bias.fill_(float(epoch))  # the weights say which epoch made them
        return Step({"train_loss": 1.0})

    fitted = run_epochs(
        FitConfig(epochs=6, max_time=math.inf),
        TimeBudget(math.inf),
        lambda event: None,
        1,
        step,
        end_epoch=lambda entry: {"val_loss": next(validation)},
        early_stopping=EarlyStopping(network, patience=2, start=0.0),
    )
    assert (fitted["epochs"], fitted["stopped"]) == (4, "early_stopping")
    assert network.bias.item() == 2.0


def test_early_stopping_waits_for_its_share_of_the_training():
    validation = iter([1.0] + [2.0] * 9)
    fitted = run_epochs(
        FitConfig(epochs=10, max_time=math.inf),
        TimeBudget(math.inf),
        lambda event: None,
        1,
        lambda epoch: Step({"train_loss": 1.0}),
        end_epoch=lambda entry: {"val_loss": next(validation)},
        early_stopping=EarlyStopping(torch.nn.Linear(1, 1), patience=2, start=0.5),
    )
    # stale from epoch 3 on, but the loop may stop only once half the epochs are done
    assert (fitted["epochs"], fitted["stopped"]) == (5, "early_stopping")


def test_progress_says_the_share_done_and_never_goes_back():
    shares = []
    run_epochs(FitConfig(epochs=4, max_time=math.inf), TimeBudget(math.inf),
               lambda event: shares.append(event["done"]), 5,
               lambda epoch: Step({}))  # fmt: skip
    assert shares == sorted(shares) and shares[-1] == 1.0 and len(shares) == 4 * 5 + 4


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_a_part_of_a_training_gets_its_share_of_max_time_less_what_was_spent(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(loop, "time", clock)
    budget = TimeBudget(60.0)
    clock.now += 5.0  # reading and encoding
    assert budget.part(0.25) == 10.0  # the sessions' model: a quarter, less the 5 s spent
    clock.now += 20.0
    assert budget.part(1.0) == 35.0  # the steps' model: the rest
    clock.now += 40.0
    assert budget.part(1.0) == loop.MIN_PART_SECONDS  # never nothing
    assert budget.used() == 65.0 / 60.0 and budget.remaining() == -5.0


def test_the_steps_that_fit_leave_one_spare(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(loop, "time", clock)
    budget = TimeBudget(10.0)
    clock.now += 2.0
    assert budget.steps_fitting(0.5) == 15  # 8 s left: 16 steps, one spare
    assert budget.steps_fitting(0.5, margin=0.5) == 7
