"""Flight SQL bulk ingest (CommandStatementIngest): a client's Arrow stream into a table.

This is what ``adbc_ingest``, pandas ``DataFrame.to_sql`` over an ADBC connection and polars
``write_database(engine="adbc")`` send, to make tables a model can be trained on. The rows are
never formatted into SQL: the stream is registered on the statement's cursor as an Arrow scan
and read by one ``CREATE TABLE ... AS`` or ``INSERT ... BY NAME`` whose names are quoted.
"""

from __future__ import annotations

import secrets

import duckdb
import pyarrow as pa

from .. import sqltext
from . import messages


def ingest(con: duckdb.DuckDBPyConnection, command, rows: pa.RecordBatchReader) -> int:
    """Write ``rows`` into the table ``command`` names, as its TableDefinitionOptions say
    (create, append, replace, or fail); returns the number of rows written."""
    if not command.table:
        raise ValueError("bulk ingest needs a table name")
    options = messages.parse("TableDefinitionOptions", command.table_definition_options)
    if command.temporary and (command.HasField("catalog") or command.HasField("schema")):
        raise ValueError("a temporary table is the connection's own: give no catalog or schema")
    target = _qualified(command)
    exists = _exists(con, command)
    if exists and options.if_exists in (0, messages.EXISTS_FAIL):  # the spec's default: fail
        raise ValueError(f"table {target} already exists (ingest mode create)")
    if not exists and options.if_not_exist != messages.NOT_EXIST_CREATE:
        raise ValueError(f"table {target} does not exist (ingest mode append)")
    source = f"duck_synth_ingest_{secrets.token_hex(8)}"
    con.register(source, rows)
    try:
        if exists and options.if_exists == messages.EXISTS_APPEND:
            # by name: a frame's columns need not be in the table's order
            statement = f"INSERT INTO {target} BY NAME SELECT * FROM {source}"
        else:
            create = "CREATE OR REPLACE" if exists else "CREATE"
            temporary = " TEMPORARY" if command.temporary else ""
            statement = f"{create}{temporary} TABLE {target} AS SELECT * FROM {source}"
        written = con.execute(statement).fetchone()
    finally:
        con.unregister(source)
    return int(written[0]) if written else -1


def _qualified(command) -> str:
    parts = [
        command.catalog if command.HasField("catalog") else None,
        command.schema if command.HasField("schema") else None,
        command.table,
    ]
    return ".".join(sqltext.quote_identifier(p) for p in parts if p)


def _exists(con: duckdb.DuckDBPyConnection, command) -> bool:
    """Whether the target table exists, as the statement's own cursor sees it (a table made
    earlier in the same transaction counts)."""
    where, values = ["lower(table_name) = lower(?)"], [command.table]
    if command.temporary:
        where.append("temporary")
    if command.HasField("catalog"):
        where.append("database_name = ?")
        values.append(command.catalog)
    if command.HasField("schema"):
        where.append("schema_name = ?")
        values.append(command.schema)
    elif not command.temporary:
        where.append("schema_name = current_schema()")
    if not command.HasField("catalog") and not command.temporary:
        where.append("database_name = current_database()")
    query = f"SELECT count(*) FROM duckdb_tables() WHERE {' AND '.join(where)}"
    return con.execute(query, values).fetchone()[0] > 0
