"""The tensors a model's text columns need (models/text.py), checked like its main network's
(model_architecture.py) before anything is restored."""

from __future__ import annotations

from typing import Any

from .model_fields import (
    MAX_COLUMNS,
    MAX_TOKENS,
    MAX_WIDTH,
    Refused,
    integer,
    listed,
    number,
    object_with,
    typed,
)

Expected = dict[str, tuple[list[int], str]]  # tensor name -> (shape, safetensors dtype)
TEXT_KEYS = ("context_vocab", "alphabet", "max_length", "salt", "ngram", "emb_dim", "hidden",
             "noise", "hashes")  # fmt: skip
MAX_TEXT_LENGTH = 100_000
MAX_HASHES = 1 << 28


def text_tensors(statistics: dict, encoders: list[dict], modelled: list[int]) -> Expected:
    """Every text model's tensors (``text.<column>.``), its parameters checked; ``modelled``:
    the main network's token counts, which each text model reads."""
    texts = statistics.get("texts", {})
    typed(texts, dict, "statistics.texts")
    kinds = {e["name"]: e["kind"] for e in encoders}
    expected: Expected = {}
    for name, params in texts.items():
        path = f"statistics.texts.{name}"
        if kinds.get(name) != "text":
            raise Refused(path, "there is no text column of that name")
        expected |= {f"text.{name}.{k}": v for k, v in _text_model(params, path, modelled).items()}
    return expected


def _text_model(params: Any, path: str, modelled: list[int]) -> Expected:
    object_with(params, path, required=TEXT_KEYS, only=TEXT_KEYS)  # TextModel(**params)
    vocab = listed(params["context_vocab"], f"{path}.context_vocab", MAX_COLUMNS)
    if vocab != modelled:
        raise Refused(f"{path}.context_vocab", f"{vocab} does not match the encoders' tokens")
    typed(params["alphabet"], str, f"{path}.alphabet")
    codes = 4 + integer(len(params["alphabet"]), f"{path}.alphabet", 0, MAX_TOKENS)
    integer(params["max_length"], f"{path}.max_length", 1, MAX_TEXT_LENGTH)
    integer(params["ngram"], f"{path}.ngram", 1, MAX_TEXT_LENGTH)
    typed(params["salt"], str, f"{path}.salt")
    try:
        bytes.fromhex(params["salt"])
    except ValueError:
        raise Refused(f"{path}.salt", "must be hexadecimal") from None
    emb = integer(params["emb_dim"], f"{path}.emb_dim", 1, MAX_WIDTH)
    hidden = integer(params["hidden"], f"{path}.hidden", 1, MAX_WIDTH)
    if not 0 <= number(params["noise"], f"{path}.noise") < 1:
        raise Refused(f"{path}.noise", f"must be in [0, 1), got {params['noise']}")
    hashes = listed(params["hashes"], f"{path}.hashes", 2)
    if len(hashes) != 2:
        raise Refused(f"{path}.hashes", "needs two counts: rare texts and rare runs")
    for i, count in enumerate(hashes):
        integer(count, f"{path}.hashes[{i}]", 0, MAX_HASHES)
    return {  # CharNet's tensors and the hashes (models/text.py)
        "net.offsets": ([max(len(vocab), 1)], "I64"),
        "net.context.weight": ([max(sum(vocab), 1), hidden], "F32"),
        "net.chars.weight": ([codes, emb], "F32"),
        "net.rnn.weight_ih_l0": ([3 * hidden, emb], "F32"),
        "net.rnn.weight_hh_l0": ([3 * hidden, hidden], "F32"),
        "net.rnn.bias_ih_l0": ([3 * hidden], "F32"),
        "net.rnn.bias_hh_l0": ([3 * hidden], "F32"),
        "net.out.weight": ([codes, hidden], "F32"),
        "net.out.bias": ([codes], "F32"),
        "rare_texts": ([hashes[0]], "I64"),
        "rare_runs": ([hashes[1]], "I64"),
    }
