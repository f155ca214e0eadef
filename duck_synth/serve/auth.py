"""Who may do what on a server: tokens, their roles, and the read-only rule.

A token is ``admin`` (anything within the server's --allow-files folders) or ``read_only`` (may
read tables and generate, may not train, drop, import, write tables or files). What a statement
does is decided by access.py on DuckDB's parse of it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import duckdb

from .. import access
from ..access import Refused
from ..caller import ADMIN, READ_ONLY, Rights

__all__ = ["ADMIN", "READ_ONLY", "LOOPBACK_HOSTS", "Refused", "Tokens", "check"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Tokens:
    """The server's tokens. None at all: no authentication (loopback only)."""

    admin: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return bool(self.admin or self.read_only)

    def role(self, token: str | None) -> str | None:
        """The token's role; None for an unknown token. Compared in constant time."""
        if not self.required:
            return ADMIN
        if not token:
            return None
        found = None
        for role, known in ((ADMIN, self.admin), (READ_ONLY, self.read_only)):
            for candidate in known:
                if hmac.compare_digest(candidate.encode(), token.encode()):
                    found = found or role
        return found


def check(con: duckdb.DuckDBPyConnection, role: str, sql: str) -> None:
    """Raise Refused when ``role`` may not run ``sql`` (access.py decides)."""
    access.check_statement(con, sql, Rights(role=role, remote=True))
