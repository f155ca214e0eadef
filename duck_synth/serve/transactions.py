"""Flight SQL transactions (ActionBeginTransaction / ActionEndTransaction).

A transaction is a session on a DuckDB cursor of its own with ``BEGIN`` run on it; every
statement, prepared statement and ingest that carries its id runs on that cursor, one at a
time, so it sees the transaction's own writes and a rollback undoes them. This is what the
ADBC driver needs for ``autocommit=False``, which pandas and polars users keep: it begins a
transaction at once and another after each commit or rollback. duck_synth's own functions
(train, generate...) read and write on cursors of their own, so they see committed tables only
and what they write is not undone by a rollback.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field

import duckdb

from ..connection import Session
from . import messages

IDLE_TTL_S = 3600  # a transaction left unused this long (its client gone) is rolled back


@dataclass(eq=False)
class Transaction:
    token: str | None  # its client's: no other token may use it
    session: Session
    peer: str  # the client connection (gRPC peer) that began it
    lock: threading.Lock = field(default_factory=threading.Lock)  # one statement at a time
    used: float = field(default_factory=time.monotonic)


class Transactions:
    def __init__(self):
        self._lock = threading.Lock()
        self._open: dict[bytes, Transaction] = {}

    def begin(self, token: str | None, session: Session, peer: str) -> bytes:
        session.con.execute("BEGIN TRANSACTION")
        handle = secrets.token_bytes(16)
        with self._lock:
            expired = self._expired()
            self._open[handle] = Transaction(token, session, peer)
        for transaction in expired:
            with contextlib.suppress(duckdb.Error):
                _close(transaction, "ROLLBACK")
        return handle

    def get(self, handle: bytes, token: str | None) -> Transaction:
        with self._lock:
            transaction = self._open.get(handle)
        if transaction is None or transaction.token != token:
            raise KeyError("unknown transaction (ended, expired or never begun)")
        transaction.used = time.monotonic()
        return transaction

    def of_peer(self, token: str | None, peer: str) -> bytes | None:
        """The one transaction open on this client connection, if there is exactly one. The
        ADBC driver sends no transaction id with a bulk ingest, yet with autocommit off every
        statement of its connection belongs to the transaction it keeps open (pandas drops a
        table in it, then ingests its replacement)."""
        with self._lock:
            found = [h for h, t in self._open.items() if t.token == token and t.peer == peer]
        return found[0] if len(found) == 1 else None

    def end(self, handle: bytes, token: str | None, action: int) -> None:
        if action not in (messages.COMMIT, messages.ROLLBACK):
            raise ValueError("EndTransaction needs COMMIT or ROLLBACK")
        transaction = self.get(handle, token)
        with self._lock:
            self._open.pop(handle, None)
        with transaction.lock:  # after the statement it runs, if any
            _close(transaction, "COMMIT" if action == messages.COMMIT else "ROLLBACK")

    def close(self) -> None:
        with self._lock:
            open_, self._open = list(self._open.values()), {}
        for transaction in open_:
            with contextlib.suppress(duckdb.Error):
                _close(transaction, "ROLLBACK")

    def _expired(self) -> list[Transaction]:
        now = time.monotonic()
        gone = [h for h, t in self._open.items() if now - t.used > IDLE_TTL_S]
        return [self._open.pop(h) for h in gone]


def _close(transaction: Transaction, how: str) -> None:
    """End the transaction and its cursor; a failed COMMIT (a conflict) is the client's error,
    after the cursor is closed."""
    try:
        transaction.session.con.execute(how)
    finally:
        with contextlib.suppress(duckdb.Error):
            transaction.session.close()
