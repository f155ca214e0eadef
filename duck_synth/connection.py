"""A duck_synth session: a DuckDB connection with the catalog, the UDFs and the rewrite.

>>> import duck_synth
>>> s = duck_synth.connect("synth.duckdb")
>>> s.sql("FROM train('d', 'diamonds')").fetchall()
>>> s.sql("SELECT * FROM generate('d', target => 100) WHERE cut = 'Fair'").df()
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import weakref

import duckdb
import pandas  # noqa: F401  DuckDB imports it at the first parameterized query: pay it here, once
import pyarrow as pa
import sqlglot
from sqlglot import exp

from . import caller, catalog, sources, spool, streaming, surface
from .errors import SynthError
from .generate_into import generate_into
from .interface import Conveniences, Result
from .rewrite import DUCKDB, rewrite_sql, standalone_call
from .statements import script_statements
from .udfs import clean_error, forget_udf_error, register_functions, stream_error
from .workflows import workflow_queries

STREAM_BATCH_ROWS = 65_536


class Session(Conveniences):
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: str | None,
        read_only: bool = False,
        install: bool = True,
    ):
        """``install=False``: a further session on a database another session has set up (a
        server's session per client, on its own cursor)."""
        self.con = con
        self.path = path
        self.read_only = read_only
        self.rights = caller.LOCAL  # what its statements may do (a server sets its client's)
        # One statement at a time: two threads on one DuckDB connection would mix results.
        # interrupt() never takes it: it reads the running calls and cursors under ``_guard``.
        self._lock = threading.RLock()
        self._guard = threading.Lock()
        self._calls: list[caller.Call] = []
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._objects: dict[str, object] = {}  # register(): Python objects read by name
        if install:
            register_functions(con)
            catalog.install(con, read_only=read_only)

    # -- Python objects -------------------------------------------------------------------------
    def register(self, name: str, data) -> None:
        """Make a pandas or polars DataFrame or an Arrow table readable by ``name`` in this
        session's SQL: ``FROM name`` and ``train('m', 'name')``, ``evaluate('name', ...)``...

        >>> s.register("people", people_df)
        >>> s.sql("FROM train('p', 'people')")

        Objects of the caller's scope are found by name without it, as DuckDB finds them."""
        if not sources.readable_object(data):
            raise SynthError(
                f"register({name!r}): give a pandas or polars DataFrame or an Arrow table, "
                f"not {type(data).__name__}"
            )
        self._objects[name] = data
        arrow = data.to_arrow() if type(data).__module__.startswith("polars") else data
        self.con.register(name, arrow)

    def unregister(self, name: str) -> None:
        """Forget what ``register`` made readable by ``name``."""
        if self._objects.pop(name, None) is not None:
            self.con.unregister(name)

    def _python_scope(self, call: caller.Call, frame) -> sources.PythonScope | None:
        """The Python objects this statement may read by name: none for a server's client, nor
        where DuckDB's replacement scans are off (a server turns them off for everyone)."""
        if call.rights.remote:
            return None
        (enabled,) = self.con.execute(
            "SELECT current_setting('python_enable_replacements')"
        ).fetchone()
        return sources.PythonScope(self._objects, frame) if enabled else None

    # -- SQL ------------------------------------------------------------------------------------
    def rewrite(self, query: str) -> tuple[list[str], list[str]]:
        statements, notes = rewrite_sql(query, *catalog.column_lookups(self.con.cursor()))
        return statements, notes.lines

    def explain(self, query: str) -> str:
        """Where each predicate went, and the SQL that runs."""
        query = re.sub(r"^\s*explain\s+", "", query, flags=re.I)
        statements, notes = self.rewrite(query)
        for name, runs_as in workflow_queries(self.con.cursor()).items():
            if re.search(rf"\b{re.escape(name)}\s*\(", query, flags=re.I):
                notes.append(f"{name}() is a workflow; it runs: {runs_as}")
        lines = notes or ["nothing to rewrite"]
        return "\n".join([*lines, "-- runs as:", *statements])

    def explains_acting(self, statement: str) -> bool:
        """An EXPLAIN of a statement that acts: answered with ``explain``, never bound."""
        return bool(re.match(r"^\s*explain\s", statement, flags=re.I)) and self._acts(statement)

    def _acts(self, statement: str) -> bool:
        """Whether binding the statement would run something (a generation, a training...)."""
        if surface.acting_pattern().search(statement):
            return True
        names = workflow_queries(self.con.cursor())
        return any(re.search(rf"\b{re.escape(n)}\s*\(", statement, flags=re.I) for n in names)

    def sql(self, query: str) -> Result:
        """Run duck_synth SQL (rewrite included); returns the last statement's result.

        Statements run one by one, each rewritten just before it runs, so a statement sees the
        models made by the ones before it.
        """
        frame = sources.caller_frame()
        with (
            self._lock,
            self._call() as call,
            sources.python_objects(self._python_scope(call, frame)),
        ):
            result = None
            for statement in script_statements(query) or [query]:
                call.check()  # an interrupt skips the script's remaining statements
                result = self._run(statement)
            return Result(result)

    @contextlib.contextmanager
    def _call(self):
        """The call the block runs as, which ``interrupt()`` cancels: the one set on this thread
        (a server's client statement), else a fresh one with the session's rights."""
        call = caller.explicit() or caller.Call(rights=self.rights)
        with self._guard:
            self._calls.append(call)
        try:
            with caller.running(call):
                yield call
        finally:
            self._forget(call)

    def _forget(self, call: caller.Call | None = None, cursor=None) -> None:
        """Stop reaching ``call`` and ``cursor`` from ``interrupt()`` (one entry of each)."""
        with self._guard:
            for running, item in ((self._calls, call), (self._cursors, cursor)):
                for i, entry in enumerate(running):
                    if entry is item:
                        del running[i]
                        break

    def _run(self, statement: str) -> pa.Table | None:
        if self.explains_acting(statement):
            # DuckDB's EXPLAIN would bind, and so run, train()/generate()/drop_model()...
            return pa.table({"explain": self.explain(statement).splitlines()})
        appended = self._standalone_append(statement)
        if appended is not None:
            return appended
        rewritten, _ = self.rewrite(statement)
        forget_udf_error()
        try:
            with spool.statement():
                result = None
                for text in rewritten:
                    caller.check()
                    cursor = self.con.execute(text)
                    result = cursor.to_arrow_table() if cursor.description else None
                return result
        except duckdb.Error as error:
            raise clean_error(error) from None

    def _stream_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for a stream, which ``interrupt()`` reaches until it is closed."""
        cursor = self.con.cursor()
        with self._guard:
            self._cursors.append(cursor)
        return cursor

    def _standalone_append(self, statement: str) -> pa.Table | None:
        """``FROM generate_into(...)`` alone runs here, outside any statement: inside one (as a
        table function), DuckDB can neither checkpoint nor clean up row versions until the
        statement ends, so a long append would hold every row it wrote in memory."""
        call = standalone_call(statement, "generate_into")
        if call is None:
            return None
        positional = [e for e in call.expressions if not isinstance(e, exp.Kwarg)]
        named = [e for e in call.expressions if isinstance(e, exp.Kwarg)]
        if len(positional) != 2:
            return None  # DuckDB's own error for a wrong call
        items = ", ".join(e.sql(DUCKDB) for e in positional)
        options = ", ".join(e.sql(DUCKDB) for e in named)
        try:
            # fetchall: a result left open keeps its transaction open, and so no checkpoint
            ((table, model, options_json),) = self.con.execute(
                f"SELECT {items}, generate_into_options({options})"
            ).fetchall()
        except duckdb.Error as error:
            raise clean_error(error) from None
        summary = generate_into(self.con.cursor(), table, model, options_json)
        return pa.Table.from_pylist([summary])

    def stream(self, query: str, batch_rows: int = STREAM_BATCH_ROWS) -> pa.RecordBatchReader:
        """Like ``sql``, but the last statement's rows come as a stream (see streaming.py): a
        statement reading one generate() row by row hands out each batch as it is drawn;
        closing the reader early stops the generation between batches. The rows are read as the
        statement's call (``interrupt()`` stops them too), on whichever thread reads them."""
        frame = sources.caller_frame()
        with (
            self._lock,
            self._call() as call,
            sources.python_objects(self._python_scope(call, frame)),
        ):
            cursor, reader = self._stream(query, batch_rows)
            with self._guard:  # the call stays interruptible while its rows are read
                self._calls.append(call)
        return self._read_as(call, cursor, reader)

    def _stream(
        self, query: str, batch_rows: int
    ) -> tuple[duckdb.DuckDBPyConnection | None, pa.RecordBatchReader]:
        statements = script_statements(query) or [query]
        for statement in statements[:-1]:
            self._run(statement)
        last = statements[-1]
        if self.explains_acting(last) or standalone_call(last, "generate_into"):
            table = self._run(last)
            return None, (table if table is not None else pa.table({})).to_reader()
        rewritten, _ = self.rewrite(last)
        for text in rewritten[:-1]:
            self._run(text)
        tree = _parse(rewritten[-1])
        call = streaming.row_wise_generate(tree) if tree is not None else None
        forget_udf_error()
        if call is not None:
            reader = streaming.generation_stream(self.con, tree, call, batch_rows, stream_error)
            return None, reader
        cursor = self._stream_cursor()  # its own: the open result goes with it when it ends
        with spool.statement() as made:
            try:
                streaming.small_buffer(cursor)
                caller.check()
                cursor.execute(rewritten[-1])
            except BaseException as error:
                cursor.close()
                self._forget(cursor=cursor)
                if isinstance(error, duckdb.Error):
                    raise clean_error(error) from None
                raise
            files = list(made)
            made.clear()  # the rows are read after this block: the stream removes the files
        return cursor, streaming.result_stream(cursor, batch_rows, files, stream_error)

    def _read_as(self, call: caller.Call, cursor, reader: pa.RecordBatchReader):
        """``reader``'s batches, each read as ``call`` (on whichever thread reads it); the call
        and cursor are forgotten when the stream ends, or is dropped unread."""
        release = functools.partial(self._forget, call, cursor)

        def batches():
            try:
                while True:
                    with caller.running(call):
                        call.check()
                        try:
                            batch = reader.read_next_batch()
                        except StopIteration:
                            return
                    yield batch
            finally:
                reader.close()
                released()

        stream = batches()
        released = weakref.finalize(stream, release)  # runs once: at the end, or when dropped
        released.atexit = False
        return pa.RecordBatchReader.from_batches(reader.schema, stream)

    def interrupt(self) -> None:
        """Stop the statement running on this session, from another thread: its call is
        cancelled (a training or a generation stops at its next step or batch, within a second
        or so; a cancelled training is recorded as cancelled and adds no model) and DuckDB is
        interrupted (a plain query stops). It never waits for the running statement."""
        with self._guard:
            calls = list(self._calls)
        for call in calls:
            call.cancel()
        self.interrupt_queries()

    def interrupt_queries(self) -> None:
        """Interrupt the DuckDB queries running on this session, leaving its calls as they are
        (a server stopping a statement past its timeout)."""
        with self._guard:
            cursors = list(self._cursors)
        for connection in [self.con, *cursors]:
            with contextlib.suppress(duckdb.Error):
                connection.interrupt()

    def execute(self, query: str) -> Result:
        return self.sql(query)

    def close(self) -> None:
        self.con.close()


def _parse(text: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(text, read=DUCKDB)
    except sqlglot.errors.SqlglotError:
        return None
