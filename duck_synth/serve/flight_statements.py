"""What the Flight SQL endpoint holds between calls: the tickets not yet fetched, prepared
statements, the statements running (for a cancel), open transactions; and the session each
client statement runs on, under its client's rights, cancelled with its client."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.flight as flight

from .. import caller as calls
from ..connection import Session
from . import auth, messages, transactions
from .flight_calls import Caller, Pending, Prepared, Watcher, refusal

TICKET_TTL_S = 600  # a ticket not fetched by then is forgotten
PREPARED_TTL_S = 24 * 3600


class Statements:
    def __init__(self, session: Session, policy=None):
        self.session = session
        self.policy = policy  # serve.Policy: each role's rights, the statement timeout
        self.lock = threading.Lock()
        self.pending: dict[bytes, Pending] = {}
        self.prepared: dict[bytes, Prepared] = {}
        self.running: dict[bytes, Pending] = {}
        self.transactions = transactions.Transactions()
        self.watcher = Watcher()

    def close(self) -> None:
        self.watcher.close()
        self.transactions.close()

    def client_session(self, caller: Caller) -> Session:
        session = Session(self.session.con.cursor(), self.session.path, install=False)
        if self.policy is not None:
            session.rights = self.policy.rights(caller.role, caller.deployments)
        return session

    @contextlib.contextmanager
    def statement_session(self, caller: Caller, transaction: bytes | None) -> Iterator[Session]:
        """The session a statement runs on: its transaction's (one statement at a time), else
        a fresh one on its own cursor, closed after it."""
        if transaction is not None:
            open_transaction = self.transactions.get(transaction, caller.token)
            with open_transaction.lock:
                yield open_transaction.session
            return
        session = self.client_session(caller)
        try:
            yield session
        finally:
            session.close()

    def call(self, session: Session) -> calls.Call:
        """The client's statement, which a cancel or the server's timeout stops."""
        timeout = self.policy.timeout if self.policy is not None else None
        return calls.Call(rights=session.rights, timeout=timeout)

    def ticket(self, pending: Pending, schema: pa.Schema | None, descriptor) -> flight.FlightInfo:
        handle = secrets.token_bytes(16)
        with self.lock:
            self.forget_old()
            self.pending[handle] = pending
        ticket = messages.pack(messages.new("TicketStatementQuery", statement_handle=handle))
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def forget_old(self) -> None:
        """Drop expired tickets and prepared statements (the caller holds ``lock``)."""
        now = time.monotonic()
        for handle in [h for h, p in self.pending.items() if now - p.created > TICKET_TTL_S]:
            del self.pending[handle]
        for handle in [h for h, p in self.prepared.items() if now - p.used > PREPARED_TTL_S]:
            del self.prepared[handle]

    def find_prepared(self, handle: bytes, caller: Caller) -> Prepared:
        with self.lock:
            prepared = self.prepared.get(handle)
        if prepared is None or prepared.owner.token != caller.token:
            raise KeyError("unknown prepared statement (closed, expired or never made)")
        prepared.used = time.monotonic()
        return prepared

    def check(self, caller: Caller, query: str) -> None:
        cursor = self.session.con.cursor()
        try:
            auth.check(cursor, caller.role, query, caller.deployments)
        except auth.Refused as refused:
            raise flight.FlightUnauthorizedError(str(refused)) from None
        finally:
            cursor.close()

    def transaction_id(self, command, caller: Caller) -> bytes | None:
        """The transaction a command names (checked now: an unknown one fails at once)."""
        if not command.HasField("transaction_id") or not command.transaction_id:
            return None
        self.transactions.get(command.transaction_id, caller.token)
        return command.transaction_id

    def watched(
        self,
        caller: Caller,
        transaction: bytes | None,
        context,
        work: Callable[[Session], int],
        errors: type[Exception] | tuple[type[Exception], ...],
    ) -> int:
        """``work(session)`` as one statement of the caller's: cancelled with its client, and a
        failure of ``errors`` answered in one line."""
        failure = None
        with self.statement_session(caller, transaction) as session:
            call = self.call(session)
            unwatch = self.watcher.watch(context, call, session) if context is not None else None
            try:
                with calls.running(call):
                    return work(session)
            except errors as error:
                failure = refusal(error, call)
            finally:
                if unwatch is not None:
                    unwatch()
        raise failure
