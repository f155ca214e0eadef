"""Flight SQL DoPut: statement updates, prepared statements' bound values and updates, and bulk
ingest (ingest.py), each run as one statement of its client's (flight_statements.py)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ..connection import Session
from ..errors import SynthError
from . import auth, ingest, messages, params
from .flight_calls import Caller, parameter_rows
from .flight_statements import Statements


def put(statements: Statements, context, caller: Caller, descriptor, reader, writer) -> None:
    """DoPut: run the command, and write its result (a count, or the prepared handle)."""
    name, command = messages.unpack(descriptor.command or b"")
    if name == "CommandStatementUpdate":  # no data follows: do not read
        transaction = statements.transaction_id(command, caller)
        count = _update(statements, caller, command.query, [{}], context, transaction)
    elif name == "CommandStatementIngest":
        count = _ingest(statements, caller, command, reader, context)
    elif name == "CommandPreparedStatementQuery":
        prepared = statements.find_prepared(command.prepared_statement_handle, caller)
        prepared.parameters = parameter_rows(reader)
        # the handle stays the same: the bound values are kept on the server
        result = messages.new(
            "DoPutPreparedStatementResult",
            prepared_statement_handle=command.prepared_statement_handle,
        )
        writer.write(pa.py_buffer(result.SerializeToString()))
        return
    elif name == "CommandPreparedStatementUpdate":
        prepared = statements.find_prepared(command.prepared_statement_handle, caller)
        rows = parameter_rows(reader) or [{}]
        count = _update(statements, caller, prepared.query, rows, context, prepared.transaction)
    else:
        raise NotImplementedError(f"{name} is not supported by duck_synth")
    result = messages.new("DoPutUpdateResult", record_count=count)
    writer.write(pa.py_buffer(result.SerializeToString()))


def _update(
    statements: Statements,
    caller: Caller,
    query: str,
    parameter_rows: list[dict],
    context=None,
    transaction: bytes | None = None,
) -> int:
    statements.check(caller, query)

    def run(session: Session) -> int:
        total = 0
        for parameters in parameter_rows:
            result = session.sql(params.bind(query, [parameters] if parameters else []))
            if result.columns == ["Count"] and len(result) == 1:
                total += int(result.fetchone()[0])
            else:
                total = -1 if total == 0 else total
        return total

    return statements.watched(caller, transaction, context, run, SynthError)


def _ingest(statements: Statements, caller: Caller, command, reader, context) -> int:
    """Bulk ingest (see ingest.py), on the command's transaction when it names one."""
    if caller.role != auth.ADMIN:
        raise auth.Refused(
            f"{caller.role.replace('_', '-')} token: bulk ingest writes a table, which it may not"
        )
    transaction = statements.transaction_id(command, caller)
    if transaction is None:
        transaction = statements.transactions.of_peer(caller.token, context.peer())

    def run(session: Session) -> int:
        return ingest.ingest(session.con, command, reader.to_reader())

    return statements.watched(caller, transaction, context, run, duckdb.Error)
