"""The Flight SQL endpoint's bookkeeping: who calls (Caller), the statements it was asked for
and not yet fetched (Pending), prepared statements (Prepared), and the Watcher that stops a
running statement whose client cancelled or went away."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow.flight as flight

from .. import caller as calls
from ..connection import Session
from . import auth

WATCH_INTERVAL_S = 0.1  # how often a running statement's client is checked for a cancel


@dataclass
class Caller:
    token: str | None
    role: str
    deployments: tuple[str, ...] | None = None  # a deployment token's pipelines


@dataclass
class Prepared:
    query: str
    owner: Caller
    parameters: list[dict] = field(default_factory=list)  # rows of bound values
    used: float = field(default_factory=time.monotonic)
    transaction: bytes | None = None  # its statements run in this transaction


@dataclass
class Pending:
    """What a ticket will run when fetched."""

    owner: Caller
    command: str
    message: object | None = None
    query: str | None = None
    transaction: bytes | None = None
    created: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class Watched:
    context: object  # the gRPC call's ServerCallContext
    call: calls.Call
    session: Session
    pending: Pending | None = None

    def asked_to_stop(self) -> bool:
        return (
            self.call.cancelled.is_set()
            or (self.pending is not None and self.pending.cancelled.is_set())
            or self.context.is_cancelled()
        )

    def timed_out(self) -> bool:
        timeout = self.call.timeout
        return timeout is not None and time.monotonic() - self.call.started > timeout


class Watcher:
    """Stops a client's statement while it runs when the client cancels it or goes away.

    A training runs inside DoGet before the first batch (and an update inside DoPut), where no
    batch loop looks at the client. One thread of the server polls each running statement's
    ``context.is_cancelled()`` and ticket cancel flag; on either it cancels the statement's call
    (a training or generation stops at its next step or batch) and interrupts the session's
    DuckDB queries, again each round until the statement ends (DuckDB forgets an interrupt that
    lands between two queries). Past the call's timeout it interrupts the DuckDB queries (the
    call's own checks stop the rest, with the timeout's message). The thread is the server's
    own, started with it: not one per call started from gRPC's threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._watched: list[Watched] = []
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="duck-synth-cancel", daemon=True).start()

    def watch(self, context, call: calls.Call, session: Session, pending=None):
        """Watch a statement; returns the function that ends the watch, which the call must
        run before it ends: after it returns, the context (which ends with the gRPC call) and
        the session are no longer touched."""
        watched = Watched(context, call, session, pending)
        with self._lock:
            self._watched.append(watched)

        def stop() -> None:
            with self._lock:
                self._watched = [w for w in self._watched if w is not watched]

        return stop

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_INTERVAL_S):
            with self._lock:
                for watched in self._watched:
                    with contextlib.suppress(Exception):
                        if watched.asked_to_stop():
                            watched.call.cancel()
                            watched.session.interrupt()
                        elif watched.timed_out():
                            watched.session.interrupt_queries()

    def close(self) -> None:
        self._closed.set()


def once(function: Callable[[], None]) -> Callable[[], None]:
    lock, done = threading.Lock(), []

    def run() -> None:
        with lock:
            if done:
                return
            done.append(True)
        function()

    return run


def refusal(error: Exception, call: calls.Call) -> Exception:
    """The client's one-line error: CANCELLED for a statement its client stopped."""
    if isinstance(error, duckdb.Error):
        text = str(error).strip()
        message = text.splitlines()[0] if text else type(error).__name__
    else:
        message = str(error)
    if call.cancelled.is_set():
        return flight.FlightCancelledError(message)
    if isinstance(error, auth.Refused):
        return flight.FlightUnauthorizedError(message)
    return flight.FlightServerError(message)


def optional(command, name: str) -> str | None:
    return getattr(command, name) if command.HasField(name) else None


def parameter_rows(reader: flight.MetadataRecordBatchReader) -> list[dict]:
    table = reader.read_all()
    return table.to_pylist()
