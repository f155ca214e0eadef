"""An Arrow Flight SQL endpoint on pyarrow.flight, for ADBC clients (adbc_driver_flightsql).

Each call runs on its own cursor of the server's database (gRPC's threads): one client's long
training does not hold up another's queries. Queries run when their ticket is fetched (DoGet),
so the rows stream as they are generated. A client that cancels (CancelFlightInfo, CancelQuery)
or goes away stops its statement while it runs, a training included (see Watcher), and a
generation between batches. Implemented: handshake (Basic -> Bearer) and bearer tokens, GetSqlInfo,
statement queries and updates, prepared statements with bound parameters (and their dataset
schema where it is known without running anything), bulk ingest, transactions, catalogs /
schemas / tables (with their Arrow schemas) / table types, CancelFlightInfo and CancelQuery;
everything else (Substrait, savepoints, keys, XDBC type info) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.flight as flight

from .. import caller as calls
from ..connection import Session
from ..errors import SynthError
from . import auth, ingest, messages, metadata, params, transactions
from .flight_auth import AuthMiddlewareFactory, NoHandshakeMessages, client_error, one_line_errors
from .flight_calls import (
    Caller,
    Pending,
    Prepared,
    Watcher,
    once,
    optional,
    parameter_rows,
    refusal,
)

TICKET_TTL_S = 600  # a ticket not fetched by then is forgotten
PREPARED_TTL_S = 24 * 3600


class FlightSqlServer(flight.FlightServerBase):
    def __init__(
        self,
        session: Session,
        location: str,
        tokens: auth.Tokens,
        tls_certificates: list[tuple[bytes, bytes]] | None = None,
        policy=None,
    ):
        super().__init__(
            location,
            auth_handler=NoHandshakeMessages(),
            middleware={"auth": AuthMiddlewareFactory(tokens)},
            tls_certificates=tls_certificates or [],
        )
        self.session = session
        self.policy = policy  # serve.Policy: each role's rights, the statement timeout
        self.lock = threading.Lock()
        self.pending: dict[bytes, Pending] = {}
        self.prepared: dict[bytes, Prepared] = {}
        self.running: dict[bytes, Pending] = {}
        self.transactions = transactions.Transactions()
        self.watcher = Watcher()

    def shutdown(self) -> None:
        super().shutdown()
        self.watcher.close()
        self.transactions.close()

    # -- helpers ---------------------------------------------------------------------------
    def _caller(self, context) -> Caller:
        return context.get_middleware("auth").caller

    def _client_session(self, caller: Caller) -> Session:
        session = Session(self.session.con.cursor(), self.session.path, install=False)
        if self.policy is not None:
            session.rights = self.policy.rights(caller.role)
        return session

    @contextlib.contextmanager
    def _statement_session(self, caller: Caller, transaction: bytes | None) -> Iterator[Session]:
        """The session a statement runs on: its transaction's (one statement at a time), else
        a fresh one on its own cursor, closed after it."""
        if transaction is not None:
            open_transaction = self.transactions.get(transaction, caller.token)
            with open_transaction.lock:
                yield open_transaction.session
            return
        session = self._client_session(caller)
        try:
            yield session
        finally:
            session.close()

    def _call(self, session: Session) -> calls.Call:
        """The client's statement, which a cancel or the server's timeout stops."""
        timeout = self.policy.timeout if self.policy is not None else None
        return calls.Call(rights=session.rights, timeout=timeout)

    def _ticket(self, pending: Pending, schema: pa.Schema | None, descriptor) -> flight.FlightInfo:
        handle = secrets.token_bytes(16)
        with self.lock:
            self._forget_old()
            self.pending[handle] = pending
        ticket = messages.pack(messages.new("TicketStatementQuery", statement_handle=handle))
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for handle in [h for h, p in self.pending.items() if now - p.created > TICKET_TTL_S]:
            del self.pending[handle]
        for handle in [h for h, p in self.prepared.items() if now - p.used > PREPARED_TTL_S]:
            del self.prepared[handle]

    def _prepared(self, handle: bytes, caller: Caller) -> Prepared:
        with self.lock:
            prepared = self.prepared.get(handle)
        if prepared is None or prepared.owner.token != caller.token:
            raise KeyError("unknown prepared statement (closed, expired or never made)")
        prepared.used = time.monotonic()
        return prepared

    def _check(self, caller: Caller, query: str) -> None:
        cursor = self.session.con.cursor()
        try:
            auth.check(cursor, caller.role, query)
        except auth.Refused as refused:
            raise flight.FlightUnauthorizedError(str(refused)) from None
        finally:
            cursor.close()

    # -- GetFlightInfo ---------------------------------------------------------------------
    @one_line_errors
    def get_flight_info(self, context, descriptor) -> flight.FlightInfo:
        caller = self._caller(context)
        name, command = messages.unpack(descriptor.command or b"")
        if name == "CommandStatementQuery":
            self._check(caller, command.query)
            transaction = self._transaction_id(command, caller)
            pending = Pending(caller, name, query=command.query, transaction=transaction)
            return self._ticket(pending, None, descriptor)
        if name == "CommandPreparedStatementQuery":
            prepared = self._prepared(command.prepared_statement_handle, caller)
            query = params.bind(prepared.query, prepared.parameters)
            self._check(caller, query)  # the bound values are part of what it does
            pending = Pending(caller, name, query=query, transaction=prepared.transaction)
            return self._ticket(pending, None, descriptor)
        schemas = {
            "CommandGetSqlInfo": metadata.SQL_INFO_SCHEMA,
            "CommandGetCatalogs": metadata.CATALOGS_SCHEMA,
            "CommandGetDbSchemas": metadata.DB_SCHEMAS_SCHEMA,
            "CommandGetTableTypes": metadata.TABLE_TYPES_SCHEMA,
        }
        if name == "CommandGetTables":
            schema = (
                metadata.TABLES_WITH_SCHEMA if command.include_schema else metadata.TABLES_SCHEMA
            )
            return self._ticket(Pending(caller, name, command), schema, descriptor)
        if name in schemas:
            return self._ticket(Pending(caller, name, command), schemas[name], descriptor)
        raise NotImplementedError(f"{name} is not supported by duck_synth")

    # -- DoGet -----------------------------------------------------------------------------
    @one_line_errors
    def do_get(self, context, ticket) -> flight.FlightDataStream:
        caller = self._caller(context)
        try:
            _, message = messages.unpack(ticket.ticket)
            handle = message.statement_handle
        except (ValueError, NotImplementedError, AttributeError):
            raise ValueError("malformed ticket") from None
        with self.lock:
            pending = self.pending.pop(handle, None)
        if pending is None or pending.owner.token != caller.token:
            raise KeyError("unknown or expired ticket (fetch a ticket once, soon after it is made)")
        if pending.query is None:
            return flight.RecordBatchStream(self._catalog_answer(pending, caller))
        if pending.transaction is not None:
            return flight.RecordBatchStream(self._in_transaction(context, caller, pending))
        session = self._client_session(caller)
        call = self._call(session)
        with self.lock:
            self.running[handle] = pending  # a cancel finds it while it runs, before any batch
        unwatch = self.watcher.watch(context, call, session, pending)

        def end() -> None:
            unwatch()
            with self.lock:
                self.running.pop(handle, None)
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
        batches = self._batches(context, reader, schema, pending, call, finish)
        # a stream dropped unread (the client gone before the first batch) still ends so
        weakref.finalize(batches, finish).atexit = False
        return flight.GeneratorStream(schema, batches)

    def _batches(
        self, context, reader, schema, pending, call: calls.Call, finish: Callable[[], None]
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

    def _in_transaction(self, context, caller: Caller, pending: Pending) -> pa.Table:
        """A query of a transaction, run on its cursor (which sees its writes) and sent whole:
        its rows are read before the next statement of the transaction may run."""
        failure = None
        with self._statement_session(caller, pending.transaction) as session:
            call = self._call(session)
            unwatch = self.watcher.watch(context, call, session, pending)
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

    def _transaction_id(self, command, caller: Caller) -> bytes | None:
        """The transaction a command names (checked now: an unknown one fails at once)."""
        if not command.HasField("transaction_id") or not command.transaction_id:
            return None
        self.transactions.get(command.transaction_id, caller.token)
        return command.transaction_id

    def _catalog_answer(self, pending: Pending, caller: Caller) -> pa.Table:
        command, name = pending.message, pending.command
        if name == "CommandGetTableTypes":
            return metadata.table_types()
        cursor = self.session.con.cursor()
        try:
            if name == "CommandGetSqlInfo":
                read_only = caller.role == auth.READ_ONLY
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

    # -- DoPut -----------------------------------------------------------------------------
    @one_line_errors
    def do_put(self, context, descriptor, reader, writer) -> None:
        caller = self._caller(context)
        name, command = messages.unpack(descriptor.command or b"")
        if name == "CommandStatementUpdate":  # no data follows: do not read
            transaction = self._transaction_id(command, caller)
            count = self._update(caller, command.query, [{}], context, transaction)
        elif name == "CommandStatementIngest":
            count = self._ingest(caller, command, reader, context)
        elif name == "CommandPreparedStatementQuery":
            prepared = self._prepared(command.prepared_statement_handle, caller)
            prepared.parameters = parameter_rows(reader)
            # the handle stays the same: the bound values are kept on the server
            result = messages.new(
                "DoPutPreparedStatementResult",
                prepared_statement_handle=command.prepared_statement_handle,
            )
            writer.write(pa.py_buffer(result.SerializeToString()))
            return
        elif name == "CommandPreparedStatementUpdate":
            prepared = self._prepared(command.prepared_statement_handle, caller)
            rows = parameter_rows(reader) or [{}]
            count = self._update(caller, prepared.query, rows, context, prepared.transaction)
        else:
            raise NotImplementedError(f"{name} is not supported by duck_synth")
        result = messages.new("DoPutUpdateResult", record_count=count)
        writer.write(pa.py_buffer(result.SerializeToString()))

    def _watched(self, caller: Caller, transaction: bytes | None, context, work, errors):
        """``work(session)`` as one statement of the caller's: cancelled with its client, and a
        failure of ``errors`` answered in one line."""
        failure = None
        with self._statement_session(caller, transaction) as session:
            call = self._call(session)
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

    def _update(
        self,
        caller: Caller,
        query: str,
        parameter_rows: list[dict],
        context=None,
        transaction: bytes | None = None,
    ) -> int:
        self._check(caller, query)

        def run(session: Session) -> int:
            total = 0
            for parameters in parameter_rows:
                result = session.sql(params.bind(query, [parameters] if parameters else []))
                if result.columns == ["Count"] and len(result) == 1:
                    total += int(result.fetchone()[0])
                else:
                    total = -1 if total == 0 else total
            return total

        return self._watched(caller, transaction, context, run, SynthError)

    def _ingest(self, caller: Caller, command, reader, context) -> int:
        """Bulk ingest (see ingest.py), on the command's transaction when it names one."""
        if caller.role == auth.READ_ONLY:
            raise auth.Refused("read-only token: bulk ingest writes a table, which it may not")
        transaction = self._transaction_id(command, caller)
        if transaction is None:
            transaction = self.transactions.of_peer(caller.token, context.peer())

        def run(session: Session) -> int:
            return ingest.ingest(session.con, command, reader.to_reader())

        return self._watched(caller, transaction, context, run, duckdb.Error)

    # -- DoAction --------------------------------------------------------------------------
    def list_actions(self, context) -> list[tuple[str, str]]:
        return [
            ("CreatePreparedStatement", "prepare a query"),
            ("ClosePreparedStatement", "close a prepared statement"),
            ("CancelFlightInfo", "cancel a query between batches"),
            ("CancelQuery", "cancel a query between batches (deprecated form)"),
            ("BeginTransaction", "begin a transaction"),
            ("EndTransaction", "commit or roll back a transaction"),
        ]

    @one_line_errors
    def do_action(self, context, action) -> Iterator[bytes]:
        caller = self._caller(context)
        body = action.body.to_pybytes() if action.body is not None else b""
        kind = action.type
        if kind == "CreatePreparedStatement":
            _, request = messages.unpack(body)
            if not hasattr(request, "query"):
                raise ValueError(
                    "CreatePreparedStatement needs an ActionCreatePreparedStatementRequest"
                )
            self._check(caller, request.query)
            transaction = self._transaction_id(request, caller)
            handle = secrets.token_bytes(16)
            with self.lock:
                self._forget_old()
                self.prepared[handle] = Prepared(request.query, caller, transaction=transaction)
            result = messages.new(
                "ActionCreatePreparedStatementResult", prepared_statement_handle=handle
            )
            schema = self._dataset_schema(request.query)
            if schema is not None:
                result.dataset_schema = schema.serialize().to_pybytes()
            return [messages.pack(result)]
        if kind == "BeginTransaction":
            session = self._client_session(caller)
            try:
                handle = self.transactions.begin(caller.token, session, context.peer())
            except BaseException:
                session.close()
                raise
            result = messages.new("ActionBeginTransactionResult", transaction_id=handle)
            return [messages.pack(result)]
        if kind == "EndTransaction":
            _, request = messages.unpack(body)
            if not hasattr(request, "action"):
                raise ValueError("EndTransaction needs an ActionEndTransactionRequest")
            self.transactions.end(request.transaction_id, caller.token, request.action)
            return []
        if kind == "ClosePreparedStatement":
            _, request = messages.unpack(body)
            with self.lock:
                prepared = self.prepared.get(request.prepared_statement_handle)
                if prepared is not None and prepared.owner.token == caller.token:
                    del self.prepared[request.prepared_statement_handle]
            return []
        if kind in ("CancelFlightInfo", "CancelQuery"):
            if kind == "CancelFlightInfo":
                info_bytes = messages.parse("CancelFlightInfoRequest", body).info
            else:
                _, request = messages.unpack(body)
                info_bytes = request.info
            cancelled = self._cancel(info_bytes, caller)
            if kind == "CancelFlightInfo":
                status = messages.new("CancelFlightInfoResult", status=cancelled)
                return [status.SerializeToString()]
            return [messages.pack(messages.new("ActionCancelQueryResult", result=cancelled))]
        raise NotImplementedError(f"action {kind!r} is not supported by duck_synth")

    def _dataset_schema(self, query: str) -> pa.Schema | None:
        cursor = self.session.con.cursor()
        try:
            return metadata.dataset_schema(cursor, query)
        finally:
            cursor.close()

    def _cancel(self, info_bytes: bytes, caller: Caller) -> int:
        try:
            info = flight.FlightInfo.deserialize(info_bytes)
        except (pa.ArrowException, TypeError):
            raise ValueError("malformed FlightInfo in the cancel request") from None
        with self.lock:
            for endpoint in info.endpoints:
                with contextlib.suppress(ValueError, NotImplementedError, AttributeError):
                    _, message = messages.unpack(endpoint.ticket.ticket)
                    handle = message.statement_handle
                    pending = self.pending.pop(handle, None) or self.running.get(handle)
                    if pending is not None and pending.owner.token == caller.token:
                        pending.cancelled.set()
        return messages.CANCELLED
