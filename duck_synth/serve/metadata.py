"""Flight SQL's catalog commands answered from DuckDB's own catalog, in the spec's schemas.

Listing never runs a generation: a table's Arrow schema comes from its declared column types
(``CAST(NULL AS type)``), not from reading it, so a view over generate() is listed, not run.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from .. import __version__, sqltext
from . import params

NAME = pa.utf8()
CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", NAME, nullable=False)])
DB_SCHEMAS_SCHEMA = pa.schema(
    [pa.field("catalog_name", NAME), pa.field("db_schema_name", NAME, nullable=False)]
)
TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", NAME),
        pa.field("db_schema_name", NAME),
        pa.field("table_name", NAME, nullable=False),
        pa.field("table_type", NAME, nullable=False),
    ]
)
TABLES_WITH_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", NAME, nullable=False)])
SQL_INFO_VALUE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8()),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(pa.utf8())),
        pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32()))),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)
SQL_INFO_SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", SQL_INFO_VALUE, nullable=False),
    ]
)
# the union's children by name (FlightSql.proto's SqlInfo value)
STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_MAP = 0, 1, 2, 3, 4, 5
TRANSACTION_SUPPORTED = 1  # SqlSupportedTransaction.SQL_SUPPORTED_TRANSACTION_TRANSACTION
CASE_INSENSITIVE = 1  # SqlSupportedCaseSensitivity: DuckDB folds no names, matches any case
NULLS_SORTED_AT_END = 3  # SqlNullOrdering: DuckDB's ORDER BY puts NULLs last
SERIALIZABLE = 4  # SqlTransactionIsolationLevel: DuckDB's snapshot isolation
FULL_OUTER_JOINS = 2  # SqlOuterJoinsSupportLevel
UNLIMITED = 0  # the spec's "no limit, or not known" for each SQL_MAX_* answer


def _bits(*positions: int) -> int:
    """An int32 bitmask answer: bit n set for each supported enum value n."""
    return sum(1 << p for p in positions)


# SqlInfo id -> (union child, value). What every client asks at connect: the ADBC Flight SQL
# driver (0-2, 8-11, 100, 101), flightsql-dbapi's SQLAlchemy dialect behind Superset (0, 2, 3,
# 504), JDBC's DatabaseMetaData (the 500s).
STATIC_INFO: dict[int, tuple[int, object]] = {
    0: (STRING, "duck_synth"),  # FLIGHT_SQL_SERVER_NAME
    1: (STRING, __version__),  # FLIGHT_SQL_SERVER_VERSION
    2: (STRING, pa.__version__),  # FLIGHT_SQL_SERVER_ARROW_VERSION
    4: (BOOL, True),  # FLIGHT_SQL_SERVER_SQL
    5: (BOOL, False),  # FLIGHT_SQL_SERVER_SUBSTRAIT
    8: (INT32, TRANSACTION_SUPPORTED),  # FLIGHT_SQL_SERVER_TRANSACTION (no savepoints)
    9: (BOOL, True),  # FLIGHT_SQL_SERVER_CANCEL
    10: (BOOL, True),  # FLIGHT_SQL_SERVER_BULK_INGESTION
    11: (BOOL, True),  # FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED
    100: (INT32, 0),  # FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT (the server's own, not per call)
    101: (INT32, 0),  # FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT
    500: (BOOL, False),  # SQL_DDL_CATALOG: ATTACH is the operator's, not a client's
    501: (BOOL, True),  # SQL_DDL_SCHEMA
    502: (BOOL, True),  # SQL_DDL_TABLE
    503: (BIGINT, CASE_INSENSITIVE),  # SQL_IDENTIFIER_CASE
    504: (STRING, '"'),  # SQL_IDENTIFIER_QUOTE_CHAR
    505: (BIGINT, CASE_INSENSITIVE),  # SQL_QUOTED_IDENTIFIER_CASE
    506: (BOOL, True),  # SQL_ALL_TABLES_ARE_SELECTABLE
    507: (BIGINT, NULLS_SORTED_AT_END),  # SQL_NULL_ORDERING
    513: (STRING, "\\"),  # SQL_SEARCH_STRING_ESCAPE (LIKE ... ESCAPE)
    514: (STRING, ""),  # SQL_EXTRA_NAME_CHARACTERS
    515: (BOOL, True),  # SQL_SUPPORTS_COLUMN_ALIASING
    516: (BOOL, True),  # SQL_NULL_PLUS_NULL_IS_NULL
    518: (BOOL, True),  # SQL_SUPPORTS_TABLE_CORRELATION_NAMES
    519: (BOOL, False),  # SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES
    520: (BOOL, True),  # SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY
    521: (BOOL, True),  # SQL_SUPPORTS_ORDER_BY_UNRELATED
    522: (INT32, _bits(0, 1)),  # SQL_SUPPORTED_GROUP_BY: unrelated, beyond select
    523: (BOOL, True),  # SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE
    524: (BOOL, True),  # SQL_SUPPORTS_NON_NULLABLE_COLUMNS
    525: (INT32, _bits(0, 1, 2)),  # SQL_SUPPORTED_GRAMMAR: minimum, core, extended
    526: (INT32, _bits(0, 1)),  # SQL_ANSI92_SUPPORTED_LEVEL: entry, intermediate
    527: (BOOL, False),  # SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY
    528: (INT32, FULL_OUTER_JOINS),  # SQL_OUTER_JOINS_SUPPORT_LEVEL
    529: (STRING, "schema"),  # SQL_SCHEMA_TERM
    530: (STRING, "procedure"),  # SQL_PROCEDURE_TERM
    531: (STRING, "catalog"),  # SQL_CATALOG_TERM
    532: (BOOL, True),  # SQL_CATALOG_AT_START (catalog.schema.table)
    533: (INT32, 0),  # SQL_SCHEMAS_SUPPORTED_ACTIONS
    534: (INT32, 0),  # SQL_CATALOGS_SUPPORTED_ACTIONS
    535: (INT32, 0),  # SQL_SUPPORTED_POSITIONED_COMMANDS
    536: (BOOL, False),  # SQL_SELECT_FOR_UPDATE_SUPPORTED
    537: (BOOL, False),  # SQL_STORED_PROCEDURES_SUPPORTED
    538: (INT32, _bits(0, 1, 2, 3)),  # SQL_SUPPORTED_SUBQUERIES: comparisons, exists, in, any
    539: (BOOL, True),  # SQL_CORRELATED_SUBQUERIES_SUPPORTED
    540: (INT32, _bits(0, 1)),  # SQL_SUPPORTED_UNIONS: UNION, UNION ALL
    **{code: (BIGINT, UNLIMITED) for code in range(541, 562)},  # SQL_MAX_* lengths and counts
    556: (BOOL, True),  # SQL_MAX_ROW_SIZE_INCLUDES_BLOBS
    562: (BIGINT, SERIALIZABLE),  # SQL_DEFAULT_TRANSACTION_ISOLATION
    563: (BOOL, True),  # SQL_TRANSACTIONS_SUPPORTED
    564: (INT32, _bits(SERIALIZABLE)),  # SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS
    565: (BOOL, False),  # SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT
    566: (BOOL, False),  # SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED
    567: (INT32, _bits(1)),  # SQL_SUPPORTED_RESULT_SET_TYPES: forward only
    **{code: (INT32, 0) for code in range(568, 572)},  # result set concurrencies
    572: (BOOL, True),  # SQL_BATCH_UPDATES_SUPPORTED (executemany)
    573: (BOOL, False),  # SQL_SAVEPOINTS_SUPPORTED
    574: (BOOL, False),  # SQL_NAMED_PARAMETERS_SUPPORTED ($n is positional)
    575: (BOOL, False),  # SQL_LOCATORS_UPDATE_COPY
    576: (BOOL, False),  # SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED
}
# lists read from DuckDB's own catalog: its keywords and its functions by kind (DuckDB's own
# categories are sparse: by their argument and return types too)
_NUMERIC = (
    "('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UTINYINT', 'USMALLINT', "
    "'UINTEGER', 'UBIGINT', 'UHUGEINT', 'FLOAT', 'DOUBLE', 'DECIMAL')"
)
_FUNCTIONS_OF = (
    "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'scalar' "
    "AND regexp_full_match(function_name, '[a-z][a-z0-9_]*') AND "  # no operators, no internals
)
LISTED_INFO = {
    508: "SELECT upper(keyword_name) FROM duckdb_keywords() ORDER BY 1",  # SQL_KEYWORDS
    509: _FUNCTIONS_OF  # SQL_NUMERIC_FUNCTIONS: numbers in, a number out
    + "(list_contains(categories, 'numeric') OR (len(parameter_types) > 0 "
    f"AND list_bool_and([t IN {_NUMERIC} FOR t IN parameter_types]) AND return_type IN {_NUMERIC}))"
    " ORDER BY 1",
    510: _FUNCTIONS_OF  # SQL_STRING_FUNCTIONS: a string in, a string or number out
    + "(list_contains(categories, 'string') OR (parameter_types[1] = 'VARCHAR' "
    f"AND (return_type = 'VARCHAR' OR return_type IN {_NUMERIC}))) ORDER BY 1",
    511: _FUNCTIONS_OF  # SQL_SYSTEM_FUNCTIONS
    + "(function_name LIKE 'current\\_%' ESCAPE '\\' "
    "OR function_name IN ('version', 'typeof', 'database_size', 'user')) ORDER BY 1",
    512: _FUNCTIONS_OF  # SQL_DATETIME_FUNCTIONS
    + "(return_type IN ('DATE', 'TIME', 'TIMESTAMP', "
    "'TIMESTAMP WITH TIME ZONE', 'INTERVAL') OR list_has_any(categories, ['date', 'timestamp']) "
    "OR function_name IN ('date_part', 'datepart', 'date_diff', 'datediff', 'date_sub', "
    "'extract', 'epoch', 'year', 'month', 'day', 'hour', 'minute', 'second')) ORDER BY 1",
}
# SQL_SUPPORTS_CONVERT: which SqlSupportsConvert types CAST converts to which; DuckDB casts
# between any two of these (BIGINT .. VARBINARY: 0-19 in the enum).
_CONVERTIBLE = list(range(20))
SUPPORTS_CONVERT = 517


def sql_info(codes: list[int], read_only: bool, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The SqlInfo answers for ``codes`` (all known ones when empty), each in its union child."""
    known = sorted([*STATIC_INFO, *LISTED_INFO, 3, SUPPORTS_CONVERT])
    wanted = [c for c in codes if c in known] if codes else known
    children: list[list] = [[] for _ in range(6)]
    type_ids, offsets = [], []
    for code in wanted:
        if code == 3:  # FLIGHT_SQL_SERVER_READ_ONLY: what this caller's token may do
            child, value = BOOL, read_only
        elif code == SUPPORTS_CONVERT:
            child, value = INT32_MAP, [(t, _CONVERTIBLE) for t in _CONVERTIBLE]
        elif code in LISTED_INFO:
            child, value = STRING_LIST, [r[0] for r in con.execute(LISTED_INFO[code]).fetchall()]
        else:
            child, value = STATIC_INFO[code]
        type_ids.append(child)
        offsets.append(len(children[child]))
        children[child].append(value)
    arrays = [
        pa.array(values, type=field.type)
        for values, field in zip(children, SQL_INFO_VALUE, strict=True)
    ]
    value = pa.UnionArray.from_dense(
        pa.array(type_ids, pa.int8()),
        pa.array(offsets, pa.int32()),
        arrays,
        [f.name for f in SQL_INFO_VALUE],
        [0, 1, 2, 3, 4, 5],
    )
    return pa.Table.from_arrays([pa.array(wanted, pa.uint32()), value], schema=SQL_INFO_SCHEMA)


def catalogs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    rows = con.execute(
        "SELECT DISTINCT catalog_name FROM information_schema.schemata "
        "WHERE catalog_name NOT IN ('system', 'temp') ORDER BY 1"
    ).fetchall()
    return pa.Table.from_pylist([{"catalog_name": r[0]} for r in rows], schema=CATALOGS_SCHEMA)


def db_schemas(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema_pattern: str | None
) -> pa.Table:
    where, params = _filters(
        [("catalog_name", "=", catalog), ("schema_name", "LIKE", schema_pattern)]
    )
    rows = con.execute(
        "SELECT catalog_name, schema_name FROM information_schema.schemata "
        f"WHERE catalog_name NOT IN ('system', 'temp'){where} ORDER BY 1, 2",
        params,
    ).fetchall()
    return pa.Table.from_pylist(
        [{"catalog_name": c, "db_schema_name": s} for c, s in rows], schema=DB_SCHEMAS_SCHEMA
    )


# The names clients get for DuckDB's information_schema table types: ADBC's (its SQLite and
# PostgreSQL drivers say "table" and "view", and sqlalchemy-adbc lists a table only when its
# type is exactly "table"). Filters match any case, and DuckDB's names too, so JDBC's
# "TABLE" / "VIEW" select the same. Temporary tables are each connection's own, so no catalog
# call (on a cursor of its own) sees one.
TABLE_TYPES = {"BASE TABLE": "table", "VIEW": "view"}


def table_types() -> pa.Table:
    return pa.Table.from_pylist(
        [{"table_type": t} for t in TABLE_TYPES.values()], schema=TABLE_TYPES_SCHEMA
    )


def tables(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    types: list[str],
    include_schema: bool,
) -> pa.Table:
    where, params = _filters(
        [
            ("table_catalog", "=", catalog),
            ("table_schema", "LIKE", schema_pattern),
            ("table_name", "LIKE", table_pattern),
        ]
    )
    if types:
        # any case, and DuckDB's own name too: clients send what GetTableTypes or JDBC said
        named = {name.upper(): kind for kind, name in TABLE_TYPES.items()}
        named.update({kind: kind for kind in TABLE_TYPES})
        wanted = sorted({named[t.upper()] for t in types if t.upper() in named})
        if not wanted:
            return pa.Table.from_pylist([], schema=_tables_schema(include_schema))
        where += f" AND table_type IN ({', '.join('?' for _ in wanted)})"
        params += wanted
    rows = con.execute(
        "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables "
        f"WHERE table_catalog NOT IN ('system', 'temp'){where} ORDER BY 1, 2, 3",
        params,
    ).fetchall()
    records = [
        {"catalog_name": c, "db_schema_name": s, "table_name": t, "table_type": TABLE_TYPES[k]}
        for c, s, t, k in rows
        if k in TABLE_TYPES
    ]
    if not include_schema:
        return pa.Table.from_pylist(records, schema=TABLES_SCHEMA)
    for record in records:
        schema = table_schema(
            con, record["catalog_name"], record["db_schema_name"], record["table_name"]
        )
        record["table_schema"] = schema.serialize().to_pybytes()
    return pa.Table.from_pylist(records, schema=TABLES_WITH_SCHEMA)


def table_schema(
    con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str
) -> pa.Schema:
    """The table's Arrow schema from its declared types, with Flight SQL's column metadata."""
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [catalog, schema, table],
    ).fetchall()
    if not columns:
        return pa.schema([])
    items = ", ".join(
        f"CAST(NULL AS {sqltext.duck_type(kind, con)}) AS {sqltext.quote_identifier(name)}"
        for name, kind in columns
    )
    arrow = plain_schema(con.execute(f"SELECT {items} LIMIT 0").to_arrow_table().schema)
    fields = []
    for field, (_, kind) in zip(arrow, columns, strict=True):
        fields.append(
            field.with_metadata(
                {
                    "ARROW:FLIGHT:SQL:TYPE_NAME": type_name(kind),
                    "ARROW:FLIGHT:SQL:CATALOG_NAME": catalog,
                    "ARROW:FLIGHT:SQL:SCHEMA_NAME": schema,
                    "ARROW:FLIGHT:SQL:TABLE_NAME": table,
                }
            )
        )
    return pa.schema(fields)


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """Dictionary columns (DuckDB ENUMs) as their values, as results send them: one type per
    column in metadata and results (a client maps a dictionary it is told of to BLOB, then
    reads strings)."""
    fields = [
        f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def type_name(kind: str) -> str:
    """The SQL type name a client is told: an ENUM's values travel as VARCHAR."""
    return "VARCHAR" if kind.upper().startswith("ENUM") else kind


def _tables_schema(include_schema: bool) -> pa.Schema:
    return TABLES_WITH_SCHEMA if include_schema else TABLES_SCHEMA


def _filters(items: list[tuple[str, str, str | None]]) -> tuple[str, list]:
    where, params = "", []
    for column, operator, value in items:
        if value is not None:
            # the escape SQL_SEARCH_STRING_ESCAPE names: a pattern's \_ is a literal _
            escape = " ESCAPE '\\'" if operator == "LIKE" else ""
            where += f" AND {column} {operator} ?{escape}"
            params.append(value)
    return where, params


def dataset_schema(con: duckdb.DuckDBPyConnection, query: str) -> pa.Schema | None:
    """The columns ``query`` returns, when they can be known without running anything: a
    single SELECT that reads only base tables and calls no table function (binding a
    table function, or a view over one, may run a generation). None otherwise; clients then
    learn the schema from the results."""
    try:
        statements = con.extract_statements(query)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return None
        parsed = json.loads(
            con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()[0]
        )
        if parsed.get("error"):
            return None
        tables: set[str] = set()
        if _reads(parsed.get("statements", []), tables) or not _base_tables(con, tables):
            return None
        # placeholders as NULLs: the types come from the columns, not from the bound values
        found = params.placeholders(query)
        numbered = [n for _, _, n in found if n is not None]
        count = max(numbered, default=0) + sum(1 for _, _, n in found if n is None)
        shown = params.bind(query, [dict.fromkeys(map(str, range(count)))]) if found else query
        schema = con.execute(f"SELECT * FROM ({shown}) LIMIT 0").to_arrow_table().schema
        return plain_schema(schema)
    except (duckdb.Error, ValueError, KeyError):
        return None


def _reads(node, tables: set[str]) -> bool:
    """Collect the relations a parsed statement names; True when it calls a table function."""
    if isinstance(node, list):
        return any([_reads(item, tables) for item in node])
    if not isinstance(node, dict):
        return False
    if node.get("type") == "TABLE_FUNCTION":
        return True
    if node.get("type") == "BASE_TABLE":
        tables.add(str(node.get("table_name") or "").lower())
    return any([_reads(value, tables) for value in node.values()])


def _base_tables(con: duckdb.DuckDBPyConnection, tables: set[str]) -> bool:
    """Whether every relation named is a base table and none a view (a view may hide a
    generation); a CTE's name counts as unknown, which only costs the schema."""
    base = {n.lower() for (n,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {n.lower() for (n,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    return all(name in base and name not in views for name in tables)
