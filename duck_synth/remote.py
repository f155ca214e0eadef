"""Remote sessions: the same API as a local Session, against a ``duck-synth serve`` server over
Arrow Flight SQL (ADBC), and the connection profiles of ``~/.config/duck_synth/config.toml``:

    default = "team"

    [profiles.local]
    database = "synth.duckdb"

    [profiles.team]
    url = "grpc+tls://synth.example.com:8815"
    token_env = "TEAM_SYNTH_TOKEN"   # or token = "..."
    tls_root_certs = "/etc/ssl/team-ca.pem"

``DUCK_SYNTH_CONFIG`` names another file.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import tomllib

import pyarrow as pa

from .errors import SynthError
from .interface import Conveniences, Result

REMOTE_URL = re.compile(r"^grpc(\+tcp|\+tls)?://", re.I)
CONFIG_PATH = "~/.config/duck_synth/config.toml"


def is_remote(target: str | None) -> bool:
    return bool(target) and bool(REMOTE_URL.match(target))


class RemoteSession(Conveniences):
    """duck_synth SQL run by a server; results come back as Arrow."""

    def __init__(self, url: str, token: str | None = None, tls_root_certs: str | None = None):
        import adbc_driver_flightsql.dbapi as flightsql
        from adbc_driver_manager import Error as AdbcError

        self.path = url
        self.read_only = False
        self._errors = AdbcError
        options = {}
        if token:
            options["adbc.flight.sql.authorization_header"] = f"Bearer {token}"
        if tls_root_certs:
            with open(tls_root_certs, encoding="utf-8") as handle:
                options["adbc.flight.sql.client_option.tls_root_certs"] = handle.read()
        try:
            self._connection = flightsql.connect(url, db_kwargs=options, autocommit=True)
            self._connection.adbc_get_info()  # fail here, not at the first statement
        except AdbcError as error:
            raise SynthError(f"cannot connect to {url}: {_message(error)}") from None
        self._running: list = []  # the cursors of statements running or read: interrupt()
        self._lock = threading.Lock()

    def _execute(self, query: str, parameters=None):
        cursor = self._connection.cursor()
        with self._lock:
            self._running.append(cursor)
        try:
            cursor.execute(query, parameters)
        except self._errors as error:
            self._done(cursor)
            raise SynthError(_message(error)) from None
        except BaseException:
            self._done(cursor)
            raise
        return cursor

    def _done(self, cursor) -> None:
        with self._lock:
            self._running = [c for c in self._running if c is not cursor]
        cursor.close()

    def sql(self, query: str, parameters=None) -> Result:
        cursor = self._execute(query, parameters)
        try:
            return Result(cursor.fetch_arrow_table() if cursor.description else None)
        except self._errors as error:
            raise SynthError(_message(error)) from None
        finally:
            self._done(cursor)

    execute = sql

    def stream(self, query: str, parameters=None) -> pa.RecordBatchReader:
        """The rows as the server generates them."""
        cursor = self._execute(query, parameters)
        try:
            reader = cursor.fetch_record_batch()
        except self._errors as error:
            self._done(cursor)
            raise SynthError(_message(error)) from None

        def batches():  # holds the cursor: the stream lives as long as it is read
            try:
                yield from reader
            except self._errors as error:
                raise SynthError(_message(error)) from None
            finally:
                self._done(cursor)

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def explain(self, query: str) -> str:
        query = re.sub(r"^\s*explain\s+", "", query, flags=re.I)
        result = self.sql(f"EXPLAIN {query}")
        column = "explain" if "explain" in result.columns else result.columns[-1]
        return "\n".join(str(v) for v in result.arrow().column(column).to_pylist())

    def interrupt(self) -> None:
        """Cancel the statements running (or being read) on this session, from another thread:
        the server stops them as a client's cancel (a training adds no model)."""
        with self._lock:
            cursors = list(self._running)
        for cursor in cursors:
            with contextlib.suppress(self._errors):
                cursor.adbc_cancel()

    def close(self) -> None:
        self._connection.close()


def _message(error: Exception) -> str:
    """The server's one line out of an ADBC error."""
    text = str(error).splitlines()[0]
    text = re.sub(r"^[A-Z_]+: \[FlightSQL\] ", "", text)
    return re.sub(r"\. Detail: .*$", "", text).strip()


def load_config(path: str | None = None) -> dict:
    path = os.path.expanduser(path or os.environ.get("DUCK_SYNTH_CONFIG") or CONFIG_PATH)
    if not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SynthError(f"{path}: not valid TOML ({error})") from None


def profile_settings(name: str | None) -> dict | None:
    """The settings of profile ``name`` (None: the default profile, if the file names one)."""
    config = load_config()
    profiles = config.get("profiles", {})
    if name is None:
        name = config.get("default")
        if name is None:
            return None
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise SynthError(f"unknown profile '{name}' (profiles: {known})")
    settings = dict(profiles[name])
    token_env = settings.pop("token_env", None)
    if token_env and "token" not in settings:
        if token_env not in os.environ:
            raise SynthError(f"profile '{name}': environment variable {token_env} is not set")
        settings["token"] = os.environ[token_env]
    unknown = set(settings) - {"url", "database", "token", "tls_root_certs", "read_only", "ray"}
    if unknown:
        raise SynthError(f"profile '{name}': unknown setting {', '.join(sorted(unknown))}")
    if ("url" in settings) == ("database" in settings):
        raise SynthError(f"profile '{name}': give either url or database")
    return settings
