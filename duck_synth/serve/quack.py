"""DuckDB's Quack protocol on the server's database, for the DuckDB CLI and other DuckDB
clients: ``ATTACH 'quack:host:port' AS remote`` reads tables, ``quack_query(...)`` runs SQL.

Quack calls two functions of ours for every client: one checks the client's token (and we
remember its role by connection id), the other receives each statement and returns the SQL to
run instead: the statement checked against the role and put through duck_synth's rewrite, so
``FROM quack_query('quack:...', 'FROM generate(''m'', target => 5) WHERE cut = ''Fair''')``
pushes the WHERE into generate() as it does locally. A refusal is returned as SQL that raises
it, so the client sees the reason, not just "Authorization failed".
"""

from __future__ import annotations

import contextlib
import os
import threading

import duckdb

from .. import sqltext
from ..errors import SynthError
from ..session import Session
from . import auth

EXTENSION_PACKAGES = (("duckdb_extension_httpfs", "httpfs"), ("duckdb_extension_quack", "quack"))


def extension_path(package: str, name: str) -> str:
    """The extension file shipped in its PyPI package (loaded offline, signature checked)."""
    module = __import__(package)
    folder = os.path.join(os.path.dirname(module.__file__), "extensions", f"v{duckdb.__version__}")
    return os.path.join(folder, f"{name}.duckdb_extension")


def load_statements() -> str:
    """The LOAD statements a DuckDB client (the CLI) runs to speak Quack, offline."""
    statements = []
    for package, name in EXTENSION_PACKAGES:
        try:
            path = extension_path(package, name)
        except ImportError:
            raise SynthError(
                f"Quack needs {package.replace('_', '-')}=={duckdb.__version__} "
                "(pip install it, or serve with --no-quack)"
            ) from None
        statements.append(f"LOAD {sqltext.quote_literal(path)};")
    return " ".join(statements)


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(load_statements())


class QuackEndpoint:
    def __init__(self, session: Session, tokens: auth.Tokens):
        self.session = session
        self.tokens = tokens
        self.roles: dict[str, str] = {}
        self.lock = threading.Lock()
        self.uri: str | None = None

    def start(self, host: str, port: int) -> str:
        con = self.session.con
        load_extensions(con)
        con.create_function(
            "synth_quack_authenticate",
            self.authenticate,
            ["VARCHAR", "VARCHAR", "VARCHAR"],
            "BOOLEAN",
            side_effects=True,
        )
        con.create_function(
            "synth_quack_authorize",
            self.authorize,
            ["VARCHAR", "VARCHAR"],
            "VARCHAR",
            side_effects=True,
        )
        con.execute("SET GLOBAL quack_authentication_function = 'synth_quack_authenticate'")
        con.execute("SET GLOBAL quack_authorization_function = 'synth_quack_authorize'")
        host_name = "localhost" if host in auth.LOOPBACK_HOSTS else host
        self.uri = f"quack:{host_name}:{port}"
        # Quack wants a server token of its own; clients are checked by authenticate()
        server_token = os.urandom(16).hex()
        con.execute(
            "FROM quack_serve(?, token => ?, allow_other_hostname => ?)",
            [self.uri, server_token, host not in auth.LOOPBACK_HOSTS],
        ).fetchall()
        return self.uri

    def stop(self) -> None:
        if self.uri:
            with contextlib.suppress(duckdb.Error):
                self.session.con.execute("FROM quack_stop(?)", [self.uri]).fetchall()

    def authenticate(self, connection: str, client_token: str | None, _server: str) -> bool:
        role = self.tokens.role(client_token)
        if role is None:
            return False
        with self.lock:
            self.roles[connection] = role
        return True

    def authorize(self, connection: str, statement: str) -> str:
        with self.lock:
            role = self.roles.get(connection)
        if role is None:
            role = auth.ADMIN if not self.tokens.required else None
        if role is None:
            return _raising("not authenticated")
        session = Session(self.session.con.cursor(), self.session.path, install=False)
        try:
            auth.check(session.con, role, statement)
            if session.explains_acting(statement):
                lines = session.explain(statement).splitlines()
                return (
                    "SELECT unnest([" + ", ".join(map(sqltext.quote_literal, lines)) + "]) AS explain"
                )
            statements, _ = session.rewrite(statement)
            return ";\n".join(statements)
        except auth.Refused as refused:
            return _raising(str(refused))
        except SynthError as error:
            return _raising(str(error))
        finally:
            session.close()


def _raising(message: str) -> str:
    return f"SELECT error({sqltext.quote_literal(message)})"
