"""Generative methods behind one interface (models/base.py). Models see tokens, never DuckDB."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SynthError
from .autoregressive import AutoregressiveModel
from .base import GenerativeModel
from .privbayes import PrivBayesModel
from .tabgan import TabGanModel
from .timegan import TimeGanModel

METHODS: dict[str, type[GenerativeModel] | type[TimeGanModel]] = {
    m.method: m for m in (AutoregressiveModel, TabGanModel, TimeGanModel, PrivBayesModel)
}
NOT_YET = {
    "transformer": "our autoregressive method is not attention-based; use method => 'autoregressive'",
}


def choose_method(method: str) -> str:
    """The method asked for, checked ('auto' is chosen from the data: recommend.py)."""
    if method == "auto" or method in METHODS:
        return method
    if method in NOT_YET:
        raise SynthError(f"method '{method}': {NOT_YET[method]}")
    raise SynthError(f"unknown method '{method}' (available: auto, {', '.join(METHODS)})")


def default_epochs(method: str) -> int:
    """Epochs when train() is given none (max_time still bounds the run)."""
    return METHODS[method].default_epochs


def create_model(
    method: str,
    vocab_sizes: list[int],
    positions: list[np.ndarray | None],
    spans: list[np.ndarray | None],
    context: int = 0,
    **hyper,
) -> GenerativeModel:
    """A fresh model for columns of ``vocab_sizes`` tokens. Ordered columns' tokens have a
    place (Encoder.token_positions, what the autoregressive model embeds) and a span of values
    (Encoder.token_spans, what the GAN learns); the first ``context`` columns are only given."""
    if method == TabGanModel.method:
        return TabGanModel(vocab_sizes, spans=spans)
    if method == PrivBayesModel.method:
        return PrivBayesModel(vocab_sizes, **hyper)
    return METHODS[method](vocab_sizes, positions=positions, context=context)


def restore_model(
    method: str, params: dict, tensors: dict[str, torch.Tensor]
) -> GenerativeModel | TimeGanModel:
    if method not in METHODS:
        raise SynthError(
            f"this model was trained with method '{method}', which this version cannot load"
        )
    return METHODS[method].restore(params, tensors)
