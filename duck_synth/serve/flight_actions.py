"""Flight SQL DoAction: prepared statements made and closed, transactions begun and ended,
and cancels of a ticket's query (between batches, or while it runs: see flight_calls.Watcher)."""

from __future__ import annotations

import contextlib
import secrets

import pyarrow as pa
import pyarrow.flight as flight

from . import messages, metadata
from .flight_calls import Caller, Prepared
from .flight_statements import Statements

ACTIONS = [
    ("CreatePreparedStatement", "prepare a query"),
    ("ClosePreparedStatement", "close a prepared statement"),
    ("CancelFlightInfo", "cancel a query between batches"),
    ("CancelQuery", "cancel a query between batches (deprecated form)"),
    ("BeginTransaction", "begin a transaction"),
    ("EndTransaction", "commit or roll back a transaction"),
]


def act(statements: Statements, context, caller: Caller, action) -> list[bytes]:
    """DoAction: the action's results, each a serialized message."""
    body = action.body.to_pybytes() if action.body is not None else b""
    kind = action.type
    if kind == "CreatePreparedStatement":
        return [_create_prepared(statements, caller, body)]
    if kind == "BeginTransaction":
        session = statements.client_session(caller)
        try:
            handle = statements.transactions.begin(caller.token, session, context.peer())
        except BaseException:
            session.close()
            raise
        result = messages.new("ActionBeginTransactionResult", transaction_id=handle)
        return [messages.pack(result)]
    if kind == "EndTransaction":
        _, request = messages.unpack(body)
        if not hasattr(request, "action"):
            raise ValueError("EndTransaction needs an ActionEndTransactionRequest")
        statements.transactions.end(request.transaction_id, caller.token, request.action)
        return []
    if kind == "ClosePreparedStatement":
        _, request = messages.unpack(body)
        with statements.lock:
            prepared = statements.prepared.get(request.prepared_statement_handle)
            if prepared is not None and prepared.owner.token == caller.token:
                del statements.prepared[request.prepared_statement_handle]
        return []
    if kind in ("CancelFlightInfo", "CancelQuery"):
        if kind == "CancelFlightInfo":
            info_bytes = messages.parse("CancelFlightInfoRequest", body).info
        else:
            _, request = messages.unpack(body)
            info_bytes = request.info
        cancelled = _cancel(statements, info_bytes, caller)
        if kind == "CancelFlightInfo":
            status = messages.new("CancelFlightInfoResult", status=cancelled)
            return [status.SerializeToString()]
        return [messages.pack(messages.new("ActionCancelQueryResult", result=cancelled))]
    raise NotImplementedError(f"action {kind!r} is not supported by duck_synth")


def _create_prepared(statements: Statements, caller: Caller, body: bytes) -> bytes:
    _, request = messages.unpack(body)
    if not hasattr(request, "query"):
        raise ValueError("CreatePreparedStatement needs an ActionCreatePreparedStatementRequest")
    statements.check(caller, request.query)
    transaction = statements.transaction_id(request, caller)
    handle = secrets.token_bytes(16)
    with statements.lock:
        statements.forget_old()
        statements.prepared[handle] = Prepared(request.query, caller, transaction=transaction)
    result = messages.new("ActionCreatePreparedStatementResult", prepared_statement_handle=handle)
    schema = _dataset_schema(statements, request.query)
    if schema is not None:
        result.dataset_schema = schema.serialize().to_pybytes()
    return messages.pack(result)


def _dataset_schema(statements: Statements, query: str) -> pa.Schema | None:
    cursor = statements.session.con.cursor()
    try:
        return metadata.dataset_schema(cursor, query)
    finally:
        cursor.close()


def _cancel(statements: Statements, info_bytes: bytes, caller: Caller) -> int:
    try:
        info = flight.FlightInfo.deserialize(info_bytes)
    except (pa.ArrowException, TypeError):
        raise ValueError("malformed FlightInfo in the cancel request") from None
    with statements.lock:
        for endpoint in info.endpoints:
            with contextlib.suppress(ValueError, NotImplementedError, AttributeError):
                _, message = messages.unpack(endpoint.ticket.ticket)
                handle = message.statement_handle
                pending = statements.pending.pop(handle, None) or statements.running.get(handle)
                if pending is not None and pending.owner.token == caller.token:
                    pending.cancelled.set()
    return messages.CANCELLED
