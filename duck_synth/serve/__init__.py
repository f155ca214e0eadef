"""``duck-synth serve``: one process owning a database, serving it to many clients.

- Arrow Flight SQL (``grpc://host:port``) for ADBC clients and ``duck_synth.connect(url)``;
- Quack (``quack:host:port``) for the DuckDB CLI and other DuckDB clients.

Tokens: admin tokens may do anything within the folders the operator allows (``--allow-files``,
default the database's folder), read-only tokens may read and generate and never reach a file,
deployment tokens may only call infer() on their pipelines (auth.py, access.py). With no token the server only listens on loopback; beyond it a token is
required. DuckDB's own settings are the outer bound for everyone (the admin folders plus the
spool folder, no other file, no network, no extension loading), then locked so that no client
can change them; duck_synth's per-token rules sit inside that bound.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow.flight as flight

from .. import caller, spool, sqltext
from ..connection import Session
from ..database import connect
from ..errors import SynthError
from . import auth
from .flight import FlightSqlServer
from .quack import QuackEndpoint

DEFAULT_PORT = 8815
DEFAULT_QUACK_PORT = 9494
DEFAULT_MAX_ROWS = 10_000_000


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    quack_port: int | None = DEFAULT_QUACK_PORT  # None: no Quack endpoint
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_files: list[str] | None = None  # admin folders; None: the database's folder
    max_rows: int | None = DEFAULT_MAX_ROWS  # rows a statement may generate or return
    statement_timeout: float | None = None  # seconds a statement may run


@dataclass(frozen=True)
class Policy:
    """What each role may do on this server, and the limits of every statement."""

    admin: caller.Rights
    read_only: caller.Rights
    timeout: float | None

    def rights(self, role: str, deployments: tuple[str, ...] | None = None) -> caller.Rights:
        if role == auth.DEPLOYMENT:
            return dataclasses.replace(self.read_only, role=role, deployments=deployments or ())
        return self.admin if role == auth.ADMIN else self.read_only

    def call(self, role: str) -> caller.Call:
        return caller.Call(self.rights(role), timeout=self.timeout)


def policy(database: str | None, options: ServeOptions) -> Policy:
    if options.max_rows is not None and options.max_rows < 1:
        raise SynthError("--max-rows must be at least 1")
    if options.statement_timeout is not None and options.statement_timeout <= 0:
        raise SynthError("--statement-timeout must be more than 0 seconds")
    if options.allow_files is not None:
        folders = []
        for folder in options.allow_files:
            if not os.path.isdir(folder):
                raise SynthError(f"--allow-files: '{folder}' is not a folder")
            folders.append(os.path.realpath(folder))
    elif database and database != ":memory:":
        folders = [os.path.dirname(os.path.realpath(database))]
    else:
        folders = []
    return Policy(
        admin=caller.Rights(
            caller.ADMIN, folders=tuple(folders), remote=True, max_rows=options.max_rows
        ),
        read_only=caller.Rights(
            caller.READ_ONLY, folders=(), remote=True, max_rows=options.max_rows
        ),
        timeout=options.statement_timeout,
    )


def lock_down(con: duckdb.DuckDBPyConnection, folders: list[str]) -> None:
    """DuckDB's outer bound for every client: files only under ``folders``, no Python objects
    by name (replacement scans), no extension loading; then no setting can change."""
    con.execute("SET GLOBAL python_enable_replacements = false")
    allowed = [folder.rstrip(os.sep) + os.sep for folder in folders]
    con.execute(f"SET GLOBAL allowed_directories = {sqltext.sql_literal(allowed)}")
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")


class Server:
    """The running endpoints; ``close()`` stops them and closes the database."""

    def __init__(self, database: str | None, options: ServeOptions):
        if options.host not in auth.LOOPBACK_HOSTS and not options.tokens.required:
            raise SynthError(
                f"serving on {options.host} (beyond loopback) needs a token: give --token "
                "(or DUCK_SYNTH_TOKEN)"
            )
        if bool(options.tls_cert) != bool(options.tls_key):
            raise SynthError("TLS needs both --tls-cert and --tls-key")
        self.policy = policy(database, options)
        tls = None
        scheme = "grpc"
        if options.tls_cert:
            tls = [(_read(options.tls_cert), _read(options.tls_key))]
            scheme = "grpc+tls"
        self.session: Session = connect(database)
        self.quack = None
        self.quack_uri = None
        try:
            if options.quack_port is not None:
                self.quack = QuackEndpoint(self.session, options.tokens, self.policy)
                self.quack.prepare()
            # threads that run no client call of their own (Quack's) act as an admin here
            caller.set_default(caller.Call(self.policy.admin, timeout=self.policy.timeout))
            lock_down(self.session.con, [*self.policy.admin.folders, spool.folder()])
        except BaseException:
            self.session.close()
            raise
        try:
            self.flight = FlightSqlServer(
                self.session,
                f"{scheme}://{options.host}:{options.port}",
                options.tokens,
                tls,
                self.policy,
            )
        except OSError as error:
            self.session.close()
            raise SynthError(
                f"cannot listen on {options.host}:{options.port}: {str(error).splitlines()[0]}"
            ) from None
        host = "localhost" if options.host in auth.LOOPBACK_HOSTS else options.host
        self.url = f"{scheme}://{host}:{self.flight.port}"
        if self.quack is not None:
            try:
                self.quack_uri = self.quack.start(options.host, options.quack_port)
            except Exception:
                self.close()
                raise

    def wait(self) -> None:
        """Serve until SIGINT / SIGTERM."""
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass

    def close(self) -> None:
        if self.quack is not None:
            self.quack.stop()
        self.flight.shutdown()
        self.session.close()
        caller.set_default(caller.Call())


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise SynthError(f"cannot read '{path}': {error.strerror}") from None


def serve(database: str | None, options: ServeOptions | None = None) -> Server:
    """Start serving ``database`` (returns at once; ``Server.wait()`` blocks)."""
    return Server(database, options or ServeOptions())


__all__ = ["ServeOptions", "Server", "serve", "flight"]
