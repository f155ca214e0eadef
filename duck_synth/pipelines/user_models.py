"""A user's PyTorch model as a scoring function: a torch.export program registered by name, then
called on rows from SQL, in a pipeline's score step, or from Python.

>>> FROM register_model('fraud_clf', 'clf.pt2', inputs => ['carat', 'depth'], outputs => ['p'])
-- model | version | inputs | outputs | operators | bytes | sha256
>>> SELECT score('fraud_clf', d)['p'] FROM diamonds d
-- 0.62, 0.18, ...

The contract: the program takes one float32 tensor (rows, len(inputs)), the declared input
columns in order, and returns one tensor (rows, len(outputs)), or (rows,) for one output. Its
rows may be any number (``dynamic_shapes={'x': {0: Dim('rows')}}``), a range, or fixed: a
fixed batch is served in chunks of that size, the last padded with zeros. A NULL input gives
NULL outputs for that row. The file is checked before anything in it runs (torch_archive.py),
its operators against an allow-list (operators.py); only then does torch load it, once per
process and version (a small LRU cache), and a batch of zeros confirms the shapes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import access, caller, catalog, surface
from ..errors import SynthError
from . import operators, torch_archive

MAX_FILE_BYTES = 512 * 1024**2
BATCH_ROWS = 4096  # rows per call of the program (a fixed batch: its own size)
CACHE_SIZE = 8  # loaded programs kept per process

_cache: OrderedDict[tuple[str, int, str], _Loaded] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class _Loaded:
    module: Callable  # the program as torch built it
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    batch: tuple[int, int | None]  # rows per call: at least, at most (None: any)
    where: str

    def run(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, inputs) float32 -> (rows, outputs) float64, in batches the program accepts."""
        low, high = self.batch
        step = min(BATCH_ROWS, high or BATCH_ROWS)
        done = []
        for start in range(0, len(matrix), step):
            caller.check()
            chunk = matrix[start : start + step]
            if len(chunk) < low:  # a fixed batch: the last chunk padded with zero rows
                chunk = np.vstack([chunk, np.zeros((low - len(chunk), chunk.shape[1]), "float32")])
            done.append(self._call(chunk)[: len(matrix) - start])
        return np.vstack(done) if done else np.zeros((0, len(self.outputs)))

    def _call(self, chunk: np.ndarray) -> np.ndarray:
        import torch

        try:
            with torch.inference_mode():
                result = self.module(torch.from_numpy(np.ascontiguousarray(chunk)))
        except Exception as error:  # the program's own failure, as torch reports it
            raise SynthError(f"{self.where}: the program failed: {_first_line(error)}") from None
        if isinstance(result, tuple | list) and len(result) == 1:
            result = result[0]
        expected = (len(chunk), len(self.outputs))
        shape = tuple(getattr(result, "shape", ()))
        if shape == expected[:1] and len(self.outputs) == 1:
            result = result.reshape(expected)
        elif shape != expected:
            raise SynthError(
                f"{self.where}: the program returned shape {shape} for {len(chunk)} rows, "
                f"expected {expected}"
            )
        return result.detach().to(torch.float64).numpy()


def register(
    con: duckdb.DuckDBPyConnection, name: str, path: str, inputs: list[str], outputs: list[str]
) -> dict:
    """Add the program in the file ``path`` as the next version of user model ``name``.

    >>> FROM register_model('clf', 'clf.pt2', inputs => ['carat', 'depth'], outputs => ['p'])
    -- model: clf | version: 1 | inputs: ["carat","depth"] | outputs: ["p"] | operators: 3 | ...
    """
    where = "register_model()"
    if not isinstance(name, str) or not catalog.MODEL_NAME.match(name):
        raise SynthError(f"{where}: model name must be letters, digits, _ . -, got {name!r}")
    inputs, outputs = _columns(inputs, "inputs", where), _columns(outputs, "outputs", where)
    full = access.check_path(path, where)
    data = _read(full, path, where)
    where = f"{where}: '{os.path.basename(path)}'"
    program = torch_archive.check(data, where)
    loaded = _loaded(program, inputs, outputs, where)
    loaded.run(np.zeros((max(1, loaded.batch[0]), len(inputs)), "float32"))  # the shapes, for real
    sha256 = hashlib.sha256(data).hexdigest()
    with catalog.transaction(con):
        version = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM synth.user_models WHERE name = ?", [name]
        ).fetchone()[0]
        con.execute(
            "INSERT INTO synth.user_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                version,
                json.dumps(inputs),
                json.dumps(outputs),
                json.dumps(program.operators),
                sha256,
                data,
                catalog.utc_now(),
            ],
        )
    _remember((name, version, sha256), replace(loaded, where=f"user model '{name}@{version}'"))
    return {
        "model": name,
        "version": version,
        "inputs": inputs,
        "outputs": outputs,
        "operators": len(program.operators),
        "bytes": len(data),
        "sha256": sha256,
    }


def _columns(names, what: str, where: str) -> list[str]:
    if not names:
        raise SynthError(f"{where}: give {what} => ['column', ..], the program's {what} in order")
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise SynthError(f"{where}: {what} must be distinct column names, got {names!r}")
    return list(names)


def _read(full: str, path: str, where: str) -> bytes:
    try:
        with open(full, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SynthError(f"{where}: cannot read '{path}': {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SynthError(f"{where}: '{path}' is larger than {MAX_FILE_BYTES // 1024**2} MiB")
    return data


def _loaded(program: torch_archive.Program, inputs: list, outputs: list, where: str) -> _Loaded:
    """torch's module for a checked program whose shapes match the declared columns."""
    if program.columns != len(inputs):
        raise SynthError(
            f"{where}: {len(inputs)} inputs declared but the program takes {program.columns}"
        )
    if (program.outputs or 1) != len(outputs):
        raise SynthError(
            f"{where}: {len(outputs)} outputs declared but the program returns "
            f"{program.outputs or 1}"
        )
    import torch

    try:
        exported = torch.export.load(io.BytesIO(program.archive))
        operators.check_graph(exported, where)
        module = exported.module()
    except SynthError:
        raise
    except Exception as error:  # torch's own refusal of a program it cannot rebuild
        raise SynthError(f"{where}: torch cannot load the program: {_first_line(error)}") from None
    return _Loaded(module, tuple(inputs), tuple(outputs), program.batch, where)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def resolve(con: duckdb.DuckDBPyConnection, spec: str) -> tuple[str, int]:
    """'name' (the latest version) or 'name@version' -> (name, version) of a user model."""
    name, version = catalog.parse_model_spec(spec)
    versions = [
        row[0]
        for row in con.execute(
            "SELECT version FROM synth.user_models WHERE name = ? ORDER BY version", [name]
        ).fetchall()
    ]
    return name, catalog.chosen_version("user model", name, version, versions, "user_models()")


def _program(con: duckdb.DuckDBPyConnection, name: str, version: int) -> _Loaded:
    """The loaded program of a version: cached, else checked again from the catalog (a row of
    synth.user_models is untrusted data, as anyone who can write the table may have made it)."""
    row = con.execute(
        "SELECT sha256, inputs, outputs FROM synth.user_models WHERE name = ? AND version = ?",
        [name, version],
    ).fetchone()
    if row is None:
        raise SynthError(f"unknown user model '{name}@{version}' (see FROM user_models())")
    sha256, inputs, outputs = row
    key = (name, version, sha256)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    where = f"user model '{name}@{version}'"
    data = bytes(
        con.execute(
            "SELECT program FROM synth.user_models WHERE name = ? AND version = ?", [name, version]
        ).fetchone()[0]
    )
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SynthError(f"{where}: its program does not match its sha256")
    try:
        inputs, outputs = json.loads(inputs), json.loads(outputs)
    except ValueError:
        raise SynthError(f"{where}: inputs or outputs: not JSON") from None
    inputs, outputs = _columns(inputs, "inputs", where), _columns(outputs, "outputs", where)
    loaded = _loaded(torch_archive.check(data, where), inputs, outputs, where)
    _remember(key, loaded)
    return loaded


def _remember(key: tuple[str, int, str], loaded: _Loaded) -> None:
    with _cache_lock:
        _cache[key] = loaded
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def score_table(con: duckdb.DuckDBPyConnection, spec: str, table: pa.Table) -> pa.Table:
    """The model's outputs (DOUBLE columns named as declared) for each row of ``table``, read
    from its declared input columns; a row with a NULL input gets NULL outputs."""
    return _scored(_program(con, *resolve(con, spec)), table)


def _scored(loaded: _Loaded, table: pa.Table) -> pa.Table:
    where = f"score(): {loaded.where}"
    matrix = np.zeros((table.num_rows, len(loaded.inputs)), "float32")
    valid = np.ones(table.num_rows, bool)
    for i, column in enumerate(loaded.inputs):
        if column not in table.column_names:
            raise SynthError(
                f"{where}: no input column '{column}' (it reads {', '.join(loaded.inputs)})"
            )
        values = table.column(column)
        try:
            values = pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SynthError(
                f"{where}: input column '{column}' is {values.type}, not a number"
            ) from None
        valid &= ~pc.is_null(values).to_numpy()
        matrix[:, i] = pc.fill_null(values, 0.0).to_numpy()
    scores = np.full((table.num_rows, len(loaded.outputs)), np.nan)
    if valid.any():
        scores[valid] = loaded.run(matrix[valid])
    columns = [pa.array(scores[:, i], pa.float64(), mask=~valid) for i in range(scores.shape[1])]
    return pa.table(dict(zip(loaded.outputs, columns, strict=True)))


def score_rows(con: duckdb.DuckDBPyConnection, models: pa.Array, rows: pa.Array) -> pa.Array:
    """score(model, row) for SQL: each row (JSON text of a struct) scored by its model, as
    MAP(VARCHAR, DOUBLE) of the outputs; a NULL row gives NULL."""
    models, rows = models.to_pylist(), rows.to_pylist()
    maps: list[list[tuple[str, float | None]] | None] = [None] * len(rows)
    for spec in sorted({m for m, r in zip(models, rows, strict=True) if r is not None}):
        at = [i for i, m in enumerate(models) if m == spec and rows[i] is not None]
        loaded = _program(con, *resolve(con, spec))
        scored = _scored(loaded, _rows_table([rows[i] for i in at], loaded))
        values = [scored.column(out).to_pylist() for out in loaded.outputs]
        for j, i in enumerate(at):
            maps[i] = [(out, column[j]) for out, column in zip(loaded.outputs, values, strict=True)]
    return pa.array(maps, pa.map_(pa.string(), pa.float64()))


def _rows_table(rows: list[str], loaded: _Loaded) -> pa.Table:
    """The declared input columns of JSON rows (numbers and booleans; NULL stays NULL)."""
    where = f"score(): {loaded.where}"
    parsed = [json.loads(row) for row in rows]
    columns = {}
    for column in loaded.inputs:
        values = []
        for row in parsed:
            if not isinstance(row, dict) or column not in row:
                raise SynthError(
                    f"{where}: the row has no column '{column}' (it reads "
                    f"{', '.join(loaded.inputs)})"
                )
            value = row[column]
            if value is not None and not isinstance(value, int | float):
                raise SynthError(
                    f"{where}: column '{column}' is {type(value).__name__}, not a number"
                )
            values.append(None if value is None else float(value))
        columns[column] = pa.array(values, pa.float64())
    return pa.table(columns)


def score_udf(con: duckdb.DuckDBPyConnection) -> tuple[str, Callable, list[str], str]:
    """(name, function, parameter types, return type) of score()'s Arrow scalar UDF; each call
    reads the catalog on a cursor of its own."""

    def score(models: pa.Array, rows: pa.Array) -> pa.Array:
        with con.cursor() as cursor:
            return score_rows(cursor, models, rows)

    return surface.SCORE_UDF, score, ["VARCHAR", "VARCHAR"], "MAP(VARCHAR, DOUBLE)"
