"""One field of an untrusted model record (model_schema.py), checked: its JSON kind, its bounds,
and the message naming it. Every check raises ``Refused`` with the field's path, which the
caller turns into one line for the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import SynthError

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


class Refused(Exception):
    """A field's problem: ``path`` names the field, the message says what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def typed(value: Any, kind: type, path: str) -> Any:
    # bool is an int to Python; no field here means either by the other
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Refused(path, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, got {shown(value)}")
    return value


_KIND_NAMES = {dict: "a JSON object", list: "a JSON list", str: "text", int: "an integer",
               bool: "true or false"}  # fmt: skip


def object_with(
    value: Any, path: str, required: tuple[str, ...], only: tuple[str, ...] = ()
) -> None:
    typed(value, dict, path)
    for key in required:
        if key not in value:
            raise Refused(path, f"missing {shown(key)}")
    for key in value if only else ():
        if key not in only:
            raise Refused(path, f"unknown field {shown(key)}")


def listed(value: Any, path: str, longest: int) -> list:
    typed(value, list, path)
    if len(value) > longest:
        raise Refused(path, f"{len(value):,} entries (limit {longest:,})")
    return value


def integer(value: Any, path: str, low: int, high: int | None) -> int:
    typed(value, int, path)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise Refused(path, f"must be {bounds}, got {shown(value)}")
    return value


def number(value: Any, path: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Refused(path, f"must be a number, got {shown(value)}")
    return value


def numbers(value: Any, path: str, longest: int, exactly: bool = False) -> list:
    listed(value, path, longest)
    if exactly and len(value) != longest:
        raise Refused(path, f"needs {longest} numbers, got {len(value)}")
    for i, item in enumerate(value):
        number(item, f"{path}[{i}]")
    return value


def permutation(value: Any, path: str, allowed: Iterable[int], partial: bool = False) -> None:
    """Distinct column indexes from ``allowed``: all of them unless ``partial``."""
    allowed = list(allowed)
    listed(value, path, len(allowed))
    for i, item in enumerate(value):
        typed(item, int, f"{path}[{i}]")
    if len(set(value)) != len(value) or not set(value) <= set(allowed):
        raise Refused(path, f"must be distinct columns among {allowed[0] if allowed else 0}..")
    if not partial and len(value) != len(allowed):
        raise Refused(path, f"must order all {len(allowed)} columns")


def duck_type_at(value: Any, path: str) -> str:
    from .sqltext import duck_type

    try:
        return duck_type(value)
    except SynthError as error:
        raise Refused(path, str(error)) from None


def shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
