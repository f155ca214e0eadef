"""Results handed from Python UDFs to DuckDB as Parquet spool files.

A UDF runs at bind time and returns SQL text; that SQL reads the spool file and casts each
column back to its DuckDB type (ENUMs stay ENUMs, DECIMALs keep their scale). Files live in a
per-process folder removed at exit; a statement removes the files its UDFs made when it ends
(``with spool.statement():``). UDFs bound by a statement run on the thread that runs it, so
the files are tracked per thread: statements of concurrent clients never remove each other's.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import tempfile
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from .sqltext import duck_type, quote_identifier, quote_literal

_lock = threading.Lock()
_counter = itertools.count()
_folder: str | None = None
_made = threading.local()  # the files made by the statement running on this thread
PREFIX = "duck_synth_spool_"


def folder() -> str:
    global _folder
    with _lock:
        if _folder is None or not os.path.isdir(_folder):
            _remove_orphans()
            _folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}_")
            atexit.register(shutil.rmtree, _folder, True)
        return _folder


def _remove_orphans() -> None:
    """Spool folders of processes that were killed (atexit never ran for them)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_path(kind: str) -> str:
    path = os.path.join(folder(), f"{kind}_{next(_counter):06d}.parquet")
    made = getattr(_made, "paths", None)
    if made is not None:
        made.append(path)
    return path


def remove(paths) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


@contextlib.contextmanager
def statement():
    """Remove the spool files made on this thread while the block runs, when it ends."""
    outer = getattr(_made, "paths", None)
    _made.paths = []
    try:
        yield _made.paths
    finally:
        remove(_made.paths)
        _made.paths = outer


def cast_sql(relation: str, columns: list[tuple[str, str | None]]) -> str:
    """SQL reading ``relation``, each (name, DuckDB type or None) cast back to its type."""
    items = [
        quote_identifier(name)
        if type_text is None
        else f"CAST({quote_identifier(name)} AS {duck_type(type_text)}) AS {quote_identifier(name)}"
        for name, type_text in columns
    ]
    return f"SELECT {', '.join(items)} FROM {relation}"


def select_sql(path: str, columns: list[tuple[str, str | None]]) -> str:
    """SQL reading the spool file ``path`` with its columns' DuckDB types."""
    return cast_sql(f"read_parquet({quote_literal(path)})", columns)


def write_rows(kind: str, table: pa.Table, types: dict[str, str] | None = None) -> str:
    """Spool a small result table; returns the SQL that reads it."""
    path = new_path(kind)
    pq.write_table(table, path)
    types = types or {}
    return select_sql(path, [(name, types.get(name)) for name in table.column_names])


def summary_sql(kind: str, row: dict) -> str:
    """One row of simple values (dicts and lists become JSON)."""
    return rows_sql(kind, [row])


def rows_sql(kind: str, rows: list[dict]) -> str:
    import json

    def plain(v):
        return json.dumps(v) if isinstance(v, dict | list) else v

    table = pa.Table.from_pylist([{k: plain(v) for k, v in r.items()} for r in rows])
    types = {k: "JSON" for k, v in rows[0].items() if isinstance(v, dict | list)} if rows else {}
    return write_rows(kind, table, types)
