"""The Flight SQL protocol's messages (package arrow.flight.protocol.sql), built from the field
table below by protobuf's own runtime, which does the wire format. Declared proto2-style so
singular fields keep presence (``HasField``); proto2 and proto3 share the wire format. A nested
message the server only passes on is declared as bytes (the same bytes on the wire).
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message, message_factory

PACKAGE = "arrow.flight.protocol.sql"
TYPE_URL_PREFIX = "type.googleapis.com/"

# message: [(field, number, type, repeated)]
FIELDS: dict[str, list[tuple[str, int, str, bool]]] = {
    "CommandGetSqlInfo": [("info", 1, "uint32", True)],
    "CommandGetXdbcTypeInfo": [("data_type", 1, "int32", False)],
    "CommandGetCatalogs": [],
    "CommandGetDbSchemas": [
        ("catalog", 1, "string", False),
        ("db_schema_filter_pattern", 2, "string", False),
    ],
    "CommandGetTables": [
        ("catalog", 1, "string", False),
        ("db_schema_filter_pattern", 2, "string", False),
        ("table_name_filter_pattern", 3, "string", False),
        ("table_types", 4, "string", True),
        ("include_schema", 5, "bool", False),
    ],
    "CommandGetTableTypes": [],
    "CommandGetPrimaryKeys": [
        ("catalog", 1, "string", False),
        ("db_schema", 2, "string", False),
        ("table", 3, "string", False),
    ],
    "CommandGetExportedKeys": [
        ("catalog", 1, "string", False),
        ("db_schema", 2, "string", False),
        ("table", 3, "string", False),
    ],
    "CommandGetImportedKeys": [
        ("catalog", 1, "string", False),
        ("db_schema", 2, "string", False),
        ("table", 3, "string", False),
    ],
    "CommandGetCrossReference": [
        ("pk_catalog", 1, "string", False),
        ("pk_db_schema", 2, "string", False),
        ("pk_table", 3, "string", False),
        ("fk_catalog", 4, "string", False),
        ("fk_db_schema", 5, "string", False),
        ("fk_table", 6, "string", False),
    ],
    "CommandStatementQuery": [("query", 1, "string", False), ("transaction_id", 2, "bytes", False)],
    "CommandStatementUpdate": [
        ("query", 1, "string", False),
        ("transaction_id", 2, "bytes", False),
    ],
    "CommandStatementIngest": [
        ("table_definition_options", 1, "bytes", False),  # a TableDefinitionOptions
        ("table", 2, "string", False),
        ("schema", 3, "string", False),
        ("catalog", 4, "string", False),
        ("temporary", 5, "bool", False),
        ("transaction_id", 6, "bytes", False),
    ],
    # CommandStatementIngest.TableDefinitionOptions; its enums travel as varints, as int32 do
    "TableDefinitionOptions": [
        ("if_not_exist", 1, "int32", False),
        ("if_exists", 2, "int32", False),
    ],
    "CommandStatementSubstraitPlan": [],
    "TicketStatementQuery": [("statement_handle", 1, "bytes", False)],
    "CommandPreparedStatementQuery": [("prepared_statement_handle", 1, "bytes", False)],
    "CommandPreparedStatementUpdate": [("prepared_statement_handle", 1, "bytes", False)],
    "DoPutUpdateResult": [("record_count", 1, "int64", False)],
    "DoPutPreparedStatementResult": [("prepared_statement_handle", 1, "bytes", False)],
    "ActionCreatePreparedStatementRequest": [
        ("query", 1, "string", False),
        ("transaction_id", 2, "bytes", False),
    ],
    "ActionCreatePreparedStatementResult": [
        ("prepared_statement_handle", 1, "bytes", False),
        ("dataset_schema", 2, "bytes", False),
        ("parameter_schema", 3, "bytes", False),
        ("is_update", 4, "bool", False),
    ],
    "ActionClosePreparedStatementRequest": [("prepared_statement_handle", 1, "bytes", False)],
    "ActionBeginTransactionRequest": [],
    "ActionBeginTransactionResult": [("transaction_id", 1, "bytes", False)],
    "ActionEndTransactionRequest": [
        ("transaction_id", 1, "bytes", False),
        ("action", 2, "int32", False),  # enum EndTransaction
    ],
    "ActionCancelQueryRequest": [("info", 1, "bytes", False)],  # a serialized FlightInfo
    "ActionCancelQueryResult": [("result", 1, "int32", False)],  # enum CancelResult
    # arrow.flight.protocol (Flight.proto), sent raw, not in an Any
    "CancelFlightInfoRequest": [("info", 1, "bytes", False)],  # a serialized FlightInfo
    "CancelFlightInfoResult": [("status", 1, "int32", False)],  # enum CancelStatus
}
CANCELLED = 1  # CancelResult.CANCELLED and CancelStatus.CANCEL_STATUS_CANCELLED
COMMIT, ROLLBACK = 1, 2  # ActionEndTransactionRequest.EndTransaction
# CommandStatementIngest.TableDefinitionOptions: TableNotExistOption, TableExistsOption
NOT_EXIST_CREATE, NOT_EXIST_FAIL = 1, 2
EXISTS_FAIL, EXISTS_APPEND, EXISTS_REPLACE = 1, 2, 3

_TYPES = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
}


def _build() -> dict[str, type[message.Message]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="duck_synth/flight_sql.proto", package=PACKAGE, syntax="proto2"
    )
    for name, fields in FIELDS.items():
        described = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            described.field.add(
                name=field_name,
                number=number,
                type=_TYPES[kind],
                label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in FIELDS
    }


MESSAGES = _build()


def new(name: str, **fields) -> message.Message:
    return MESSAGES[name](**fields)


def pack(msg: message.Message) -> bytes:
    """``msg`` in a google.protobuf.Any, serialized."""
    wrapped = any_pb2.Any(
        type_url=TYPE_URL_PREFIX + msg.DESCRIPTOR.full_name, value=msg.SerializeToString()
    )
    return wrapped.SerializeToString()


def unpack(data: bytes) -> tuple[str, message.Message]:
    """(message name, message) of a serialized Any; ValueError for anything else."""
    if not data:
        raise ValueError("empty Flight SQL command")
    wrapped = any_pb2.Any()
    try:
        wrapped.ParseFromString(data)
    except message.DecodeError:
        raise ValueError("not a Flight SQL command (cannot decode it)") from None
    full_name = wrapped.type_url.rsplit("/", 1)[-1]
    package, _, name = full_name.rpartition(".")
    if package != PACKAGE or name not in MESSAGES:
        raise NotImplementedError(f"unsupported Flight SQL command '{full_name}'")
    return name, parse(name, wrapped.value)


def parse(name: str, data: bytes) -> message.Message:
    parsed = MESSAGES[name]()
    try:
        parsed.ParseFromString(data)
    except message.DecodeError:
        raise ValueError(f"malformed {name}") from None
    return parsed
