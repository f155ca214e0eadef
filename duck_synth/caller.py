"""Who runs the statement on this thread, and whether it may go on.

A server sets a ``Call`` around each client statement (``with caller.running(call):``); every
UDF bound by that statement runs on the same thread (as spool.py tracks files), so it reads the
caller's rights and cancel flag here: a string argument of generate() or train() is checked
against the same rule as the statement that carried it, and a long training stops when the
client cancels. Threads without a call of their own (local use; Quack's worker threads on a
server) get the process default, which a server narrows with ``set_default``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from .errors import Cancelled, SynthError

ADMIN, READ_ONLY, DEPLOYMENT = "admin", "read_only", "deployment"


@dataclass(frozen=True)
class Rights:
    """What the caller may do.

    ``folders``: the folders whose files the caller may read and write (None: any file, as a
    local user may; empty: none). ``remote``: a server's client, who never reaches the server's
    Python objects or SQL text the rule cannot see (``query()``). ``deployments``: the
    pipelines a deployment token may call infer() on, and nothing else (access.py).
    """

    role: str = ADMIN
    folders: tuple[str, ...] | None = None
    remote: bool = False
    max_rows: int | None = None
    deployments: tuple[str, ...] | None = None

    @property
    def read_only(self) -> bool:
        return self.role in (READ_ONLY, DEPLOYMENT)


LOCAL = Rights()


@dataclass
class Call:
    rights: Rights = LOCAL
    cancelled: threading.Event = field(default_factory=threading.Event)
    timeout: float | None = None  # seconds the statement may run
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        """Raise Cancelled when the call was cancelled or ran past its timeout; call it between
        steps and batches."""
        if self.cancelled.is_set():
            raise Cancelled("cancelled")
        if self.timeout is not None and time.monotonic() - self.started > self.timeout:
            raise Cancelled(f"statement timeout: ran past the server's limit of {self.timeout:g} s")

    def cancel(self) -> None:
        self.cancelled.set()


_local = threading.local()
_default = Call()


def current() -> Call:
    return getattr(_local, "call", None) or _default


def explicit() -> Call | None:
    """The call set on this thread with ``running`` (None: the thread runs as the default)."""
    return getattr(_local, "call", None)


def rights() -> Rights:
    return current().rights


def check() -> None:
    """Stop here if the running statement was cancelled or timed out."""
    current().check()


def set_default(call: Call) -> None:
    """The call of threads that run no client statement of their own (a server narrows it)."""
    global _default
    _default = call


@contextlib.contextmanager
def running(call: Call):
    """Run the block as ``call`` on this thread."""
    outer = getattr(_local, "call", None)
    _local.call = call
    try:
        yield call
    finally:
        _local.call = outer


def refuse_rows(rows: int, what: str) -> None:
    """A one-line refusal when ``rows`` exceed the caller's row limit."""
    limit = rights().max_rows
    if limit is not None and rows > limit:
        raise SynthError(
            f"{what}: {rows:,} rows exceed the server's limit of {limit:,} rows per statement"
        )
