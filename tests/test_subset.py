"""subset() (duck_synth/subset.py) on the linked nycflights13 subset of tests/test_relations.py:
the written tables keep a share or the filtered rows, every child of a kept parent, and a parent
for every kept key; orphans are left out and counted; a refusal is one line and writes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import load_nycflights_chain

import duck_synth
from duck_synth import access, caller
from duck_synth.errors import SynthError

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "nycflights13"
FLIGHTS = [
    ("flights", "tailnum", "planes", "tailnum"),
    ("flights", "carrier", "airlines", "carrier"),
    ("flights", "origin", "airports", "faa"),
    ("flights", "dest", "airports", "faa"),
]
CHAIN = [("fleet", "carrier", "carriers", "carrier"), ("trips", "tailnum", "fleet", "tailnum")]


def given(links) -> str:
    """``relations => [...]`` as SQL."""
    return "[" + ", ".join(
        f"{{'child': '{c}', 'key': '{k}', 'parent': '{p}', 'parent_key': '{pk}'}}"
        for c, k, p, pk in links
    ) + "]"  # fmt: skip


ALL = "['flights', 'planes', 'airlines', 'airports']"
PLANES = f"['planes', 'flights'], relations => {given(FLIGHTS[:1])}"


@pytest.fixture(scope="module")
def s():
    s = duck_synth.connect()
    load_nycflights_chain(s.sql)
    yield s
    s.close()


def one(s, sql: str):
    return s.sql(sql).fetchone()[0]


def summary(s, call: str) -> dict[str, tuple]:
    """table -> (written, rows, source_rows, orphans)."""
    return {r[0]: r[1:] for r in s.sql(f"FROM {call}").fetchall()}


def unresolved(s, prefix: str, links) -> int:
    """Written child rows whose non-NULL key has no written parent."""
    return sum(
        one(
            s,
            f"SELECT count(*) FROM {prefix}{c} WHERE {k} IS NOT NULL AND {k} NOT IN "
            f"(SELECT {pk} FROM {prefix}{p})",
        )  # fmt: skip
        for c, k, p, pk in links
    )


def test_a_fraction_keeps_that_share_of_the_roots_and_every_key_resolves(s):
    written = summary(s, f"subset({ALL}, fraction => 0.2, seed => 1, prefix => 'a_', "
                         f"relations => {given(FLIGHTS)})")  # fmt: skip
    assert list(written) == ["planes", "airlines", "airports", "flights"]  # parents first
    assert written["planes"][:3] == ("a_planes", math.ceil(0.2 * 296), 296)
    for table, (target, rows, source_rows, _) in written.items():
        assert one(s, f"SELECT count(*) FROM {target}") == rows
        assert source_rows == one(s, f"SELECT count(*) FROM {table}")
    assert unresolved(s, "a_", FLIGHTS) == 0
    # the written rows are real rows, whole
    assert one(s, "SELECT count(*) FROM (FROM a_flights EXCEPT ALL FROM flights)") == 0


def test_the_children_of_a_kept_parent_are_all_kept(s):
    written = summary(s, f"subset({PLANES}, fraction => 0.3, seed => 2, prefix => 'b_')")
    children = one(
        s, "SELECT count(*) FROM flights WHERE tailnum IN (FROM b_planes SELECT tailnum)"
    )
    assert one(s, "SELECT count(*) FROM b_flights WHERE tailnum IS NOT NULL") == children
    # flights with no plane (a NULL key) are sampled at the fraction, as roots are
    assert one(s, "SELECT count(*) FROM b_flights WHERE tailnum IS NULL") == math.ceil(0.3 * 171)
    assert written["flights"][1] == children + math.ceil(0.3 * 171)


def test_a_filter_on_a_parent_keeps_the_matching_parents_and_all_their_children(s):
    summary(s, f"subset({PLANES}, filter => {{'planes': 'year > 2010'}}, prefix => 'c_')")
    assert one(s, "SELECT count(*) FROM c_planes WHERE NOT year > 2010") == 0
    assert one(s, "SELECT count(*) FROM c_planes") == one(
        s, "SELECT count(*) FROM planes WHERE year > 2010"
    )
    assert one(s, "SELECT count(*) FROM c_flights") == one(
        s, "SELECT count(*) FROM flights WHERE tailnum IN (FROM planes SELECT tailnum "
           "WHERE year > 2010)"
    )  # fmt: skip


def test_a_filter_on_a_child_brings_the_parents_its_rows_point_at(s):
    filtered = "{'flights': 'flights.dep_delay > 240'}"  # a qualified column reads the row
    summary(
        s, f"subset({ALL}, filter => {filtered}, prefix => 'd_', relations => {given(FLIGHTS)})"
    )
    valid = (
        "(tailnum IS NULL OR tailnum IN (FROM planes SELECT tailnum)) AND (dest IN "
        "(FROM airports SELECT faa)) AND origin IN (FROM airports SELECT faa)"
    )
    assert one(s, "SELECT count(*) FROM d_flights") == one(
        s, f"SELECT count(*) FROM flights WHERE dep_delay > 240 AND {valid}"
    )
    assert unresolved(s, "d_", FLIGHTS) == 0
    assert one(s, "SELECT count(*) FROM d_planes") == one(
        s, "SELECT count(DISTINCT tailnum) FROM d_flights"
    )


def test_a_filter_below_a_filtered_parent_narrows_its_children(s):
    filters = "{'planes': 'year > 2005', 'flights': 'dep_delay > 60'}"
    summary(s, f"subset({PLANES}, filter => {filters}, prefix => 'e_')")
    assert one(s, "SELECT count(*) FROM e_planes WHERE NOT year > 2005") == 0
    assert one(s, "SELECT count(*) FROM e_flights") == one(
        s, "SELECT count(*) FROM flights WHERE dep_delay > 60 AND tailnum IN "
           "(FROM planes SELECT tailnum WHERE year > 2005)"
    )  # fmt: skip


def test_a_three_level_chain_of_declared_keys_keeps_every_level_linked(s):
    written = summary(s, "subset(['trips', 'fleet', 'carriers'], fraction => 0.5, seed => 3)")
    assert list(written) == ["carriers", "fleet", "trips"]
    assert written["carriers"][1] == math.ceil(0.5 * 16)
    assert unresolved(s, "sub_", CHAIN) == 0
    # everything under a kept carrier, two levels down
    assert one(s, "SELECT count(*) FROM sub_trips") == one(
        s, "SELECT count(*) FROM trips JOIN fleet USING (tailnum) WHERE carrier IN "
           "(FROM sub_carriers SELECT carrier)"
    )  # fmt: skip
    # a filter at the bottom pulls in two levels of parents, and only those
    summary(s, "subset(['trips', 'fleet', 'carriers'], filter => {'trips': 'dep_delay > 300'}, "
               "prefix => 'up_')")  # fmt: skip
    assert unresolved(s, "up_", CHAIN) == 0
    assert one(s, "SELECT count(*) FROM up_fleet") == one(
        s, "SELECT count(DISTINCT tailnum) FROM trips WHERE dep_delay > 300"
    )
    assert one(s, "SELECT count(*) FROM up_carriers") == one(
        s, "SELECT count(DISTINCT carrier) FROM up_fleet"
    )


def test_null_keys_are_kept_and_orphans_are_dropped_and_counted(s):
    s.sql("CREATE TABLE kin (id INTEGER, name VARCHAR)")
    s.sql("INSERT INTO kin VALUES (1, 'a'), (2, 'b')")
    s.sql("CREATE TABLE kid (id INTEGER, kin_id INTEGER, pal_id INTEGER)")
    # 10: no parent (NULL key); 11, 12: a parent; 13: an orphan; 14: a NULL second key
    s.sql("INSERT INTO kid VALUES (10, NULL, 1), (11, 1, 2), (12, 2, 1), (13, 9, 1), (14, 1, NULL)")
    s.sql("CREATE TABLE toy (kid_id INTEGER)")  # under the orphan 13: an orphan too
    s.sql("INSERT INTO toy VALUES (11), (13), (13)")
    links = [("kid", "kin_id", "kin", "id"), ("kid", "pal_id", "kin", "id"),
             ("toy", "kid_id", "kid", "id")]  # fmt: skip
    written = summary(
        s, f"subset(['kin', 'kid', 'toy'], fraction => 1, relations => {given(links)})"
    )
    assert written["kid"][1:] == (4, 5, 1) and written["toy"][1:] == (1, 3, 2)
    assert sorted(r[0] for r in s.sql("FROM sub_kid").fetchall()) == [10, 11, 12, 14]
    s.sql("FROM subset(['kin', 'kid'], filter => {'kin': 'id = 1'}, prefix => 'k1_', "
          f"relations => {given(links[:2])})")  # fmt: skip
    # kin 1's children (14 with a NULL second key), and kin 2 brought by 11's second key
    assert sorted(s.sql("SELECT id FROM k1_kid").fetchall()) == [(11,), (14,)]
    assert sorted(s.sql("SELECT id FROM k1_kin").fetchall()) == [(1,), (2,)]


def test_the_same_seed_keeps_the_same_rows_and_another_seed_others(s):
    rows = {}
    for prefix, seed in (("r1_", 7), ("r2_", 7), ("r3_", 8)):
        s.sql(f"FROM subset({PLANES}, fraction => 0.1, seed => {seed}, prefix => '{prefix}')")
        rows[prefix] = s.sql(f"SELECT * FROM {prefix}flights ORDER BY ALL").fetchall()
    assert rows["r1_"] == rows["r2_"] != rows["r3_"]


def test_replace_overwrites_the_tables_written(s):
    s.sql(f"FROM subset({PLANES}, fraction => 0.5, prefix => 'rep_')")
    s.sql(f"FROM subset({PLANES}, fraction => 0.1, prefix => 'rep_', replace => true)")
    assert one(s, "SELECT count(*) FROM rep_planes") == math.ceil(0.1 * 296)


REFUSED = [
    ("subset(['planes', 'nowhere'], fraction => 0.1)", "unknown table or view 'nowhere'"),
    ("subset(['planes', 'planes'], fraction => 0.1)", "a table is listed twice"),
    (f"subset({PLANES}, fraction => 0)", r"fraction must be in \(0, 1\], got 0"),
    (f"subset({PLANES}, fraction => 1.5)", r"fraction must be in \(0, 1\], got 1.5"),
    (f"subset({PLANES})", "give either fraction"),
    (f"subset({PLANES}, fraction => 0.1, filter => {{'planes': 'true'}})", "give either"),
    (f"subset({PLANES}, filter => {{'airports': 'true'}})", "filter on unknown table 'airports'"),
    (f"subset({PLANES}, filter => {{'planes': 'seatz > 1'}})", "'planes' has no column 'seatz'"),
    (f"subset({PLANES}, filter => {{'planes': 'year >'}})", "is not a valid SQL predicate"),
    (f"subset({PLANES}, filter => {{'planes': 'false'}})", r"no row kept \(the filter"),
    (f"subset({PLANES}, filter => {{'flights': 'tailnum::INTEGER > 1'}})", "filter on 'flights'"),
    (f"subset({PLANES}, fraction => 0.1, prefix => '')", "would overwrite a table subsetted"),
    (f"subset({PLANES}, fraction => 0.1, prefix => 'taken_')", "table 'taken_planes' exists"),
    ("subset(['planes', 'flights'], fraction => 0.1, relations => [{'child': 'flights', "
     "'key': 'tail', 'parent': 'planes', 'parent_key': 'tailnum'}])",
     r"^subset\(\): relations: .*'flights' has no column 'tail'"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), REFUSED)
def test_a_refusal_is_one_line_naming_the_culprit_and_writes_nothing(s, call, message):
    s.sql("CREATE OR REPLACE TABLE taken_planes AS SELECT 1 AS x")
    tables = s.sql("SELECT list(table_name ORDER BY table_name) FROM duckdb_tables()").fetchone()
    with pytest.raises(SynthError, match=message) as refused:
        s.sql(f"FROM {call}")
    assert "\n" not in str(refused.value) and str(refused.value).startswith("subset(): ")
    assert s.sql("SELECT list(table_name ORDER BY table_name) FROM duckdb_tables()").fetchone() == (
        tables
    )


def test_a_failure_while_writing_leaves_no_table_written(s):
    s.sql("CREATE VIEW z_flights AS SELECT 1 AS x")  # a table cannot replace a view
    with pytest.raises(SynthError, match=r"^subset\(\): writing 'z_flights': ") as refused:
        s.sql(f"FROM subset({PLANES}, fraction => 0.2, prefix => 'z_', replace => true)")
    assert "\n" not in str(refused.value)
    assert one(s, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'z_planes'") == 0


def test_a_read_only_caller_is_refused_by_the_access_rule_and_by_the_function(s):
    reader = caller.Rights(role=caller.READ_ONLY)
    with pytest.raises(access.Refused, match=r"subset\(\) is not allowed \(it writes\)"):
        access.check_statement(s.con, f"FROM subset({PLANES}, fraction => 0.1)", reader)
    with (
        caller.running(caller.Call(reader)),
        pytest.raises(SynthError, match=r"subset\(\) is not allowed \(it writes\)"),
    ):
        s.sql(f"FROM subset({PLANES}, fraction => 0.1, prefix => 'ro_')")
    assert one(s, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ro_planes'") == 0


@pytest.mark.slow  # a server process
def test_over_a_server_an_admin_token_subsets_and_a_read_only_token_is_refused(s, tmp_path):
    from adbc_driver_manager import Error as AdbcError
    from test_serve import ADMIN, READER, adbc, start_with_tokens, stop

    path = tmp_path / "served.duckdb"
    with duck_synth.connect(str(path)) as served:
        for table in ("planes", "flights"):
            served.sql(f"CREATE TABLE {table} AS FROM '{DATA / table}.parquet'")
    process, url, _ = start_with_tokens(path)
    try:
        with adbc(url, READER) as conn, conn.cursor() as cur:
            with pytest.raises(AdbcError, match=r"subset\(\) is not allowed \(it writes\)"):
                cur.execute(f"FROM subset({PLANES}, fraction => 0.1)")
            cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'sub_%'")
            assert cur.fetchone() == (0,)
        with adbc(url, ADMIN) as conn, conn.cursor() as cur:
            cur.execute(f"FROM subset({PLANES}, fraction => 0.1)")
            over_flight = {r[0]: r[2:] for r in cur.fetchall()}
    finally:
        stop(process)
    assert process.returncode == 0, process.stderr.read()
    # the rows kept in another process are the ones kept here
    here = summary(s, f"subset({PLANES}, fraction => 0.1, prefix => 'here_')")
    assert over_flight == {table: row[1:] for table, row in here.items()}
