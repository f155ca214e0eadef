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

This module is the server: its calls are answered by flight_queries (GetFlightInfo, DoGet),
flight_updates (DoPut) and flight_actions (DoAction), over the state of flight_statements.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.flight as flight

from ..connection import Session
from . import auth, flight_actions, flight_queries, flight_updates
from .flight_auth import AuthMiddlewareFactory, NoHandshakeMessages, one_line_errors
from .flight_calls import Caller
from .flight_statements import Statements


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
        self.statements = Statements(session, policy)

    def shutdown(self) -> None:
        super().shutdown()
        self.statements.close()

    def _caller(self, context) -> Caller:
        return context.get_middleware("auth").caller

    @one_line_errors
    def get_flight_info(self, context, descriptor) -> flight.FlightInfo:
        return flight_queries.flight_info(self.statements, self._caller(context), descriptor)

    @one_line_errors
    def do_get(self, context, ticket) -> flight.FlightDataStream:
        return flight_queries.fetch(self.statements, context, self._caller(context), ticket)

    @one_line_errors
    def do_put(self, context, descriptor, reader, writer) -> None:
        caller = self._caller(context)
        flight_updates.put(self.statements, context, caller, descriptor, reader, writer)

    def list_actions(self, context) -> list[tuple[str, str]]:
        return list(flight_actions.ACTIONS)

    @one_line_errors
    def do_action(self, context, action) -> Iterator[bytes]:
        return flight_actions.act(self.statements, context, self._caller(context), action)
