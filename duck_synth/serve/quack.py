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
import re
import threading

import duckdb

from .. import sqltext
from ..connection import Session
from ..errors import SynthError
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
    """Quack for admin tokens. Read-only tokens are refused here: the UDFs a Quack statement
    binds run on DuckDB's worker threads, where the caller's rights (caller.py) cannot follow
    them, so a string argument (a source, seed_rows...) could not be checked as it runs; they
    use Flight SQL, where it can."""

    def __init__(self, session: Session, tokens: auth.Tokens, policy=None):
        self.session = session
        self.tokens = tokens
        self.policy = policy
        self.roles: dict[str, str] = {}
        self.lock = threading.Lock()
        self.uri: str | None = None

    def prepare(self) -> None:
        """Load the extensions and install our checks: before the server locks its settings."""
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

    def start(self, host: str, port: int) -> str:
        con = self.session.con
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
        """The SQL to run for ``statement``. A refusal is returned as SQL raising it when the
        statement is a query (the client reads the reason); for anything else it raises, since
        Quack runs the client's own rows into an INSERT whatever SQL comes back."""
        with self.lock:
            role = self.roles.get(connection)
        if role is None:
            role = auth.ADMIN if not self.tokens.required else None
        if role is None:
            return _refuse(statement, "not authenticated")
        if role != auth.ADMIN:
            return _refuse(statement, READ_ONLY_REFUSAL)
        session = Session(self.session.con.cursor(), self.session.path, install=False)
        try:
            if session.explains_acting(statement):
                lines = session.explain(statement).splitlines()
                return (
                    "SELECT unnest(["
                    + ", ".join(map(sqltext.quote_literal, lines))
                    + "]) AS explain"
                )
            statements, _ = session.rewrite(statement)
            return ";\n".join(statements)
        except SynthError as error:
            return _refuse(statement, str(error))
        finally:
            session.close()


READ_ONLY_REFUSAL = (
    "read-only tokens are not served over Quack: connect over Flight SQL (grpc://...) with "
    "an ADBC client or duck_synth.connect()"
)


def _refuse(statement: str, message: str) -> str:
    if re.match(r"^\s*(select|from|with|values|\()", statement, re.I):
        return f"SELECT error({sqltext.quote_literal(message)})"
    raise auth.Refused(message)
