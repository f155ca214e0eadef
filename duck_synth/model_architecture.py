"""The tensors a model's declared architecture needs, checked against its stored weights.

The declared networks (``statistics.model``, a session model's ``step_model``) are built on
torch's ``meta`` device, which allocates nothing, or their tensors computed; each is checked
under the size limits before anything is restored, then compared with the safetensors header.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .model_fields import (
    MAX_COLUMNS,
    MAX_MODES,
    MAX_PAC,
    MAX_SESSION_LENGTH,
    MAX_TENSOR_BYTES,
    MAX_TOKENS,
    MAX_WIDTH,
    Refused,
    integer,
    listed,
    number,
    numbers,
    object_with,
    permutation,
    shown,
    typed,
)
from .safetensors_header import DTYPE_BYTES

TORCH_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
Expected = dict[str, tuple[list[int], str]]  # tensor name -> (shape, safetensors dtype)


def declared_tensors(
    method: str, statistics: dict, encoders: list[dict], n_tokens: list[int]
) -> tuple[Expected, int]:
    """(the tensors the model stores, bytes its networks take once restored) as declared."""
    from .models.steps import StepSpace
    from .sessions import LENGTH

    params = statistics.get("model")
    modelled = [n for n in n_tokens if n > 0]
    sessions = statistics.get("sessions")
    step_vocab = [] if sessions is None else _modelled(sessions["step_encoders"])
    if method == "timegan":  # one network; the length comes from its stop flags
        vocab = {
            "attribute_vocab": [
                n for e, n in zip(encoders, n_tokens, strict=True) if n > 0 and e["name"] != LENGTH
            ],
            "step_vocab": step_vocab,
        }
        return _timegan(params, "statistics.model", vocab)
    # a database's child table: its parent's columns come first, always given
    context = integer(statistics.get("context", 0), "statistics.context", 0, len(modelled))
    expected, built = _network(method, params, "statistics.model", modelled, context=context)
    if sessions is not None and "step_model" in sessions:
        space = StepSpace(modelled, step_vocab, sessions["lags"])
        path = "statistics.sessions.step_model"
        steps, step_built = _network(
            method, sessions["step_model"], path, space.vocab_sizes(), space.context
        )
        expected |= {f"steps.{name}": spec for name, spec in steps.items()}
        built += step_built
    return expected, built


def _modelled(specs: list[dict]) -> list[int]:
    """Token counts of the encoders a network learns (checked already)."""
    from .encoding import from_json

    return [n for n in (from_json(spec).n_tokens for spec in specs) if n > 0]


def _network(
    method: str, params: Any, path: str, vocab: list[int], context: int
) -> tuple[Expected, int]:
    if method == "autoregressive":
        return _autoregressive(params, path, vocab, context)
    if method == "tabgan":
        return _tabgan(params, path, vocab)
    return _privbayes(params, path, vocab)


def _vocab(params: dict, key: str, path: str, declared: list[int]) -> list[int]:
    sizes = listed(params.get(key), f"{path}.{key}", MAX_COLUMNS)
    for i, size in enumerate(sizes):
        integer(size, f"{path}.{key}[{i}]", 1, MAX_TOKENS)
    if sizes != declared:  # tokens index the encoders' values: they must agree
        raise Refused(f"{path}.{key}", f"{sizes} does not match the encoders' tokens {declared}")
    return sizes


def _autoregressive(params: Any, path: str, vocab: list[int], context: int) -> tuple[Expected, int]:
    keys = ("vocab_sizes", "emb_dim", "hidden", "dropout", "order", "context")
    object_with(params, path, required=("vocab_sizes",), only=keys)  # AutoregressiveModel(**params)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    emb = integer(params.get("emb_dim", 16), f"{path}.emb_dim", 1, MAX_WIDTH)
    hidden = integer(params.get("hidden", 64), f"{path}.hidden", 1, MAX_WIDTH)
    dropout = number(params.get("dropout", 0.1), f"{path}.dropout")
    if not 0 <= dropout < 1:
        raise Refused(f"{path}.dropout", f"must be in [0, 1), got {dropout}")
    given = integer(params.get("context", 0), f"{path}.context", 0, len(sizes))
    if given != context:
        raise Refused(f"{path}.context", f"must be {context}, got {given}")
    if "order" in params:
        permutation(params["order"], f"{path}.order", range(context, len(sizes)))
    # ColumnNets' tensors (models/autoregressive.py), computed: its constructor reads its
    # buffers' values, which the meta device does not have
    n, predicted, total = len(sizes), len(sizes) - context, sum(v + 1 for v in sizes)
    expected: Expected = {
        "offsets": ([n], "I64"),
        "mask_tokens": ([n], "I64"),
        "token_column": ([total], "I64"),
        "positions": ([total], "F32"),
        "embed.weight": ([total, emb], "F32"),
        "directions": ([n, emb], "F32"),
        "w1": ([predicted, n * emb, hidden], "F32"),
        "b1": ([predicted, hidden], "F32"),
        "w2": ([predicted, hidden, hidden], "F32"),
        "b2": ([predicted, hidden], "F32"),
        "shifts": ([predicted, hidden, 2], "F32"),
    }
    for k, size in enumerate(sizes[context:]):
        expected[f"heads.{k}.weight"] = ([size, hidden], "F32")
        expected[f"heads.{k}.bias"] = ([size], "F32")
    return expected, _sizes(expected, path)


def _tabgan(params: Any, path: str, vocab: list[int]) -> tuple[Expected, int]:
    from .models.tabgan import TabGanModel

    keys = ("vocab_sizes", "spans", "columns", "frequencies", "pac")
    object_with(params, path, required=("vocab_sizes", "columns", "frequencies"), only=keys)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    columns = listed(params["columns"], f"{path}.columns", len(sizes))
    if len(columns) != len(sizes):
        raise Refused(f"{path}.columns", f"needs {len(sizes)} columns, got {len(columns)}")
    for i, (column, size) in enumerate(zip(columns, sizes, strict=True)):
        _token_column(column, f"{path}.columns[{i}]", size)
    discrete = [s for c, s in zip(columns, sizes, strict=True) if c.get("modes") is None]
    frequencies = listed(params["frequencies"], f"{path}.frequencies", len(discrete))
    if len(frequencies) != len(discrete):
        raise Refused(
            f"{path}.frequencies", f"needs {len(discrete)} lists, one per discrete column"
        )
    for i, (shares, size) in enumerate(zip(frequencies, discrete, strict=True)):
        numbers(shares, f"{path}.frequencies[{i}]", size, exactly=True)
    integer(params.get("pac", 10), f"{path}.pac", 1, MAX_PAC)
    with torch.device("meta"):
        model = TabGanModel(**params)
    state = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
    return _shapes(state), _module_bytes(path, model.generator, model.critic)


def _timegan(params: Any, path: str, vocab: dict[str, list[int]]) -> tuple[Expected, int]:
    from .models.timegan import TimeGanModel

    keys = ("attribute_vocab", "step_vocab", "max_length", "attribute_spans", "step_spans",
            "attributes", "steps")  # fmt: skip
    object_with(params, path, required=("attribute_vocab", "step_vocab", "max_length", "attributes",
                                  "steps"), only=keys)  # fmt: skip
    integer(params["max_length"], f"{path}.max_length", 1, MAX_SESSION_LENGTH)
    for key, part, step in (
        ("attribute_vocab", "attributes", False),
        ("step_vocab", "steps", True),
    ):
        sizes = _vocab(params, key, path, vocab[key])
        columns = listed(params[part], f"{path}.{part}", len(sizes))
        if len(columns) != len(sizes):
            raise Refused(f"{path}.{part}", f"needs {len(sizes)} columns, got {len(columns)}")
        for i, (column, size) in enumerate(zip(columns, sizes, strict=True)):
            _token_column(column, f"{path}.{part}[{i}]", size, step=step)
    with torch.device("meta"):
        model = TimeGanModel(**params)
    state = model.generator.state_dict()
    built = _module_bytes(path, model.generator, model.critic, model.aux_critic)
    return _shapes(state), built


def _token_column(column: Any, path: str, vocab: int, step: bool = False) -> None:
    """gan.TokenColumn's (or timegan.StepColumn's) JSON, for a column of ``vocab`` tokens."""
    keys = ("vocab", "spans", "low", "high", "has_null") if step else (
        "vocab", "spans", "modes", "scale", "has_null")  # fmt: skip
    object_with(column, path, required=("vocab",), only=keys)
    if integer(column["vocab"], f"{path}.vocab", 1, MAX_TOKENS) != vocab:
        raise Refused(f"{path}.vocab", f"must be {vocab}, got {column['vocab']}")
    if column.get("spans") is not None:
        spans = listed(column["spans"], f"{path}.spans", vocab)
        if len(spans) != vocab:
            raise Refused(f"{path}.spans", f"needs {vocab} [low, high] pairs, got {len(spans)}")
        for i, span in enumerate(spans):
            numbers(span, f"{path}.spans[{i}]", 2, exactly=True)
    if "has_null" in column:
        typed(column["has_null"], bool, f"{path}.has_null")
    if step:
        for key in ("low", "high"):
            number(column.get(key, 0.0), f"{path}.{key}")
        return
    if column.get("modes") is not None:
        if column.get("spans") is None:
            raise Refused(f"{path}.modes", "a continuous column needs spans")
        modes = listed(column["modes"], f"{path}.modes", MAX_MODES)
        if not modes:
            raise Refused(f"{path}.modes", "needs at least one mode")
        for i, mode in enumerate(modes):
            numbers(mode, f"{path}.modes[{i}]", 3, exactly=True)
    if column.get("scale") is not None:
        numbers(column["scale"], f"{path}.scale", 2, exactly=True)


def _privbayes(params: Any, path: str, vocab: list[int]) -> tuple[Expected, int]:
    keys = ("vocab_sizes", "positions", "context", "n_parents", "sample_parents", "order",
            "parents", "levels")  # fmt: skip
    object_with(params, path, required=("vocab_sizes", "order", "parents"), only=keys)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    n = len(sizes)
    integer(params.get("n_parents", 3), f"{path}.n_parents", 1, MAX_COLUMNS)
    if params.get("sample_parents") is not None:
        integer(params["sample_parents"], f"{path}.sample_parents", 1, None)
    permutation(params["order"], f"{path}.order", range(n), partial=True)
    parents = listed(params["parents"], f"{path}.parents", n)
    if params["order"] and len(parents) != n:
        raise Refused(f"{path}.parents", f"needs {n} lists, one per column, got {len(parents)}")
    levels = listed(params.get("levels", []), f"{path}.levels", n)
    expected: Expected = {}
    for c in range(n):
        own = parents[c] if c < len(parents) else []
        permutation(own, f"{path}.parents[{c}]", [p for p in range(n) if p != c], partial=True)
        if c < len(levels):
            counts = listed(levels[c], f"{path}.levels[{c}]", len(own))
            if len(counts) != len(own):
                raise Refused(f"{path}.levels[{c}]", f"needs {len(own)} levels, one per parent")
            for i, (count, p) in enumerate(zip(counts, own, strict=True)):
                integer(count, f"{path}.levels[{c}][{i}]", 1, sizes[p])
        else:
            counts = [sizes[p] for p in own]
        expected[f"table.{c}"] = ([math.prod(counts), sizes[c]], "F32")
    # restore keeps each table as float64: twice the stored bytes
    return expected, 2 * _sizes(expected, path)


def _shapes(state: dict[str, torch.Tensor]) -> Expected:
    return {k: (list(v.shape), TORCH_DTYPES.get(v.dtype, str(v.dtype))) for k, v in state.items()}


def _sizes(expected: Expected, path: str) -> int:
    """Total bytes of ``expected``; refused when one tensor is over the limit."""
    total = 0
    for name, (shape, dtype) in expected.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        if size > MAX_TENSOR_BYTES:
            raise Refused(
                path, f"tensor '{name}' would take {size:,} bytes (limit {MAX_TENSOR_BYTES:,})"
            )
        total += size
    return total


def _module_bytes(path: str, *modules: torch.nn.Module) -> int:
    expected = {}
    for i, module in enumerate(modules):
        expected |= {f"{i}.{k}": v for k, v in _shapes(module.state_dict()).items()}
    return _sizes(expected, path)


def check_weights(found: dict[str, dict], expected: Expected) -> None:
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    if missing:
        raise Refused("weights", f"missing tensor {shown(min(missing))}")
    if unexpected:
        raise Refused("weights", f"unexpected tensor {shown(min(unexpected))}")
    for name, (shape, dtype) in expected.items():
        have = found[name]
        if have["shape"] != shape:
            raise Refused(
                "weights",
                f"tensor '{name}' has shape {have['shape']}; the declared architecture needs {shape}",
            )
        if have["dtype"] != dtype:
            raise Refused("weights", f"tensor '{name}' is {have['dtype']}, not {dtype}")
