"""Model records are untrusted data, checked where they come in.

A model file (import_model) or a row of ``synth.models`` (which anyone with write access can
UPDATE) is read as data: every field the code later reads is checked here first, once per load,
so a crafted record fails with one line naming its field instead of reaching SQL text (column
types are pasted into queries), a huge allocation (sizes build tensors) or a raw Python error.

Checks run from cheap to costly: the JSON's shapes and kinds; sizes under the limits below;
then the tensors the declared architecture needs (built on torch's ``meta`` device, which
allocates nothing, or computed) against the names, shapes and dtypes in the safetensors header,
which is parsed without loading any tensor.
"""

from __future__ import annotations

import json
import math
import struct
from typing import TYPE_CHECKING, Any

import torch

from .errors import SynthError

if TYPE_CHECKING:  # catalog imports this module when it loads a model
    from .catalog import ModelRecord

# Limits: far above what training produces (hidden 64, embeddings 16, categories 2,000 by
# default), far below what would exhaust a machine.
MAX_WIDTH = 4096  # hidden and embedding sizes
MAX_COLUMNS = 4096  # columns of a model, and of each of its networks
MAX_TOKENS = 1 << 22  # tokens of one column
MAX_MODES = 64  # mixture modes of one GAN column
MAX_PAC = 64  # rows per critic pack
MAX_SESSION_LENGTH = 1_000_000
MAX_LAGS = 64
MAX_KEY_LENGTH = 4096  # characters of a generated key
MAX_DECIMALS = 64
MAX_TENSOR_BYTES = 2 << 30  # any one tensor, stored or built at restore
MAX_WEIGHTS_BYTES = 8 << 30  # all tensors a model stores, or builds at restore
MAX_HEADER_BYTES = 100 << 20  # a safetensors header (safetensors' own limit)

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1}  # fmt: skip
TORCH_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
COLUMN_KINDS_OF_SESSIONS = ("session_key", "order")
RECORD_FIELDS = {
    "name": str,
    "method": str,
    "source": str,
    "options": dict,
    "columns": list,
    "statistics": dict,
    "metrics": dict,
    "training_rows": int,
    "format_version": int,
}


class _Refused(Exception):
    """A field's problem: ``path`` names the field, the message says what is wrong."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")


def check_model(record: ModelRecord, where: str, tensors: bool = True) -> None:
    """Refuse a ``catalog.ModelRecord`` that this code could not use safely.

    ``where`` starts the message (``import_model()``, ``model 'd@2'``); ``tensors=False``
    skips the weights (a load without them). Raises SynthError with one line such as
    ``import_model(): columns[0].type: not a DuckDB type: 'DOUBLE) AS x, (SELECT ...'``.
    """
    try:
        _check(record, tensors)
    except _Refused as refused:
        raise SynthError(f"{where}: {refused}") from None


def read_header(data: bytes) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensors by name: dtype and shape; metadata) of safetensors bytes, read from the
    header alone. Raises SynthError when the bytes are not a well-formed safetensors file."""
    try:
        return _header(data)
    except _Refused as refused:
        raise SynthError(str(refused)) from None


# -- the record ------------------------------------------------------------------------------
def _check(record: ModelRecord, tensors: bool) -> None:
    from .catalog import FORMAT_VERSION, MODEL_NAME
    from .models import METHODS

    for field, kind in RECORD_FIELDS.items():
        _typed(getattr(record, field), kind, field)
    if record.format_version != FORMAT_VERSION:
        newer = "; upgrade duck_synth" if record.format_version > FORMAT_VERSION else ""
        raise _Refused(
            "format_version",
            f"{record.format_version} is not a format this duck_synth reads "
            f"(it reads {FORMAT_VERSION}){newer}",
        )
    if record.method not in METHODS:
        raise _Refused(
            "method", f"unknown method {_shown(record.method)} (known: {', '.join(METHODS)})"
        )
    if not MODEL_NAME.match(record.name):
        raise _Refused("name", f"must be letters, digits, _ . -, got {_shown(record.name)}")
    if record.training_rows < 0:
        raise _Refused("training_rows", f"must not be negative, got {record.training_rows}")
    _check_options(record.options)
    _typed(record.statistics.get("facts", {}), dict, "statistics.facts")
    for column, facts in record.statistics.get("facts", {}).items():
        _typed(facts, dict, f"statistics.facts.{column}")
    encoders = _list(record.statistics.get("encoders"), "statistics.encoders", MAX_COLUMNS)
    n_tokens = [_encoder(e, f"statistics.encoders[{i}]") for i, e in enumerate(encoders)]
    sessions = record.statistics.get("sessions")
    session_names = _check_sessions(sessions) if sessions is not None else None
    _check_columns(record.columns, [e["name"] for e in encoders], session_names)
    if record.method == "timegan" and sessions is None:
        raise _Refused("statistics.sessions", "method timegan models sessions; none described")
    expected, built = _architecture(record.method, record.statistics, encoders, n_tokens)
    if built > MAX_WEIGHTS_BYTES:
        raise _Refused(
            "statistics.model",
            f"the declared networks need {built:,} bytes (limit {MAX_WEIGHTS_BYTES:,})",
        )
    if tensors:
        _compare(_header(record.weights)[0], expected)


def _check_options(options: dict) -> None:
    """The options the code reads back: a model's constraints become predicates of every
    generate() call, so each must be one expression, and none may read data (no subquery)."""
    from sqlglot import exp

    from .sqltext import predicate

    constraints = options.get("constraints")
    if constraints is None:
        return
    for i, text in enumerate(_list(constraints, "options.constraints", MAX_COLUMNS)):
        path = f"options.constraints[{i}]"
        _typed(text, str, path)
        try:
            tree = predicate(None, text, path)
        except SynthError as error:
            raise _Refused(path, str(error).removeprefix(f"{path}: ")) from None
        if tree.find(exp.Select, exp.Subquery, exp.Table) is not None:
            raise _Refused(path, f"a constraint may not query tables: {_shown(text)}")


def _check_columns(columns: list, encoder_names: list[str], session_names: set[str] | None) -> None:
    from .encoding import ENCODERS

    _list(columns, "columns", MAX_COLUMNS)
    kinds = set(ENCODERS) | (set(COLUMN_KINDS_OF_SESSIONS) if session_names is not None else set())
    for i, column in enumerate(columns):
        path = f"columns[{i}]"
        _keys(column, path, required=("name", "type", "kind"))
        _typed(column["name"], str, f"{path}.name")
        _duck_type(column["type"], f"{path}.type")
        if column["kind"] not in kinds:
            raise _Refused(f"{path}.kind", f"unknown kind {_shown(column['kind'])}")
    names = [c["name"] for c in columns]
    if len(set(names)) != len(names):
        raise _Refused("columns", "two columns have the same name")
    if session_names is None and names != encoder_names:
        # describe and generate pair each column with its encoder, in order
        raise _Refused("columns", "the columns must be the encoders' columns, in order")
    if session_names is not None and set(names) != session_names:
        raise _Refused("columns", "the columns must be the session layout's columns")


def _encoder(spec: Any, path: str) -> int:
    """The encoder's token count, once its JSON holds what its kind reads."""
    from .encoding import ENCODERS, from_json

    _keys(spec, path, required=("kind", "name", "type", "stats"))
    if spec["kind"] not in ENCODERS:
        raise _Refused(
            f"{path}.kind",
            f"unknown encoder kind {_shown(spec['kind'])} (known: {', '.join(sorted(ENCODERS))})",
        )
    _typed(spec["name"], str, f"{path}.name")
    _duck_type(spec["type"], f"{path}.type")
    stats, at = spec["stats"], f"{path}.stats"
    _typed(stats, dict, at)
    _number(stats.get("null_share", 0.0), f"{at}.null_share")
    kind = spec["kind"]
    if kind == "categorical":
        for value in _list(stats.get("categories"), f"{at}.categories", MAX_TOKENS - 2):
            if isinstance(value, dict | list):
                raise _Refused(f"{at}.categories", "categories must be single values")
        _number(stats.get("rare_share"), f"{at}.rare_share")
        if "counts" in stats:
            _numbers(stats["counts"], f"{at}.counts", len(stats["categories"]))
    elif kind in ("numeric", "datetime"):
        _typed(stats.get("integer"), bool, f"{at}.integer")
        _int(stats.get("decimals"), f"{at}.decimals", -MAX_DECIMALS, MAX_DECIMALS)
        _number(stats.get("low"), f"{at}.low")
        _number(stats.get("high"), f"{at}.high")
        _numbers(stats.get("points"), f"{at}.points", MAX_TOKENS // 2)
        _numbers(stats.get("edges"), f"{at}.edges", MAX_TOKENS // 2)
        for optional in ("point_counts", "quantiles"):
            if stats.get(optional) is not None:
                _numbers(stats[optional], f"{at}.{optional}", MAX_TOKENS)
    elif kind == "constant":
        if isinstance(stats.get("value"), dict | list):
            raise _Refused(f"{at}.value", "must be a single value")
    elif kind == "key":
        _int(stats.get("length"), f"{at}.length", 1, MAX_KEY_LENGTH)
    return from_json(spec).n_tokens


def _check_sessions(spec: Any) -> set[str]:
    """A session model's description; returns its output columns' names."""
    path = "statistics.sessions"
    _keys(spec, path, required=("layout", "step_encoders", "steps"))
    layout, at = spec["layout"], f"{path}.layout"
    fields = ("key", "order_by", "order_type", "metadata", "measurements", "columns")
    _keys(layout, at, required=fields, only=fields)  # SessionLayout(**layout)
    for name in ("key", "order_by"):
        _typed(layout[name], str, f"{at}.{name}")
    _duck_type(layout["order_type"], f"{at}.order_type")
    for name in ("metadata", "measurements"):
        for i, column in enumerate(_list(layout[name], f"{at}.{name}", MAX_COLUMNS)):
            _typed(column, str, f"{at}.{name}[{i}]")
    for i, pair in enumerate(_list(layout["columns"], f"{at}.columns", MAX_COLUMNS)):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _Refused(f"{at}.columns[{i}]", "must be [name, type]")
        _typed(pair[0], str, f"{at}.columns[{i}][0]")
        _duck_type(pair[1], f"{at}.columns[{i}][1]")
    steps = _list(spec["step_encoders"], f"{path}.step_encoders", MAX_COLUMNS)
    for i, encoder in enumerate(steps):
        _encoder(encoder, f"{path}.step_encoders[{i}]")
    _int(spec["steps"], f"{path}.steps", 0, None)
    if "step_model" in spec:
        _int(spec.get("lags"), f"{path}.lags", 0, MAX_LAGS)
    return {pair[0] for pair in layout["columns"]}


# -- architectures ---------------------------------------------------------------------------
Expected = dict[str, tuple[list[int], str]]  # tensor name -> (shape, safetensors dtype)


def _architecture(
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
    expected, built = _network(method, params, "statistics.model", modelled, context=0)
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
    sizes = _list(params.get(key), f"{path}.{key}", MAX_COLUMNS)
    for i, size in enumerate(sizes):
        _int(size, f"{path}.{key}[{i}]", 1, MAX_TOKENS)
    if sizes != declared:  # tokens index the encoders' values: they must agree
        raise _Refused(f"{path}.{key}", f"{sizes} does not match the encoders' tokens {declared}")
    return sizes


def _autoregressive(params: Any, path: str, vocab: list[int], context: int) -> tuple[Expected, int]:
    keys = ("vocab_sizes", "emb_dim", "hidden", "dropout", "order", "context")
    _keys(params, path, required=("vocab_sizes",), only=keys)  # AutoregressiveModel(**params)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    emb = _int(params.get("emb_dim", 16), f"{path}.emb_dim", 1, MAX_WIDTH)
    hidden = _int(params.get("hidden", 64), f"{path}.hidden", 1, MAX_WIDTH)
    dropout = _number(params.get("dropout", 0.1), f"{path}.dropout")
    if not 0 <= dropout < 1:
        raise _Refused(f"{path}.dropout", f"must be in [0, 1), got {dropout}")
    given = _int(params.get("context", 0), f"{path}.context", 0, len(sizes))
    if given != context:
        raise _Refused(f"{path}.context", f"must be {context}, got {given}")
    if "order" in params:
        _permutation(params["order"], f"{path}.order", range(context, len(sizes)))
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
    _keys(params, path, required=("vocab_sizes", "columns", "frequencies"), only=keys)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    columns = _list(params["columns"], f"{path}.columns", len(sizes))
    if len(columns) != len(sizes):
        raise _Refused(f"{path}.columns", f"needs {len(sizes)} columns, got {len(columns)}")
    for i, (column, size) in enumerate(zip(columns, sizes, strict=True)):
        _token_column(column, f"{path}.columns[{i}]", size)
    discrete = [s for c, s in zip(columns, sizes, strict=True) if c.get("modes") is None]
    frequencies = _list(params["frequencies"], f"{path}.frequencies", len(discrete))
    if len(frequencies) != len(discrete):
        raise _Refused(
            f"{path}.frequencies", f"needs {len(discrete)} lists, one per discrete column"
        )
    for i, (shares, size) in enumerate(zip(frequencies, discrete, strict=True)):
        _numbers(shares, f"{path}.frequencies[{i}]", size, exactly=True)
    _int(params.get("pac", 10), f"{path}.pac", 1, MAX_PAC)
    with torch.device("meta"):
        model = TabGanModel(**params)
    state = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
    return _shapes(state), _module_bytes(path, model.generator, model.critic)


def _timegan(params: Any, path: str, vocab: dict[str, list[int]]) -> tuple[Expected, int]:
    from .models.timegan import TimeGanModel

    keys = ("attribute_vocab", "step_vocab", "max_length", "attribute_spans", "step_spans",
            "attributes", "steps")  # fmt: skip
    _keys(params, path, required=("attribute_vocab", "step_vocab", "max_length", "attributes",
                                  "steps"), only=keys)  # fmt: skip
    _int(params["max_length"], f"{path}.max_length", 1, MAX_SESSION_LENGTH)
    for key, part, step in (
        ("attribute_vocab", "attributes", False),
        ("step_vocab", "steps", True),
    ):
        sizes = _vocab(params, key, path, vocab[key])
        columns = _list(params[part], f"{path}.{part}", len(sizes))
        if len(columns) != len(sizes):
            raise _Refused(f"{path}.{part}", f"needs {len(sizes)} columns, got {len(columns)}")
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
    _keys(column, path, required=("vocab",), only=keys)
    if _int(column["vocab"], f"{path}.vocab", 1, MAX_TOKENS) != vocab:
        raise _Refused(f"{path}.vocab", f"must be {vocab}, got {column['vocab']}")
    if column.get("spans") is not None:
        spans = _list(column["spans"], f"{path}.spans", vocab)
        if len(spans) != vocab:
            raise _Refused(f"{path}.spans", f"needs {vocab} [low, high] pairs, got {len(spans)}")
        for i, span in enumerate(spans):
            _numbers(span, f"{path}.spans[{i}]", 2, exactly=True)
    if "has_null" in column:
        _typed(column["has_null"], bool, f"{path}.has_null")
    if step:
        for key in ("low", "high"):
            _number(column.get(key, 0.0), f"{path}.{key}")
        return
    if column.get("modes") is not None:
        if column.get("spans") is None:
            raise _Refused(f"{path}.modes", "a continuous column needs spans")
        modes = _list(column["modes"], f"{path}.modes", MAX_MODES)
        if not modes:
            raise _Refused(f"{path}.modes", "needs at least one mode")
        for i, mode in enumerate(modes):
            _numbers(mode, f"{path}.modes[{i}]", 3, exactly=True)
    if column.get("scale") is not None:
        _numbers(column["scale"], f"{path}.scale", 2, exactly=True)


def _privbayes(params: Any, path: str, vocab: list[int]) -> tuple[Expected, int]:
    keys = ("vocab_sizes", "positions", "context", "n_parents", "sample_parents", "order",
            "parents", "levels")  # fmt: skip
    _keys(params, path, required=("vocab_sizes", "order", "parents"), only=keys)
    sizes = _vocab(params, "vocab_sizes", path, vocab)
    n = len(sizes)
    _int(params.get("n_parents", 3), f"{path}.n_parents", 1, MAX_COLUMNS)
    if params.get("sample_parents") is not None:
        _int(params["sample_parents"], f"{path}.sample_parents", 1, None)
    _permutation(params["order"], f"{path}.order", range(n), partial=True)
    parents = _list(params["parents"], f"{path}.parents", n)
    if params["order"] and len(parents) != n:
        raise _Refused(f"{path}.parents", f"needs {n} lists, one per column, got {len(parents)}")
    levels = _list(params.get("levels", []), f"{path}.levels", n)
    expected: Expected = {}
    for c in range(n):
        own = parents[c] if c < len(parents) else []
        _permutation(own, f"{path}.parents[{c}]", [p for p in range(n) if p != c], partial=True)
        if c < len(levels):
            counts = _list(levels[c], f"{path}.levels[{c}]", len(own))
            if len(counts) != len(own):
                raise _Refused(f"{path}.levels[{c}]", f"needs {len(own)} levels, one per parent")
            for i, (count, p) in enumerate(zip(counts, own, strict=True)):
                _int(count, f"{path}.levels[{c}][{i}]", 1, sizes[p])
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
            raise _Refused(
                path, f"tensor '{name}' would take {size:,} bytes (limit {MAX_TENSOR_BYTES:,})"
            )
        total += size
    return total


def _module_bytes(path: str, *modules: torch.nn.Module) -> int:
    expected = {}
    for i, module in enumerate(modules):
        expected |= {f"{i}.{k}": v for k, v in _shapes(module.state_dict()).items()}
    return _sizes(expected, path)


def _compare(found: dict[str, dict], expected: Expected) -> None:
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    if missing:
        raise _Refused("weights", f"missing tensor {_shown(min(missing))}")
    if unexpected:
        raise _Refused("weights", f"unexpected tensor {_shown(min(unexpected))}")
    for name, (shape, dtype) in expected.items():
        have = found[name]
        if have["shape"] != shape:
            raise _Refused(
                "weights",
                f"tensor '{name}' has shape {have['shape']}; the declared architecture needs {shape}",
            )
        if have["dtype"] != dtype:
            raise _Refused("weights", f"tensor '{name}' is {have['dtype']}, not {dtype}")


# -- safetensors header ----------------------------------------------------------------------
def _header(data: Any) -> tuple[dict[str, dict], dict[str, str]]:
    """The safetensors layout: 8 bytes of header length (little-endian), the JSON header, then
    the tensors' bytes at the header's offsets."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < 8:
        raise _Refused("weights", "not safetensors data")
    (length,) = struct.unpack("<Q", bytes(data[:8]))
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise _Refused("weights", "not safetensors data (header length)")
    try:
        header = json.loads(bytes(data[8 : 8 + length]))
    except (UnicodeDecodeError, ValueError):
        raise _Refused("weights", "not safetensors data (header is not JSON)") from None
    _typed(header, dict, "weights")
    metadata = header.pop("__metadata__", None) or {}
    _typed(metadata, dict, "weights.__metadata__")
    stored = len(data) - 8 - length
    found, total = {}, 0
    for name, entry in header.items():
        path = f"weights[{_shown(name)}]"
        _keys(entry, path, required=("dtype", "shape", "data_offsets"))
        if entry["dtype"] not in DTYPE_BYTES:
            raise _Refused(path, f"unsupported dtype {_shown(entry['dtype'])}")
        shape = _list(entry["shape"], f"{path}.shape", 8)
        for i, dim in enumerate(shape):
            _int(dim, f"{path}.shape[{i}]", 0, None)
        size = math.prod(shape) * DTYPE_BYTES[entry["dtype"]]
        if size > MAX_TENSOR_BYTES:
            raise _Refused(path, f"{size:,} bytes (limit {MAX_TENSOR_BYTES:,})")
        offsets = _list(entry["data_offsets"], f"{path}.data_offsets", 2)
        if (
            len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= stored
            or offsets[1] - offsets[0] != size
        ):
            raise _Refused(f"{path}.data_offsets", "do not match the tensor's size and the data")
        total += size
        found[name] = {"dtype": entry["dtype"], "shape": shape}
    if total > MAX_WEIGHTS_BYTES:
        raise _Refused("weights", f"{total:,} bytes (limit {MAX_WEIGHTS_BYTES:,})")
    return found, metadata


# -- JSON shapes -----------------------------------------------------------------------------
def _typed(value: Any, kind: type, path: str) -> Any:
    # bool is an int to Python; no field here means either by the other
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Refused(path, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, got {_shown(value)}")
    return value


_KIND_NAMES = {dict: "a JSON object", list: "a JSON list", str: "text", int: "an integer",
               bool: "true or false"}  # fmt: skip


def _keys(value: Any, path: str, required: tuple[str, ...], only: tuple[str, ...] = ()) -> None:
    _typed(value, dict, path)
    for key in required:
        if key not in value:
            raise _Refused(path, f"missing {_shown(key)}")
    for key in value if only else ():
        if key not in only:
            raise _Refused(path, f"unknown field {_shown(key)}")


def _list(value: Any, path: str, longest: int) -> list:
    _typed(value, list, path)
    if len(value) > longest:
        raise _Refused(path, f"{len(value):,} entries (limit {longest:,})")
    return value


def _int(value: Any, path: str, low: int, high: int | None) -> int:
    _typed(value, int, path)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise _Refused(path, f"must be {bounds}, got {_shown(value)}")
    return value


def _number(value: Any, path: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Refused(path, f"must be a number, got {_shown(value)}")
    return value


def _numbers(value: Any, path: str, longest: int, exactly: bool = False) -> list:
    _list(value, path, longest)
    if exactly and len(value) != longest:
        raise _Refused(path, f"needs {longest} numbers, got {len(value)}")
    for i, item in enumerate(value):
        _number(item, f"{path}[{i}]")
    return value


def _permutation(value: Any, path: str, allowed, partial: bool = False) -> None:
    """Distinct column indexes from ``allowed``: all of them unless ``partial``."""
    allowed = list(allowed)
    _list(value, path, len(allowed))
    for i, item in enumerate(value):
        _typed(item, int, f"{path}[{i}]")
    if len(set(value)) != len(value) or not set(value) <= set(allowed):
        raise _Refused(path, f"must be distinct columns among {allowed[0] if allowed else 0}..")
    if not partial and len(value) != len(allowed):
        raise _Refused(path, f"must order all {len(allowed)} columns")


def _duck_type(value: Any, path: str) -> str:
    from .sqltext import duck_type

    try:
        return duck_type(value)
    except SynthError as error:
        raise _Refused(path, str(error)) from None


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
