"""``duck-synth serve``: one process owning a database, serving it to many clients.

- Arrow Flight SQL (``grpc://host:port``) for ADBC clients and ``duck_synth.connect(url)``;
- Quack (``quack:host:port``) for the DuckDB CLI and other DuckDB clients.

Tokens: admin tokens may do anything, read-only tokens may read and generate (auth.py). With
no token the server only listens on loopback; beyond it a token is required.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field

import pyarrow.flight as flight

from ..errors import SynthError
from ..session import Session, connect
from . import auth
from .flight import FlightSqlServer
from .quack import QuackEndpoint

DEFAULT_PORT = 8815
DEFAULT_QUACK_PORT = 9494


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    quack_port: int | None = DEFAULT_QUACK_PORT  # None: no Quack endpoint
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    tls_cert: str | None = None
    tls_key: str | None = None


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
        self.session: Session = connect(database)
        tls = None
        scheme = "grpc"
        if options.tls_cert:
            tls = [(_read(options.tls_cert), _read(options.tls_key))]
            scheme = "grpc+tls"
        try:
            self.flight = FlightSqlServer(
                self.session, f"{scheme}://{options.host}:{options.port}", options.tokens, tls
            )
        except OSError as error:
            self.session.close()
            raise SynthError(
                f"cannot listen on {options.host}:{options.port}: {str(error).splitlines()[0]}"
            ) from None
        host = "localhost" if options.host in auth.LOOPBACK_HOSTS else options.host
        self.url = f"{scheme}://{host}:{self.flight.port}"
        self.quack = None
        self.quack_uri = None
        if options.quack_port is not None:
            self.quack = QuackEndpoint(self.session, options.tokens)
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
