"""The Flight SQL endpoint as the SQLAlchemy, dataframe and BI clients use it: a real server
process driven by adbc_driver_flightsql (with autocommit off, as pandas and polars users keep
it), by pandas over ADBC, and by pyarrow's raw Flight client where a client's own request
(flightsql-dbapi's SqlInfo ids, a prepared statement's schema) is checked."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_manager import Error as AdbcError
from conftest import DIAMONDS_TABLE
from test_serve import ADMIN, READER, REFUSED, start_with_tokens, stop

import duck_synth
from duck_synth.serve import messages

pytestmark = pytest.mark.slow

# what flightsql-dbapi's SQLAlchemy dialect (Superset's Flight SQL engine) asks at connect:
# server name, Arrow version, read only, identifier quote char
DBAPI_DIALECT_INFO = [0, 2, 3, 504]
# what the ADBC driver asks (GetInfo, transactions, cancel, ingest, timeouts)
ADBC_DRIVER_INFO = [0, 1, 2, 8, 9, 10, 11, 100, 101]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    path = tmp_path_factory.mktemp("flight_sql") / "flight_sql.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql("CREATE VIEW fair AS SELECT * FROM diamonds WHERE cut = 'Fair'")
    s.close()
    process, address, _ = start_with_tokens(path)
    yield address
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def connect(url: str, token: str = ADMIN, autocommit: bool = False):
    """An ADBC connection; autocommit off by default, as pandas and polars users have it."""
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"}
    return flightsql.connect(url, db_kwargs=kwargs, autocommit=autocommit)


def raw(url: str, token: str = ADMIN) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    return flight.connect(url), options


def sql_info(url: str, ids: list[int], token: str = ADMIN) -> dict[int, object]:
    """The answers as flightsql-dbapi reads them: ``{info_name: value}``."""
    client, options = raw(url, token)
    command = messages.pack(messages.new("CommandGetSqlInfo", info=ids))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
    rows = client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist()
    return {row["info_name"]: row["value"] for row in rows}


# -- SqlInfo -----------------------------------------------------------------------------------
def test_sql_info_answers_what_the_sqlalchemy_dialect_asks_at_connect(url):
    admin = sql_info(url, DBAPI_DIALECT_INFO)
    reader = sql_info(url, DBAPI_DIALECT_INFO, READER)
    assert admin[0] == "duck_synth" and admin[2] == pa.__version__
    assert admin[504] == '"'
    assert admin[3] is False and reader[3] is True


def test_sql_info_answers_what_the_adbc_driver_asks_in_the_spec_union_types(url):
    answers = sql_info(url, ADBC_DRIVER_INFO)
    assert set(answers) == set(ADBC_DRIVER_INFO)
    assert answers[8] == 1  # SQL_SUPPORTED_TRANSACTION_TRANSACTION (int32)
    assert answers[9] is True and answers[10] is True and answers[11] is True
    with connect(url, autocommit=True) as conn:
        info = conn.adbc_get_info()
    assert info["vendor_name"] == "duck_synth"
    assert info["vendor_arrow_version"] == pa.__version__


def test_sql_info_lists_keywords_functions_and_jdbc_flags(url):
    answers = sql_info(url, [503, 507, 508, 509, 510, 511, 512, 517, 562, 563, 564, 573])
    assert "SELECT" in answers[508] and "QUALIFY" in answers[508]
    assert "abs" in answers[509] and "lower" in answers[510]
    assert "current_date" in answers[512] or "date_part" in answers[512]
    assert "version" in answers[511]
    assert answers[503] == 1 and answers[507] == 3  # case insensitive; NULLs last (int64)
    assert answers[563] is True and answers[573] is False
    assert dict(answers[517])[5]  # SQL_SUPPORTS_CONVERT: a map of int32 to int32 lists
    every = sql_info(url, [])
    assert {504, 508, 8, 563} <= set(every)


# -- catalog ---------------------------------------------------------------------------------
def test_table_types_are_table_and_view_and_filter_by_those_names_in_any_case(url):
    with connect(url) as conn:
        types = conn.adbc_get_table_types()
        views = conn.adbc_get_objects(depth="tables", table_types_filter=["VIEW"]).read_all()
        tables = conn.adbc_get_objects(depth="tables", table_types_filter=["table"]).read_all()

    def listed(objects):
        return {
            (t["table_name"], t["table_type"])
            for c in objects.to_pylist()
            for s in c["catalog_db_schemas"]
            for t in s["db_schema_tables"]
        }

    assert types == ["table", "view"]  # what sqlalchemy-adbc compares to
    assert ("fair", "view") in listed(views) and ("diamonds", "table") not in listed(views)
    assert ("diamonds", "table") in listed(tables) and ("fair", "view") not in listed(tables)


def test_enum_columns_are_utf8_in_table_schemas_objects_and_results(url):
    with connect(url) as conn, conn.cursor() as cur:
        schema = conn.adbc_get_table_schema("diamonds")
        objects = conn.adbc_get_objects(depth="all", table_name_filter="diamonds").read_all()
        cur.execute("SELECT cut, color FROM diamonds LIMIT 3")
        result = cur.fetch_arrow_table()
    columns = {
        c["column_name"]: c
        for catalog in objects.to_pylist()
        for s in catalog["catalog_db_schemas"]
        for t in s["db_schema_tables"]
        for c in t["table_columns"]
    }
    assert schema.field("cut").type == pa.utf8() == result.schema.field("cut").type
    assert result.schema.field("color").type == pa.utf8()
    assert columns["cut"]["xdbc_type_name"] == "VARCHAR"


# -- statements ------------------------------------------------------------------------------
def test_parameters_bind_in_the_order_of_the_text(url):
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT carat, cut FROM diamonds WHERE cut = ? LIMIT ?", ("Fair", 2))
        rows = cur.fetchall()
        cur.execute("SELECT $2 AS second, $1 AS first, '?' AS text", (1, "b"))
        numbered = cur.fetchone()
        cur.execute("SELECT ? - ? AS difference", (5, -2))
        difference = cur.fetchone()
    assert len(rows) == 2 and {cut for _, cut in rows} == {"Fair"}
    assert numbered == ("b", 1, "?")
    assert difference == (7,)


def test_prepared_statement_reports_its_columns_for_table_queries_without_running_them(url):
    client, options = raw(url)

    def prepare(query: str) -> bytes:
        request = messages.pack(messages.new("ActionCreatePreparedStatementRequest", query=query))
        (result,) = client.do_action(flight.Action("CreatePreparedStatement", request), options)
        _, message = messages.unpack(result.body.to_pybytes())
        return message.dataset_schema

    schema = pa.ipc.read_schema(pa.py_buffer(prepare("SELECT carat, cut FROM diamonds LIMIT ?")))
    assert schema.names == ["carat", "cut"] and schema.field("cut").type == pa.utf8()
    assert prepare("SELECT * FROM fair") == b""  # a view may hide a generation: not bound


# -- bulk ingest and transactions --------------------------------------------------------------
def test_adbc_ingest_creates_appends_replaces_then_trains_on_the_table(url):
    first = pa.table({"x": [1.0, 2.0, 3.0], "kind": ["a", "b", "a"]})
    more = pa.table({"kind": ["b"] * 40, "x": [float(i) for i in range(40)]})  # other order
    with connect(url) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("ingested", first, mode="create") == 3
        assert cur.adbc_ingest("ingested", more, mode="append") == 40
        conn.commit()
        cur.execute("SELECT count(*), count(DISTINCT kind) FROM ingested")
        assert cur.fetchone() == (43, 2)
        with pytest.raises(AdbcError, match="already exists"):
            cur.adbc_ingest("ingested", first, mode="create")
        conn.rollback()
        assert cur.adbc_ingest("ingested", pa.concat_tables([first] * 20), mode="replace") == 60
        conn.commit()
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("FROM train('m', 'ingested', epochs => 1)")
        cur.fetchall()
        cur.execute("SELECT count(*) FROM generate('m', target => 10)")
        assert cur.fetchone() == (10,)


def test_read_only_token_is_refused_bulk_ingest_in_one_line(url):
    with (
        connect(url, READER, autocommit=True) as conn,
        conn.cursor() as cur,
        pytest.raises(AdbcError) as refused,
    ):
        cur.adbc_ingest("not_made", pa.table({"x": [1]}), mode="create")
    message = str(refused.value)
    assert "read-only token" in message and "Traceback" not in message
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'not_made'")
        assert cur.fetchone() == (0,)


def test_transaction_rollback_undoes_writes_and_commit_shows_them_to_others(url):
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE drafts (id INTEGER)")
        cur.executemany("INSERT INTO drafts VALUES (?)", [(1,), (2,)])
        cur.execute("SELECT count(*) FROM drafts")  # the transaction sees its own rows
        assert cur.fetchone() == (2,)
        conn.rollback()
        cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'drafts'")
        assert cur.fetchone() == (0,)
        cur.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        conn.commit()
    with connect(url, READER, autocommit=True) as other, other.cursor() as cur:
        cur.execute("SELECT answer FROM kept")
        assert cur.fetchone() == (42,)


def test_an_unknown_transaction_is_refused_in_one_line(url):
    client, options = raw(url)
    command = messages.new("CommandStatementQuery", query="SELECT 1", transaction_id=b"x" * 16)
    descriptor = flight.FlightDescriptor.for_command(messages.pack(command))
    with pytest.raises(REFUSED, match="unknown transaction") as refused:
        client.get_flight_info(descriptor, options)
    assert "\n" not in str(refused.value).strip().splitlines()[0]


# -- dataframes over ADBC --------------------------------------------------------------------
def test_pandas_to_sql_and_read_sql_over_adbc_with_autocommit_off(url):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5], "kind": pd.Categorical(["a", "b", "a"])})
    with connect(url) as conn:
        assert frame.to_sql("from_pandas", conn, index=False) == 3
        assert frame.to_sql("from_pandas", conn, index=False, if_exists="append") == 3
        assert frame.to_sql("from_pandas", conn, index=False, if_exists="replace") == 3
        read = pd.read_sql("SELECT x, kind FROM from_pandas ORDER BY x", conn)
    assert read["x"].tolist() == [0.5, 1.5, 2.5]
    assert read["kind"].tolist() == ["a", "b", "a"]


def test_polars_write_database_and_read_database_over_adbc(url):
    pl = pytest.importorskip(
        "polars", reason="polars is not a test dependency (a 40 MB wheel); pandas covers ADBC"
    )
    frame = pl.DataFrame({"x": [1, 2, 3], "kind": ["a", "b", "c"]})
    with connect(url) as conn:
        frame.write_database("from_polars", conn, engine="adbc")
        conn.commit()
        read = pl.read_database("SELECT * FROM from_polars ORDER BY x", conn)
    assert read["kind"].to_list() == ["a", "b", "c"]


# -- SQLAlchemy --------------------------------------------------------------------------------
def test_sqlalchemy_adbc_lists_tables_reflects_columns_and_limits(url):
    sa = pytest.importorskip("sqlalchemy")
    pytest.importorskip("sqlalchemy_adbc", reason="sqlalchemy-adbc is not installed")
    address = url.removeprefix("grpc://")
    engine = sa.create_engine(f"adbc+flightsql://x:{ADMIN}@{address}?tls=false")
    inspector = sa.inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("diamonds")}
    diamonds = sa.Table("diamonds", sa.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(diamonds.c.carat, diamonds.c.cut).limit(3)).all()
    assert inspector.has_table("diamonds")
    assert "diamonds" in inspector.get_table_names() and "fair" in inspector.get_view_names()
    assert isinstance(columns["cut"]["type"], sa.String)
    assert len(rows) == 3 and all(isinstance(cut, str) for _, cut in rows)
