"""The Python UDFs behind the table macros, registered in DuckDB, and their errors brought back
out of DuckDB clean: a SynthError raised inside a UDF reaches the caller as itself, not as
DuckDB's wrapped text of it."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable

import duckdb

from . import caller
from .errors import Cancelled, SynthError

_udf_errors = threading.local()


def _udf(function: Callable) -> Callable:
    """Run ``function`` as a UDF: a SynthError is kept so the session can re-raise it cleanly."""

    @functools.wraps(function)
    def wrapper(*args):
        try:
            return function(*args)
        except SynthError as error:
            _udf_errors.last = error
            raise
        except KeyboardInterrupt:
            _udf_errors.last = SynthError("interrupted")
            raise

    return wrapper


def forget_udf_error() -> None:
    """Drop the error a UDF kept on this thread: a statement about to run starts clean."""
    _udf_errors.last = None


def stream_error(error: Exception) -> Exception:
    """An error raised while a stream was read: a generate() failing inside DuckDB's scan comes
    back as its text (the scan runs on a DuckDB thread, not this one)."""
    match = re.search(r"SynthError: (.*)", str(error))
    if match:
        return SynthError(match.group(1).strip())
    return clean_error(error) if isinstance(error, duckdb.Error) else SynthError(str(error))


def clean_error(error: duckdb.Error) -> Exception:
    """The error to raise for DuckDB's ``error``: the UDF's own SynthError when one failed,
    the cancel for an interrupted query, else the first line of DuckDB's message."""
    last = getattr(_udf_errors, "last", None)
    if last is not None:
        # taken, and without the UDF's frames: a thread-local that kept them (a training's
        # tensors) would be freed when the thread's state is, which crashes a server's gRPC
        # thread (its Python state is deleted at the end of each call)
        _udf_errors.last = None
        last.__traceback__ = last.__context__ = last.__cause__ = None
        return last
    if isinstance(error, duckdb.InterruptException):
        call = caller.current()
        if call.cancelled.is_set():
            return Cancelled("interrupted")  # interrupt() stopped a plain query
        try:
            call.check()
        except Cancelled as stopped:  # the server's statement timeout stopped it
            return stopped
    text = str(error)
    match = re.search(r"SynthError: (.*)", text)
    if match:
        return SynthError(match.group(1))
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return SynthError(first)


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Python UDFs behind the table macros (once per database instance)."""
    from . import actions, transforms
    from .pipelines import user_models

    existing = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name LIKE 'synth\\_%' ESCAPE '\\'"
        ).fetchall()
    }
    for name, function, params in actions.udfs(con):
        if name not in existing:
            con.create_function(name, _udf(function), params, "VARCHAR", side_effects=True)
    for name, function, params, returns in [*transforms.SCALAR_UDFS, user_models.score_udf(con)]:
        if name not in existing:
            con.create_function(name, _udf(function), params, returns, type="arrow")
