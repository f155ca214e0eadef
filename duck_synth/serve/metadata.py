"""Flight SQL's catalog commands answered from DuckDB's own catalog, in the spec's schemas.

Listing never runs a generation: a table's Arrow schema comes from its declared column types
(``CAST(NULL AS type)``), not from reading it, so a view over generate() is listed, not run.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from .. import __version__, sqltext

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
# SqlInfo codes (FlightSql.proto) -> (union child, value); read_only depends on the caller
STRING, BOOL, INT32 = 0, 1, 3
TRANSACTIONS_NONE = 0


def sql_info(codes: list[int], read_only: bool) -> pa.Table:
    known = {
        0: (STRING, "duck_synth"),
        1: (STRING, __version__),
        2: (STRING, pa.__version__),
        3: (BOOL, read_only),
        4: (BOOL, True),
        5: (BOOL, False),
        8: (INT32, TRANSACTIONS_NONE),
        9: (BOOL, True),
        100: (INT32, 0),
        101: (INT32, 0),
    }
    wanted = [c for c in codes if c in known] if codes else sorted(known)
    children: list[list] = [[] for _ in range(6)]
    type_ids, offsets = [], []
    for code in wanted:
        child, value = known[code]
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


def table_types() -> pa.Table:
    return pa.Table.from_pylist(
        [{"table_type": t} for t in ("BASE TABLE", "LOCAL TEMPORARY", "VIEW")],
        schema=TABLE_TYPES_SCHEMA,
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
        where += f" AND table_type IN ({', '.join('?' for _ in types)})"
        params += list(types)
    rows = con.execute(
        "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables "
        f"WHERE table_catalog NOT IN ('system', 'temp'){where} ORDER BY 1, 2, 3",
        params,
    ).fetchall()
    records = [
        {"catalog_name": c, "db_schema_name": s, "table_name": t, "table_type": k}
        for c, s, t, k in rows
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
    arrow = con.execute(f"SELECT {items} LIMIT 0").to_arrow_table().schema
    fields = []
    for field, (_, kind) in zip(arrow, columns, strict=True):
        fields.append(
            field.with_metadata(
                {
                    "ARROW:FLIGHT:SQL:TYPE_NAME": kind,
                    "ARROW:FLIGHT:SQL:CATALOG_NAME": catalog,
                    "ARROW:FLIGHT:SQL:SCHEMA_NAME": schema,
                    "ARROW:FLIGHT:SQL:TABLE_NAME": table,
                }
            )
        )
    return pa.schema(fields)


def _filters(items: list[tuple[str, str, str | None]]) -> tuple[str, list]:
    where, params = "", []
    for column, operator, value in items:
        if value is not None:
            where += f" AND {column} {operator} ?"
            params.append(value)
    return where, params
