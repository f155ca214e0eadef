"""Who a Flight SQL call comes from (bearer tokens, Basic handshake), and how its errors reach
the client: one line, the status that says what kind of failure it was."""

from __future__ import annotations

import base64
import functools
import logging
import secrets

import duckdb
import pyarrow.flight as flight

from .. import spool
from ..errors import SynthError
from . import auth
from .flight_calls import Caller


class AuthMiddleware(flight.ServerMiddleware):
    def __init__(self, caller: Caller, reply_header: str | None):
        self.caller = caller
        self.reply_header = reply_header

    def sending_headers(self) -> dict:
        return {"authorization": self.reply_header} if self.reply_header else {}


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Bearer tokens on every call; a Basic handshake (any user, the token as password) is
    answered with the bearer token to use."""

    def __init__(self, tokens: auth.Tokens):
        self.tokens = tokens

    def start_call(self, info, headers) -> AuthMiddleware:
        value = (headers.get("authorization") or [""])[0]
        scheme, _, credential = value.partition(" ")
        reply = None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential + "=" * (-len(credential) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                raise flight.FlightUnauthenticatedError("malformed Basic credentials") from None
            token = decoded.partition(":")[2]
            reply = f"Bearer {token}"
        elif scheme.lower() == "bearer":
            token = credential
        else:
            token = None
        role = self.tokens.role(token)
        if role is None:
            raise flight.FlightUnauthenticatedError(
                "invalid or missing token (send 'authorization: Bearer <token>')"
            )
        caller = Caller(token, role, self.tokens.deployments_of(token))
        return AuthMiddleware(caller, reply if self.tokens.required else None)


class NoHandshakeMessages(flight.ServerAuthHandler):
    """Handshake succeeds at once: the token travels in headers (see AuthMiddlewareFactory)."""

    def authenticate(self, outgoing, incoming) -> None:
        return None

    def is_valid(self, token) -> str:
        return ""


log = logging.getLogger("duck_synth.serve")


def one_line_errors(method):
    """A client gets one line and never a traceback or a server path: pyarrow sends a Python
    exception's traceback along with it, so every error leaves as a Flight error. Unexpected
    ones are logged here in full and reach the client as a reference to the log."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except flight.FlightError:
            raise
        except Exception as error:  # noqa: BLE001  every error leaves as one line
            failure = client_error(error, method.__name__)
        # raised outside the except block: the client's error keeps no reference to the
        # original exception, its traceback or the frames (and tensors) it holds
        raise failure

    return wrapper


def client_error(error: Exception, where: str) -> flight.FlightError:
    """The one-line Flight error a client gets for ``error``; unexpected ones are logged."""
    if isinstance(error, auth.Refused):
        return flight.FlightUnauthorizedError(one_line(error))
    if isinstance(error, SynthError | duckdb.Error | ValueError | KeyError):
        text = error.args[0] if isinstance(error, KeyError) and error.args else error
        return flight.FlightServerError(one_line(text))
    if isinstance(error, NotImplementedError):
        return flight.FlightServerError(f"UNIMPLEMENTED: {one_line(error)}")
    reference = secrets.token_hex(4)
    log.error("internal error %s in %s", reference, where, exc_info=error)
    return flight.FlightInternalError(
        f"internal error (the server's log has the details, reference {reference})"
    )


def one_line(error) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.replace(spool.folder(), "<spool>")
