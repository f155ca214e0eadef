"""Flight SQL queries: GetFlightInfo hands out a ticket, DoGet runs what it names.

A statement's query runs when its ticket is fetched, so its rows stream as they are generated
and stop between batches when the client cancels or goes away; a query of a transaction is
read whole on the transaction's cursor; catalog commands answer from DuckDB's catalog.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.flight as flight

from .. import caller as calls
from ..errors import SynthError
from . import auth, messages, metadata, params
from .flight_auth import client_error
from .flight_calls import Caller, Pending, once, optional, refusal
from .flight_statements import Statements

CATALOG_SCHEMAS = {
    "CommandGetSqlInfo": metadata.SQL_INFO_SCHEMA,
    "CommandGetCatalogs": metadata.CATALOGS_SCHEMA,
    "CommandGetDbSchemas": metadata.DB_SCHEMAS_SCHEMA,
    "CommandGetTableTypes": metadata.TABLE_TYPES_SCHEMA,
}


def flight_info(statements: Statements, caller: Caller, descriptor) -> flight.FlightInfo:
    """GetFlightInfo: the ticket of a statement query, a prepared one or a catalog command."""
    name, command = messages.unpack(descriptor.command or b"")
    if name == "CommandStatementQuery":
        statements.check(caller, command.query)
        transaction = statements.transaction_id(command, caller)
        pending = Pending(caller, name, query=command.query, transaction=transaction)
        return statements.ticket(pending, None, descriptor)
    if name == "CommandPreparedStatementQuery":
        prepared = statements.find_prepared(command.prepared_statement_handle, caller)
        query = params.bind(prepared.query, prepared.parameters)
        statements.check(caller, query)  # the bound values are part of what it does
        pending = Pending(caller, name, query=query, transaction=prepared.transaction)
        return statements.ticket(pending, None, descriptor)
    if name == "CommandGetTables":
        schema = metadata.TABLES_WITH_SCHEMA if command.include_schema else metadata.TABLES_SCHEMA
        return statements.ticket(Pending(caller, name, command), schema, descriptor)
    if name in CATALOG_SCHEMAS:
        return statements.ticket(Pending(caller, name, command), CATALOG_SCHEMAS[name], descriptor)
    raise NotImplementedError(f"{name} is not supported by duck_synth")


def fetch(statements: Statements, context, caller: Caller, ticket) -> flight.FlightDataStream:
    """DoGet: run what the ticket names (once: a ticket is forgotten when fetched)."""
    try:
        _, message = messages.unpack(ticket.ticket)
        handle = message.statement_handle
    except (ValueError, NotImplementedError, AttributeError):
        raise ValueError("malformed ticket") from None
    with statements.lock:
        pending = statements.pending.pop(handle, None)
    if pending is None or pending.owner.token != caller.token:
        raise KeyError("unknown or expired ticket (fetch a ticket once, soon after it is made)")
    if pending.query is None:
        return flight.RecordBatchStream(_catalog_answer(statements, pending, caller))
    if pending.transaction is not None:
        table = _in_transaction(statements, context, caller, pending)
        return flight.RecordBatchStream(table)
    return _stream(statements, context, caller, pending, handle)


def _stream(
    statements: Statements, context, caller: Caller, pending: Pending, handle: bytes
) -> flight.FlightDataStream:
    """The statement's rows as a stream, on a session of its own closed when the stream ends."""
    session = statements.client_session(caller)
    call = statements.call(session)
    with statements.lock:
        statements.running[handle] = pending  # a cancel finds it while it runs, before any batch
    unwatch = statements.watcher.watch(context, call, session, pending)

    def end() -> None:
        unwatch()
        with statements.lock:
            statements.running.pop(handle, None)
        session.close()

    failure = None
    try:
        with calls.running(call):
            reader = session.stream(pending.query)
    except (SynthError, duckdb.Error) as error:
        end()
        failure = refusal(error, call)
    except BaseException:
        end()
        raise
    if failure is not None:  # raised here: it holds no reference to the error's frames
        raise failure
    schema = metadata.plain_schema(reader.schema)

    def finish() -> None:
        reader.close()
        end()

    finish = once(finish)
    batches = _batches(context, reader, schema, pending, call, finish)
    # a stream dropped unread (the client gone before the first batch) still ends so
    weakref.finalize(batches, finish).atexit = False
    return flight.GeneratorStream(schema, batches)


def _batches(
    context, reader, schema, pending, call: calls.Call, finish: Callable[[], None]
) -> Iterator[pa.RecordBatch]:
    """The rows, stopping between batches when the client cancels or goes away (the
    watcher stops a long batch too). Each batch is read as the statement's call: this may
    run on another thread than do_get."""
    limit = call.rights.max_rows
    sent = 0
    try:
        while not (context.is_cancelled() or pending.cancelled.is_set()):
            failure = None
            try:
                with calls.running(call):
                    batch = reader.read_next_batch()
            except StopIteration:
                return
            except (SynthError, duckdb.Error) as error:
                failure = refusal(error, call)
            except Exception as error:  # noqa: BLE001  one line to the client
                failure = client_error(error, "a stream")
            if failure is not None:  # raised here: it holds no reference to the error
                raise failure
            sent += batch.num_rows
            if limit is not None and sent > limit:
                raise flight.FlightServerError(
                    f"the result has more than {limit:,} rows, the server's limit of rows "
                    "per statement (--max-rows): add a LIMIT or a smaller target"
                )
            yield batch if batch.schema == schema else batch.cast(schema)
        if pending.cancelled.is_set():
            raise flight.FlightCancelledError("the query was cancelled")
    finally:
        finish()


def _in_transaction(statements: Statements, context, caller: Caller, pending: Pending) -> pa.Table:
    """A query of a transaction, run on its cursor (which sees its writes) and sent whole:
    its rows are read before the next statement of the transaction may run."""
    failure = None
    with statements.statement_session(caller, pending.transaction) as session:
        call = statements.call(session)
        unwatch = statements.watcher.watch(context, call, session, pending)
        try:
            with calls.running(call):
                table = session.sql(pending.query).arrow()
        except (SynthError, duckdb.Error) as error:
            failure = refusal(error, call)
        finally:
            unwatch()
    if failure is not None:  # raised here: it holds no reference to the error's frames
        raise failure
    limit = call.rights.max_rows
    if limit is not None and table.num_rows > limit:
        raise flight.FlightServerError(
            f"the result has more than {limit:,} rows, the server's limit of rows "
            "per statement (--max-rows): add a LIMIT or a smaller target"
        )
    return table.cast(metadata.plain_schema(table.schema))


def _catalog_answer(statements: Statements, pending: Pending, caller: Caller) -> pa.Table:
    command, name = pending.message, pending.command
    if name == "CommandGetTableTypes":
        return metadata.table_types()
    if caller.role == auth.DEPLOYMENT and name != "CommandGetSqlInfo":
        raise flight.FlightUnauthorizedError(
            "deployment token: only infer() on its pipelines, not the database's catalog"
        )
    cursor = statements.session.con.cursor()
    try:
        if name == "CommandGetSqlInfo":
            read_only = caller.role != auth.ADMIN
            return metadata.sql_info(list(command.info), read_only, cursor)
        if name == "CommandGetCatalogs":
            return metadata.catalogs(cursor)
        if name == "CommandGetDbSchemas":
            return metadata.db_schemas(
                cursor,
                optional(command, "catalog"),
                optional(command, "db_schema_filter_pattern"),
            )
        return metadata.tables(
            cursor,
            optional(command, "catalog"),
            optional(command, "db_schema_filter_pattern"),
            optional(command, "table_name_filter_pattern"),
            list(command.table_types),
            command.include_schema,
        )
    finally:
        cursor.close()
