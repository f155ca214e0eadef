"""Who may do what on a server: tokens, their roles, and the read-only rule.

A token is ``admin`` (anything) or ``read_only`` (may read tables and generate, may not train,
drop, import, write tables or files). The rule is checked on the statement as the client sent
it, with DuckDB's own parser: only SELECT statements serialise to JSON, and the JSON names every
function the statement calls, macros and table functions included.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field

import duckdb
import sqlglot
from sqlglot import exp

from ..rewrite import DUCKDB
from ..workflows import workflow_queries

ADMIN, READ_ONLY = "admin", "read_only"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Functions a read-only token may not call: they change the database or the server's files, or
# run SQL text the rule cannot see (query()).
WRITING_FUNCTIONS = {
    "train",
    "generate_into",
    "drop_model",
    "import_model",
    "export_model",
    "report",
    "create_workflow",
    "drop_workflow",
    "query",
    "query_table",
    "glob",
    "sniff_csv",
}


class Refused(Exception):
    """A statement the caller's token may not run (one line, naming the culprit)."""


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
    """Raise Refused when ``role`` may not run ``sql``."""
    if role == ADMIN:
        return
    for statement in _statements(sql):
        _check_read_only(con, statement, depth=0)


def _statements(sql: str) -> list[str]:
    from ..statements import script_statements

    return script_statements(sql) or [sql]


def _check_read_only(con: duckdb.DuckDBPyConnection, statement: str, depth: int) -> None:
    statement = re.sub(r"^\s*explain\s+(?!analy[sz]e\b)", "", statement, flags=re.I)
    parsed = json.loads(
        con.execute("SELECT json_serialize_sql(?::VARCHAR)", [statement]).fetchone()[0]
    )
    if parsed.get("error"):
        kind = statement.strip().split(None, 1)[0].upper() if statement.strip() else "empty"
        raise Refused(f"read-only token: only queries may run here, not {kind} statements")
    names = _function_names(parsed)
    workflows = workflow_queries(con)
    for name in sorted(names):
        lowered = name.lower()
        if (
            lowered in WRITING_FUNCTIONS
            or lowered.startswith("read_")
            or (lowered.startswith("synth_") and lowered != "synth_sql")
        ):
            raise Refused(
                f"read-only token: {lowered}() is not allowed (it writes or runs SQL text)"
            )
        if lowered in workflows and depth < 4:
            _check_read_only(con, workflows[lowered], depth + 1)
    if "synth_sql" in {n.lower() for n in names}:
        for inner in _synth_sql_arguments(statement):
            if depth < 4:
                _check_read_only(con, inner, depth + 1)


def _function_names(tree) -> set[str]:
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            name = node.get("function_name")
            if isinstance(name, str):
                found.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def _synth_sql_arguments(statement: str) -> list[str]:
    """The SQL text given to each synth_sql(...): checked like a statement of its own."""
    try:
        tree = sqlglot.parse_one(statement, read=DUCKDB)
    except sqlglot.errors.SqlglotError:
        raise Refused("read-only token: synth_sql() with SQL text that cannot be read") from None
    texts = []
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() == "synth_sql":
            argument = call.expressions[0] if call.expressions else None
            if not (isinstance(argument, exp.Literal) and argument.is_string):
                raise Refused("read-only token: synth_sql() needs its SQL as a string literal")
            texts.append(argument.this)
    return texts
