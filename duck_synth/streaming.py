"""Session.stream: a statement's rows handed out as they are made.

A statement that reads one generate() row by row (a projection, a WHERE the rewrite could not
push, scalar expressions: ``SELECT cut, price * 2 FROM generate('d') WHERE ...``) runs once per
generated batch, on the batch, in the reader's thread: the first rows arrive when the first
batch is drawn, memory stays at one batch, and closing the reader stops the generation between
batches. Any other statement (aggregates, joins, ORDER BY, several generate() calls) runs in
DuckDB as usual and its result streams from DuckDB. DuckDB's own threads never call back into
Python here: a thread left inside a Python stream when the process exits would crash it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from . import spool
from .generate import Rows
from .rewrite import DUCKDB, generate_call

BATCH_VIEW = "synth_stream_batch"
# DuckDB runs a streaming query ahead of its reader up to this much (default ~1 MB)
STREAM_BUFFER = "64KB"
CLAUSES_OF_WHOLE_RESULTS = ("group", "having", "order", "limit", "offset", "distinct", "qualify")


def small_buffer(cursor) -> None:
    """A small streaming buffer, so a streamed result is read as it is made (a server whose
    settings are locked keeps DuckDB's default)."""
    with contextlib.suppress(duckdb.InvalidInputException):
        cursor.execute(f"SET streaming_buffer_size = '{STREAM_BUFFER}'")


def row_wise_generate(tree: exp.Expression) -> exp.Anonymous | None:
    """The generate() call when ``tree`` reads it row by row (so it may run batch by batch)."""
    if not isinstance(tree, exp.Select) or tree.args.get("with") or tree.args.get("joins"):
        return None
    if any(tree.args.get(clause) for clause in CLAUSES_OF_WHOLE_RESULTS):
        return None
    from_ = tree.args.get("from_") or tree.args.get("from")
    call = generate_call(from_.this) if from_ is not None else None
    if call is None:
        return None
    where = tree.args.get("where")
    for expression in [*tree.expressions, *([where] if where else [])]:
        if not _row_wise(expression):
            return None
    return call


def _row_wise(expression: exp.Expression) -> bool:
    """Scalar: no aggregate, window, subquery, or function sqlglot does not know (it could be
    an aggregate DuckDB knows, e.g. histogram())."""
    for node in expression.walk():
        if isinstance(node, exp.AggFunc | exp.Window | exp.Subquery | exp.Select | exp.Anonymous):
            return False
    return True


def generation_stream(
    con: duckdb.DuckDBPyConnection,
    tree: exp.Select,
    call: exp.Anonymous,
    batch_rows: int,
    on_error: Callable[[Exception], Exception],
) -> pa.RecordBatchReader:
    """``tree`` (which reads ``call`` row by row) run on each batch of the call's rows."""
    cursor = con.cursor()
    try:
        model, *arguments = call.expressions
        ((spec, options_json),) = cursor.execute(
            f"SELECT {model.sql(DUCKDB)}, "
            f"generate_options({', '.join(a.sql(DUCKDB) for a in arguments)})"
        ).fetchall()
        rows = Rows(con.cursor(), spec, options_json)
        table = call.parent
        batch = sqlglot.parse_one(spool.cast_sql(BATCH_VIEW, rows.column_types), read=DUCKDB)
        table.replace(exp.Subquery(this=batch, alias=table.args.get("alias")))
        query = tree.sql(DUCKDB)
        schema = _run_on(cursor, query, rows.schema.empty_table()).schema
    except duckdb.Error as error:
        cursor.close()
        raise on_error(error) from None
    except BaseException:
        cursor.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for generated in rows:
                result = _run_on(cursor, query, generated).cast(schema)
                yield from result.to_batches(max_chunksize=batch_rows)
        except duckdb.Error as error:
            raise on_error(error) from None
        finally:
            cursor.close()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _run_on(cursor: duckdb.DuckDBPyConnection, query: str, batch: pa.Table) -> pa.Table:
    cursor.register(BATCH_VIEW, batch)
    try:
        return cursor.execute(query).to_arrow_table()
    finally:
        cursor.unregister(BATCH_VIEW)


def result_stream(
    cursor: duckdb.DuckDBPyConnection,
    batch_rows: int,
    files: list[str],
    on_error: Callable[[Exception], Exception],
) -> pa.RecordBatchReader:
    """The executed statement's result on ``cursor``, read from DuckDB as the client reads it;
    the spool files it reads are removed (and the cursor closed) when the stream ends."""
    if cursor.description is None:
        cursor.close()
        spool.remove(files)
        return pa.table({}).to_reader()
    reader = cursor.to_arrow_reader(batch_rows)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
        except (duckdb.Error, pa.ArrowException) as error:
            raise on_error(error) from None
        finally:
            reader.close()
            cursor.close()
            spool.remove(files)

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
