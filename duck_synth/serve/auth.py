"""Who may do what on a server: tokens, their roles, and the read-only rule.

A token is ``admin`` (anything within the server's --allow-files folders), ``read_only`` (may
read tables and generate, may not train, drop, import, write tables or files) or a
``deployment`` token (may call infer() on its pipelines and nothing else). What a statement
does is decided by access.py on DuckDB's parse of it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import duckdb

from .. import access
from ..access import Refused
from ..caller import ADMIN, DEPLOYMENT, READ_ONLY, Rights

__all__ = ["ADMIN", "DEPLOYMENT", "READ_ONLY", "LOOPBACK_HOSTS", "Refused", "Tokens", "check"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Tokens:
    """The server's tokens. None at all: no authentication (loopback only)."""

    admin: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    deployment: dict[str, tuple[str, ...]] = field(default_factory=dict)  # token -> pipelines

    @property
    def required(self) -> bool:
        return bool(self.admin or self.read_only or self.deployment)

    def role(self, token: str | None) -> str | None:
        """The token's role; None for an unknown token. Compared in constant time."""
        if not self.required:
            return ADMIN
        if not token:
            return None
        found = None
        roles = ((ADMIN, self.admin), (READ_ONLY, self.read_only), (DEPLOYMENT, self.deployment))
        for role, known in roles:
            for candidate in known:
                if hmac.compare_digest(candidate.encode(), token.encode()):
                    found = found or role
        return found

    def deployments_of(self, token: str | None) -> tuple[str, ...] | None:
        """The pipelines a deployment token may call (None: not a deployment token)."""
        for candidate, pipelines in self.deployment.items():
            if token and hmac.compare_digest(candidate.encode(), token.encode()):
                return pipelines
        return None


def check(
    con: duckdb.DuckDBPyConnection,
    role: str,
    sql: str,
    deployments: tuple[str, ...] | None = None,
) -> None:
    """Raise Refused when ``role`` may not run ``sql`` (access.py decides)."""
    access.check_statement(con, sql, Rights(role=role, remote=True, deployments=deployments))
