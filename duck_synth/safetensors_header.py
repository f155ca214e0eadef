"""The safetensors header of a model's weights, read without loading any tensor.

The layout: 8 bytes of header length (little-endian), the JSON header, then the tensors' bytes
at the header's offsets. Each entry is checked against the data it claims (model_fields.py
has the limits).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from .errors import SynthError
from .model_fields import (
    MAX_HEADER_BYTES,
    MAX_TENSOR_BYTES,
    MAX_WEIGHTS_BYTES,
    Refused,
    integer,
    listed,
    object_with,
    shown,
    typed,
)

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1}  # fmt: skip


def read_header(data: bytes) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensors by name: dtype and shape; metadata) of safetensors bytes, read from the
    header alone. Raises SynthError when the bytes are not a well-formed safetensors file."""
    try:
        return parse_header(data)
    except Refused as refused:
        raise SynthError(str(refused)) from None


def parse_header(data: Any) -> tuple[dict[str, dict], dict[str, str]]:
    """``read_header``'s answer, refusing with the field's path (``Refused``): a model's
    weights are one field of its record (model_schema.py)."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < 8:
        raise Refused("weights", "not safetensors data")
    (length,) = struct.unpack("<Q", bytes(data[:8]))
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise Refused("weights", "not safetensors data (header length)")
    try:
        header = json.loads(bytes(data[8 : 8 + length]))
    except (UnicodeDecodeError, ValueError):
        raise Refused("weights", "not safetensors data (header is not JSON)") from None
    typed(header, dict, "weights")
    metadata = header.pop("__metadata__", None) or {}
    typed(metadata, dict, "weights.__metadata__")
    stored = len(data) - 8 - length
    found, total = {}, 0
    for name, entry in header.items():
        path = f"weights[{shown(name)}]"
        object_with(entry, path, required=("dtype", "shape", "data_offsets"))
        if entry["dtype"] not in DTYPE_BYTES:
            raise Refused(path, f"unsupported dtype {shown(entry['dtype'])}")
        shape = listed(entry["shape"], f"{path}.shape", 8)
        for i, dim in enumerate(shape):
            integer(dim, f"{path}.shape[{i}]", 0, None)
        size = math.prod(shape) * DTYPE_BYTES[entry["dtype"]]
        if size > MAX_TENSOR_BYTES:
            raise Refused(path, f"{size:,} bytes (limit {MAX_TENSOR_BYTES:,})")
        offsets = listed(entry["data_offsets"], f"{path}.data_offsets", 2)
        if (
            len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= stored
            or offsets[1] - offsets[0] != size
        ):
            raise Refused(f"{path}.data_offsets", "do not match the tensor's size and the data")
        total += size
        found[name] = {"dtype": entry["dtype"], "shape": shape}
    if total > MAX_WEIGHTS_BYTES:
        raise Refused("weights", f"{total:,} bytes (limit {MAX_WEIGHTS_BYTES:,})")
    return found, metadata
