"""A duck_synth session: a DuckDB connection with the catalog, the UDFs and the rewrite.

>>> import duck_synth
>>> s = duck_synth.connect("synth.duckdb")
>>> s.sql("FROM train('d', 'diamonds')").fetchall()
>>> s.sql("SELECT * FROM generate('d', target => 100) WHERE cut = 'Fair'").df()
"""

from __future__ import annotations

import functools
import re
import threading

import duckdb
import pandas  # noqa: F401  DuckDB imports it at the first parameterized query: pay it here, once
import pyarrow as pa
from sqlglot import exp

from . import catalog, spool
from .batches import generate_into
from .errors import SynthError
from .rewrite import DUCKDB, rewrite_sql, standalone_call
from .statements import script_statements
from .workflows import workflow_queries

_udf_errors = threading.local()
# Table functions that do their work while a statement is bound (so also under DuckDB's EXPLAIN).
ACTING_FUNCTIONS = re.compile(
    r"\b(train|generate|generate_into|resample|recommend|describe_model|drop_model|export_model|"
    r"import_model|evaluate|report|validate|create_workflow|drop_workflow|synth_sql|synth_\w+)\s*\(",
    re.I,
)


class Result:
    """A materialised statement result."""

    def __init__(self, table: pa.Table | None):
        self._table = table if table is not None else pa.table({})

    @property
    def columns(self) -> list[str]:
        return self._table.column_names

    def arrow(self) -> pa.Table:
        return self._table

    def df(self):
        return self._table.to_pandas()

    def fetchall(self) -> list[tuple]:
        columns = [c.to_pylist() for c in self._table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return repr(self._table.to_pandas()) if self._table.num_columns else "Result(no rows)"


def _udf(function):
    """Run ``function`` as a UDF: a SynthError is kept so the session can re-raise it cleanly."""

    @functools.wraps(function)
    def wrapper(*args):
        try:
            return function(*args)
        except SynthError as error:
            _udf_errors.last = error
            raise
        except KeyboardInterrupt:
            _udf_errors.last = SynthError("interrupted")
            raise

    return wrapper


class Session:
    def __init__(self, con: duckdb.DuckDBPyConnection, path: str | None, read_only: bool = False):
        self.con = con
        self.path = path
        self.read_only = read_only
        register_functions(con)
        catalog.install(con, read_only=read_only)

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

    def _acts(self, statement: str) -> bool:
        """Whether binding the statement would run something (a generation, a training...)."""
        if ACTING_FUNCTIONS.search(statement):
            return True
        names = workflow_queries(self.con.cursor())
        return any(re.search(rf"\b{re.escape(n)}\s*\(", statement, flags=re.I) for n in names)

    def sql(self, query: str) -> Result:
        """Run duck_synth SQL (rewrite included); returns the last statement's result.

        Statements run one by one, each rewritten just before it runs, so a statement sees the
        models made by the ones before it.
        """
        result = None
        for statement in script_statements(query) or [query]:
            result = self._run(statement)
        return Result(result)

    def _run(self, statement: str) -> pa.Table | None:
        if re.match(r"^\s*explain\s", statement, flags=re.I) and self._acts(statement):
            # DuckDB's EXPLAIN would bind, and so run, train()/generate()/drop_model()...
            return pa.table({"explain": self.explain(statement).splitlines()})
        appended = self._standalone_append(statement)
        if appended is not None:
            return appended
        rewritten, _ = self.rewrite(statement)
        before = spool.files()
        _udf_errors.last = None
        try:
            result = None
            for text in rewritten:
                cursor = self.con.execute(text)
                result = cursor.to_arrow_table() if cursor.description else None
            return result
        except duckdb.Error as error:
            raise _clean_error(error) from None
        finally:
            spool.remove(spool.files() - before)

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
            raise _clean_error(error) from None
        summary = generate_into(self.con.cursor(), table, model, options_json)
        return pa.Table.from_pylist([summary])

    def execute(self, query: str) -> Result:
        return self.sql(query)

    # -- Python conveniences over the SQL ------------------------------------------------------
    def train(self, name: str, source: str, **options) -> dict:
        args = "".join(f", {k} => {spool.sql_literal(v)}" for k, v in options.items())
        result = self.sql(
            f"FROM train({spool.sql_literal(name)}, {spool.sql_literal(source)}{args})"
        )
        return dict(zip(result.columns, result.fetchone(), strict=True))

    def generate(self, model: str, **options) -> Result:
        args = "".join(f", {k} => {spool.sql_literal(v)}" for k, v in options.items())
        return self.sql(f"FROM generate({spool.sql_literal(model)}{args})")

    def models(self) -> Result:
        return self.sql("FROM models()")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clean_error(error: duckdb.Error) -> Exception:
    last = getattr(_udf_errors, "last", None)
    if last is not None:
        return last
    text = str(error)
    match = re.search(r"SynthError: (.*)", text)
    if match:
        return SynthError(match.group(1))
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return SynthError(first)


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Python UDFs behind the table macros (once per database instance)."""
    from . import actions, transforms

    existing = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name LIKE 'synth\\_%' ESCAPE '\\'"
        ).fetchall()
    }
    for name, function, params in actions.udfs(con):
        if name not in existing:
            con.create_function(name, _udf(function), params, "VARCHAR", side_effects=True)
    for name, function, params, returns in transforms.SCALAR_UDFS:
        if name not in existing:
            con.create_function(name, _udf(function), params, returns, type="arrow")


def connect(path: str | None = None, read_only: bool = False) -> Session:
    """Open (or create) a DuckDB database with duck_synth in it; ``None`` is in-memory."""
    try:
        con = duckdb.connect(path or ":memory:", read_only=read_only)
    except duckdb.IOException as error:
        text = str(error)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            holder = f" (PID {pid.group(1)})" if pid else ""
            raise SynthError(
                f"database '{path}' is in use by another process{holder}; "
                f"close it there (or wait for it to finish) and try again"
            ) from None
        raise SynthError(f"cannot open database '{path}': {text.splitlines()[0]}") from None
    return Session(con, path, read_only)
