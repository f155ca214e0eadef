"""Where a session comes from: ``connect()`` opens a DuckDB database file (or an in-memory one),
a server's endpoint (remote.py), or what a profile names."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import duckdb

from . import sqltext, surface
from .connection import Session
from .distributed import cluster
from .errors import SynthError

if TYPE_CHECKING:  # remote.py is imported when a server is asked for
    from .remote import RemoteSession

CATALOG_SCHEMA = "synth"  # catalog.py's schema: no database may have its name (_open)


def connect(
    path: str | os.PathLike | None = None,
    read_only: bool = False,
    token: str | None = None,
    profile: str | None = None,
    tls_root_certs: str | None = None,
    ray: str | None = None,
) -> Session | RemoteSession:
    """A session on a DuckDB database file (``None``: in memory), or on a server
    (``grpc://host:port``, ``grpc+tls://...``; see ``duck-synth serve``), or as a profile of
    ``~/.config/duck_synth/config.toml`` says. With no argument at all, the default profile
    when the file names one, else an in-memory database.

    ``ray``: the Ray cluster ``engine => 'ray'`` sends work to: 'local' (the default: a Ray
    started here), 'auto' (the one ``ray start --head`` runs here), 'ray://host:10001' or a
    head node's host:port (duck_synth/distributed/cluster.py)."""
    from .remote import RemoteSession, is_remote, profile_settings

    path = os.fspath(path) if path is not None else None
    if profile is not None or (path is None and token is None and not read_only):
        settings = profile_settings(profile)
        if settings is not None:
            path = settings.get("url") or settings.get("database")
            token = token or settings.get("token")
            tls_root_certs = tls_root_certs or settings.get("tls_root_certs")
            read_only = read_only or bool(settings.get("read_only"))
            ray = ray or settings.get("ray")
    if is_remote(path):
        if ray is not None:
            raise SynthError("ray: a server's cluster is the server's (duck-synth serve --ray)")
        return RemoteSession(path, token or os.environ.get("DUCK_SYNTH_TOKEN"), tls_root_certs)
    if token is not None:
        raise SynthError("a token is for a server (grpc://...), not a database file")
    cluster.use(ray)
    return _connect_file(path, read_only)


def _open(path: str | None, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the file. DuckDB names it after the file, and a
    database named ``synth`` (synth.duckdb) makes every ``synth.models`` of the catalog schema
    ambiguous; DuckDB cannot rename it, and cursors (``con.cursor()``) always start in the
    instance's first database, named ``memory`` when it opened none: so such a file is attached
    under that name in place of the empty in-memory one."""
    con = duckdb.connect(path or ":memory:", read_only=read_only)
    name = con.execute("SELECT current_database()").fetchone()[0]
    if name.lower() != CATALOG_SCHEMA:
        return con
    con.close()
    con = duckdb.connect(":memory:")
    mode = " (READ_ONLY)" if read_only else ""
    try:
        con.execute("ATTACH ':memory:' AS duck_synth_scratch; USE duck_synth_scratch")
        con.execute("DETACH memory")
        con.execute(f"ATTACH {sqltext.quote_literal(path)} AS memory{mode}")
        con.execute("USE memory; DETACH duck_synth_scratch")
    except BaseException:
        con.close()
        raise
    return con


def _connect_file(path: str | None, read_only: bool) -> Session:
    surface.load_plugins()
    try:
        con = _open(path, read_only)
    except duckdb.IOException as error:
        text = str(error)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            holder = f" (PID {pid.group(1)})" if pid else ""
            raise SynthError(
                f"database '{path}' is in use by another process{holder}; "
                f"close it there (or wait for it to finish) and try again"
            ) from None
        raise SynthError(f"cannot open database '{path}': {text.splitlines()[0]}") from None
    return Session(con, path, read_only)
