"""Keyed transforms DuckDB has no one-liner for: pseudonyms, format-preserving masks, per-session
date shifts. Each is an HMAC-SHA256 of the value under a secret key (stdlib ``hmac``), so the
same value and key give the same output in every table and run, and without the key the output
cannot be reversed or linked to the value. Scalar UDFs over Arrow arrays; the SQL macros
(``pseudonymize``, ``mask``, ``shift_date``) cast their arguments and call them.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa

from .errors import SynthError

PSEUDONYM_HEX = 20  # 80 bits: collisions stay unlikely up to billions of distinct values


def _digest(key: str, purpose: str, value: str) -> bytes:
    return hmac.new(key.encode(), f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def _keys(function: str, keys: pa.ChunkedArray | pa.Array) -> list[str]:
    keys = keys.to_pylist()
    for key in keys:
        if not isinstance(key, str) or not key:
            raise SynthError(f"{function}(): key must be a non-empty string")
    return keys


def pseudonymize(values: pa.Array, keys: pa.Array) -> pa.Array:
    """A fixed-length hexadecimal pseudonym per value; NULL stays NULL."""
    out = [
        None if v is None else _digest(k, "pseudonym", v).hex()[:PSEUDONYM_HEX]
        for v, k in zip(values.to_pylist(), _keys("pseudonymize", keys), strict=True)
    ]
    return pa.array(out, pa.string())


def mask(values: pa.Array, keys: pa.Array) -> pa.Array:
    """Each digit replaced by a digit, each letter by a letter of the same case, the rest kept:
    the length and the character classes (and so most formats and validations) survive."""
    return pa.array(
        [
            None if v is None else _mask_one(v, k)
            for v, k in zip(values.to_pylist(), _keys("mask", keys), strict=True)
        ],
        pa.string(),
    )


def _mask_one(value: str, key: str) -> str:
    stream = b""
    block = 0
    while len(stream) < len(value):  # one HMAC block per 32 characters
        stream += _digest(key, f"mask{block}", value)
        block += 1
    out = []
    for char, byte in zip(value, stream, strict=False):
        if char.isascii() and char.isdigit():
            out.append(chr(ord("0") + byte % 10))
        elif char.isascii() and char.isupper():
            out.append(chr(ord("A") + byte % 26))
        elif char.isascii() and char.islower():
            out.append(chr(ord("a") + byte % 26))
        else:
            out.append(char)
    return "".join(out)


def date_offset(sessions: pa.Array, keys: pa.Array, max_days: pa.Array) -> pa.Array:
    """Days to shift a session's dates by: the same for every row of a session, uniform in
    [-max_days, max_days] over sessions."""
    out = []
    spans = max_days.to_pylist()
    for session, key, span in zip(
        sessions.to_pylist(), _keys("shift_date", keys), spans, strict=True
    ):
        if span is None or span < 1:
            raise SynthError(f"shift_date(): max_days must be at least 1, got {span}")
        if session is None:
            out.append(None)
            continue
        number = int.from_bytes(_digest(key, "shift", session)[:8], "big")
        out.append(number % (2 * span + 1) - span)
    return pa.array(out, pa.int64())


# (name, function, parameter types, return type): registered as Arrow scalar UDFs
SCALAR_UDFS = [
    ("synth_pseudonymize", pseudonymize, ["VARCHAR", "VARCHAR"], "VARCHAR"),
    ("synth_mask", mask, ["VARCHAR", "VARCHAR"], "VARCHAR"),
    ("synth_date_offset", date_offset, ["VARCHAR", "VARCHAR", "BIGINT"], "BIGINT"),
]
