"""Data shapes as strategies: a table, sessions by two networks, sessions by one (joint).

Each shape owns its training plan, its loading and its sampler behind one interface
(``Shape``, shapes/base.py). ``for_training`` chooses the shape of a training from its method
and options, ``for_record`` the shape of a stored model; both ask the registered shapes in
order, so a shape registered with ``register`` (a plugin, a test) is asked first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..catalog import ModelRecord
from ..errors import SynthError
from ..options import TrainOptions
from .base import Loaded, Shape, Training, TrainingPart, TrainingPlan
from .joint import JointSessionShape
from .rows import RowSampler
from .sessions import SessionShape
from .table import TableShape

BUILT_IN: tuple[Shape, ...] = (JointSessionShape(), SessionShape(), TableShape())
registered: list[Shape] = list(BUILT_IN)


def for_training(method: str, options: TrainOptions) -> Shape:
    """The shape a training of ``method`` with ``options`` has (its options checked)."""
    for shape in registered:
        if shape.claims(method, options):
            shape.check(method, options)
            return shape
    raise SynthError(f"train(): no data shape takes method '{method}' with these options")


def for_record(record: ModelRecord) -> Shape:
    """The shape of a stored model."""
    for shape in registered:
        if shape.owns(record):
            return shape
    raise SynthError(f"model '{record.name}': this version cannot tell how its data is shaped")


def register(shape: Shape) -> None:
    """Ask ``shape`` before the shapes registered so far."""
    registered.insert(0, shape)


def unregister(shape: Shape) -> None:
    registered.remove(shape)


@contextmanager
def registered_shape(shape: Shape) -> Iterator[Shape]:
    """``shape`` registered for the duration of a ``with`` block."""
    register(shape)
    try:
        yield shape
    finally:
        unregister(shape)


__all__ = [
    "Loaded",
    "RowSampler",
    "Shape",
    "Training",
    "TrainingPart",
    "TrainingPlan",
    "for_record",
    "for_training",
    "register",
    "registered_shape",
    "unregister",
]
