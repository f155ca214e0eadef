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


def plateau_run(losses: list[float], epochs: int = 40, steps: int = 4) -> tuple[dict, list]:
    """A loop driven by a PlateauSchedule over toy epochs with the given epoch losses (the
    last repeated); (what run_epochs returned, each step's learning-rate share)."""
    schedule = loop.PlateauSchedule(steps, epochs)
    given = iter(losses)
    shares: list[float] = []

    def end_epoch(entry: dict) -> dict:
        loss = next(given, losses[-1])
        schedule.epoch_end(loss, entry["epoch"])
        return {"val_loss": loss}

    fitted = run_epochs(
        FitConfig(epochs=epochs, max_time=math.inf),
        TimeBudget(math.inf),
        lambda event: None,
        steps,
        lambda epoch: Step({"train_loss": 1.0}),
        after_step=lambda done: shares.append(schedule.share(done)),
        end_epoch=end_epoch,
        early_stopping=EarlyStopping(torch.nn.Linear(1, 1), 5, 0.5, finished=schedule.finished),
    )
    return fitted, shares


def test_a_training_that_stops_learning_decays_then_ends_long_before_its_cap():
    # 10 -> 2 by epoch 9, then flat: at epoch 12 the last 3 epochs gained nothing (under 1% of
    # the 8 gained), so a decay of max(2, 25% of 12) = 3 epochs starts and ends the training
    losses = [10 - i for i in range(8)] + [2.0]
    fitted, shares = plateau_run(losses)
    assert (fitted["epochs"], fitted["stopped"]) == (15, "plateau")
    assert shares[:4] == [0.25, 0.5, 0.75, 1.0]  # a warm-up over the first epoch
    assert set(shares[4:48]) == {1.0}  # the peak while it learns and through 3 flat epochs
    decay = shares[48:]
    assert len(decay) == 12 and decay == sorted(decay, reverse=True)
    assert math.isclose(decay[-1], 0.05)


def test_a_flattened_loss_is_judged_on_its_own_scale():
    """A loss of 1.64 gaining 0.003 an epoch is still learning; 0.0003 is flat."""
    learning = [1.83, 1.73, 1.70, 1.68, 1.67] + [1.665 - 0.003 * i for i in range(30)]
    assert plateau_run(learning, epochs=30)[0]["stopped"] == "epochs"
    flat = [1.83, 1.73, 1.70, 1.68, 1.67] + [1.665 - 0.0003 * i for i in range(30)]
    fitted, _ = plateau_run(flat, epochs=30)
    assert fitted["stopped"] == "plateau" and fitted["epochs"] < 15


def test_a_training_that_keeps_learning_decays_over_the_last_part_of_its_cap():
    fitted, shares = plateau_run([100 - i for i in range(100)], epochs=20)
    assert (fitted["epochs"], fitted["stopped"]) == (20, "epochs")
    # the budget's share (20 epochs) reaches 0.7 at step 56: the rest decays to the cap's end
    assert set(shares[4:56]) == {1.0} and shares[56] < 1.0
    assert math.isclose(shares[-1], 0.05)


def test_a_plateau_schedule_resumes_where_it_was_saved():
    schedule = loop.PlateauSchedule(4, 40)
    for _ in range(20):
        schedule.share(0.1)
    for epoch, loss in enumerate([5.0, 4.0, 4.0, 4.0, 4.0, 4.0], start=1):
        schedule.epoch_end(loss, epoch)
    copy = loop.PlateauSchedule(4, 40)
    copy.load_state_dict(schedule.state_dict())
    assert [copy.share(0.2) for _ in range(6)] == [schedule.share(0.2) for _ in range(6)]
    assert copy.finished() == schedule.finished()
