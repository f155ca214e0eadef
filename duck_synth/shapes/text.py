"""Free-text columns of a table: one character model each (models/text.py).

The main network learns a text column as NULL or a length bucket (encoding/text.py); each text
column also gets a training part of its own, ``text.<column>``, whose model reads the row's
tokens (every column the main network learns). At generation the main network draws a batch's
rows first, then each text model writes the texts of those rows, so a WHERE on the other
columns conditions the text too.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from ..encoding import NULL_TOKEN, Encoder, Protection, TextEncoder
from ..models.base import SampleConfig
from ..models.text import TextModel
from .base import Loaded, TrainingPart, modelled, tokens

PART_PREFIX = "text."
TEXTS_SHARE = 0.4  # of max_time, for the text models together (fitted before the main network)


def text_parts(
    encoders: list[Encoder], table: pa.Table, protection: Protection
) -> list[TrainingPart]:
    """One training part per text column: its model and its rows (tokens, characters)."""
    texts = [e for e in encoders if isinstance(e, TextEncoder)]
    if not texts:
        return []
    context = tokens(encoders, table)
    vocab = [e.n_tokens for e in modelled(encoders)]
    parts = []
    for i, encoder in enumerate(texts):
        values = table.column(encoder.name).combine_chunks()
        present = np.asarray(values.is_valid().to_numpy(zero_copy_only=False))
        strings = values.drop_null().to_pylist()
        salt = protection.rng.bytes(16).hex()  # from the seed: the same training, the same model
        k = protection.rare_threshold
        model = TextModel.build(vocab, strings, encoder.max_length, k, salt)
        data = (context[present], model.encode(strings))
        share = TEXTS_SHARE * (i + 1) / len(texts)
        parts.append(TrainingPart(PART_PREFIX + encoder.name, model, data, share, bool(strings)))
    return parts


def stored_texts(params: dict[str, dict]) -> dict:
    """What the model's statistics keep of the text parts: each one's parameters."""
    texts = {k.removeprefix(PART_PREFIX): v for k, v in params.items() if k.startswith(PART_PREFIX)}
    return {"texts": texts} if texts else {}


def main_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The main network's tensors (a model without text columns has only those)."""
    return {k: v for k, v in tensors.items() if not k.startswith(PART_PREFIX)}


def load_texts(statistics: dict, tensors: dict[str, torch.Tensor]) -> dict[str, TextModel]:
    """The stored text models by column (none in a model without text columns)."""
    texts = {}
    for name, params in statistics.get("texts", {}).items():
        prefix = f"{PART_PREFIX}{name}."
        own = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        texts[name] = TextModel.restore(params, own)
    return texts


def draw_texts(
    loaded: Loaded,
    drawn: np.ndarray,
    columns: dict[str, pa.Array],
    generator: torch.Generator,
    config: SampleConfig,
    given: set[str],
) -> None:
    """Write each text column of the rows the main network drew (``drawn``: their tokens),
    except columns ``given`` (seed rows); NULL where the main network drew NULL."""
    position = {loaded.encoders[i].name: pos for pos, i in enumerate(loaded.modelled)}
    for name, model in loaded.texts.items():
        if name in given:
            continue
        present = drawn[:, position[name]] != NULL_TOKEN
        out = np.full(len(drawn), None, dtype=object)
        if present.any():
            written = model.sample(drawn[present], config, generator)
            out[np.flatnonzero(present)] = np.array(written, dtype=object)
        columns[name] = pa.array(out.tolist(), type=pa.string())
