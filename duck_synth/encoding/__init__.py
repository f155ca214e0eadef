"""Analysis and encoding: the only bridge between DuckDB values and model tokens.

``analyze`` picks an encoder per column from its DuckDB type and values (or the user's override)
and fits it with value protection. Encoders serialise to JSON and back (``from_json``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SynthError
from .base import NULL_TOKEN, Encoder, Protection, Restriction
from .categorical import CategoricalEncoder
from .datetime import DatetimeEncoder
from .fixed import ConstantEncoder, KeyEncoder
from .numeric import NumericEncoder, is_integer_type
from .text import TextEncoder, looks_like_text, text_shape

ENCODERS: dict[str, type[Encoder]] = {
    e.kind: e
    for e in (
        CategoricalEncoder,
        NumericEncoder,
        DatetimeEncoder,
        ConstantEncoder,
        KeyEncoder,
        TextEncoder,
    )
}
TEXT_ONLY_IN_TABLES = "text columns are modelled in a single table (not sessions or databases)"
DATETIME_TYPES = {
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
}
UNSUPPORTED_PREFIXES = ("STRUCT", "MAP", "UNION", "BLOB", "BIT", "INTERVAL", "TIME WITH", "JSON")
MAX_TEXT_LENGTH = 100


def is_numeric_type(duck_type: str) -> bool:
    return (
        is_integer_type(duck_type)
        or duck_type in {"FLOAT", "DOUBLE", "REAL"}
        or duck_type.startswith("DECIMAL")
    )


def unsupported_reason(duck_type: str) -> str | None:
    """Why a DuckDB type cannot be modelled yet, or None."""
    if duck_type.endswith("]") or duck_type.startswith(UNSUPPORTED_PREFIXES):
        return f"type {duck_type} cannot be modelled yet"
    return None


def read_type(duck_type: str) -> str:
    """The SQL type a column is read as for analysis (one arrow type per encoder family)."""
    if is_numeric_type(duck_type):
        return "DOUBLE"
    if duck_type.startswith("TIMESTAMP") and duck_type != "TIMESTAMP WITH TIME ZONE":
        return "TIMESTAMP"
    if duck_type.startswith("ENUM") or duck_type == "UUID":
        return "VARCHAR"
    return duck_type


def choose_kind(name: str, duck_type: str, values: pa.Array, texts: bool = False) -> str:
    """The encoder kind for a column, from its type and values (``texts``: whether free text
    may be modelled, as kind ``text``, rather than refused or taken as categories)."""
    non_null = values.drop_null()
    n_distinct = len(pc.unique(non_null)) if len(non_null) else 0
    if n_distinct <= 1 and (values.null_count == 0 or len(non_null) == 0):
        return "constant"
    if duck_type == "UUID":
        return "key"
    if duck_type in DATETIME_TYPES or duck_type.startswith("TIMESTAMP"):
        return "datetime"
    if is_numeric_type(duck_type):
        if is_integer_type(duck_type) and n_distinct == len(values) >= 20:
            x = pc.min_max(non_null)
            if x["max"].as_py() - x["min"].as_py() + 1 <= 2 * len(values):
                return "key"
        return "numeric"
    if duck_type == "VARCHAR" and texts and looks_like_text(*text_shape(values)):
        return "text"
    if duck_type == "VARCHAR" and len(non_null):
        mean_length = pc.mean(pc.utf8_length(non_null)).as_py()
        if mean_length > MAX_TEXT_LENGTH and n_distinct > len(non_null) / 2:
            raise SynthError(
                f"column '{name}' looks like free text (mean {mean_length:.0f} characters), "
                f"which cannot be modelled yet; exclude it (exclude => ['{name}'])"
            )
        if n_distinct == len(values) >= 20:
            return "key"
    return "categorical"


def _modelled_kind(duck_type: str) -> str:
    if is_numeric_type(duck_type):
        return "numeric"
    if duck_type in DATETIME_TYPES or duck_type.startswith("TIMESTAMP"):
        return "datetime"
    return "categorical"


def check_override(
    name: str, duck_type: str, kind: str, text_refusal: str | None = TEXT_ONLY_IN_TABLES
) -> None:
    if kind not in ENCODERS:
        raise SynthError(
            f"encoding for column '{name}': unknown kind '{kind}' (use one of {', '.join(sorted(ENCODERS))})"
        )
    if kind == "text" and text_refusal is not None and duck_type == "VARCHAR":
        raise SynthError(f"column '{name}' cannot be encoded as text: {text_refusal}")
    fits = {
        "numeric": is_numeric_type(duck_type),
        "datetime": duck_type in DATETIME_TYPES or duck_type.startswith("TIMESTAMP"),
        "text": duck_type == "VARCHAR",
    }
    if not fits.get(kind, True):
        raise SynthError(f"column '{name}' of type {duck_type} cannot be encoded as {kind}")


def analyze(
    table: pa.Table,
    duck_types: dict[str, str],
    overrides: dict[str, str],
    protection: Protection,
    text_refusal: str | None = TEXT_ONLY_IN_TABLES,
) -> list[Encoder]:
    """One fitted encoder per column of ``table``, in order. ``text_refusal``: why free text
    cannot be modelled here (None: it can, as kind ``text``)."""
    encoders = []
    for name in table.column_names:
        values = table.column(name).combine_chunks()
        duck_type = duck_types[name]
        kind = overrides.get(name)
        if kind is None:
            kind = choose_kind(name, duck_type, values, texts=text_refusal is None)
            if kind == "constant" and protection.budget is not None:
                kind = _modelled_kind(duck_type)  # under DP its one value must clear the noise
        else:
            check_override(name, duck_type, kind, text_refusal)
        cls = ENCODERS[kind]
        encoders.append(cls.fit(name, duck_type, values, protection))
    return encoders


def from_json(spec: dict) -> Encoder:
    return ENCODERS[spec["kind"]](spec["name"], spec["type"], spec["stats"])


__all__ = [
    "NULL_TOKEN",
    "Encoder",
    "Protection",
    "Restriction",
    "TextEncoder",
    "analyze",
    "from_json",
    "unsupported_reason",
    "read_type",
    "is_numeric_type",
]
