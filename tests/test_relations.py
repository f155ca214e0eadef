"""A database's relations (duck_synth/relations.py) on a linked subset of nycflights13: read from
REFERENCES constraints or given, checked against the data, ordered parents first, with the real
keys' dirt counted (orphans, NULL keys) and the children per parent (zeros included)."""

from __future__ import annotations

import duckdb
import pytest
from conftest import load_nycflights_chain

from duck_synth import relations
from duck_synth.errors import SynthError
from duck_synth.relations import Relation

FLIGHTS = [
    {"child": "flights", "key": "tailnum", "parent": "planes", "parent_key": "tailnum"},
    {"child": "flights", "key": "carrier", "parent": "airlines", "parent_key": "carrier"},
    {"child": "flights", "key": "origin", "parent": "airports", "parent_key": "faa"},
    {"child": "flights", "key": "dest", "parent": "airports", "parent_key": "faa"},
]


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    load_nycflights_chain(con.execute)
    yield con
    con.close()


def test_declared_foreign_keys_order_a_three_level_chain_parents_first(con):
    found = relations.schema(con, ["trips", "fleet", "carriers"])
    assert found.tables == ["carriers", "fleet", "trips"]
    assert found.relations == [
        Relation("fleet", ("carrier",), "carriers", ("carrier",)),
        Relation("trips", ("tailnum",), "fleet", ("tailnum",)),
    ]
    assert found.context("trips").parent == "fleet" and found.context("carriers") is None


def test_a_declared_key_to_a_table_not_trained_is_an_ordinary_column(con):
    found = relations.schema(con, ["fleet", "trips"])
    assert found.tables == ["fleet", "trips"] and len(found.relations) == 1


def test_the_first_relation_is_the_context_and_the_others_are_links(con):
    found = relations.schema(con, ["flights", "planes", "airlines", "airports"], FLIGHTS)
    assert found.tables == ["planes", "airlines", "airports", "flights"]
    assert found.context("flights").parent == "planes"
    # a second parent, and two keys to one parent (origin and dest to airports)
    assert [(r.parent, r.key) for r in found.links("flights")] == [
        ("airlines", ("carrier",)),
        ("airports", ("origin",)),
        ("airports", ("dest",)),
    ]
    assert [r.key for r in found.children("airports")] == [("origin",), ("dest",)]


def test_dirty_keys_are_counted_orphans_and_nulls_apart(con):
    found = relations.schema(con, ["flights", "planes"], FLIGHTS[:1])
    counts = found.key_counts(con, found.relations[0])
    assert counts == {"linked": 4769 - 597 - 171, "orphans": 597, "null": 171}
    dest = relations.schema(con, ["flights", "airports"], FLIGHTS[3:])
    assert (
        dest.key_counts(con, dest.relations[0])["orphans"]
        == con.execute(
            "SELECT count(*) FROM flights WHERE dest NOT IN (SELECT faa FROM airports)"
        ).fetchone()[0]
        > 0
    )


def test_children_per_parent_include_the_parents_with_none(con):
    found = relations.schema(con, ["flights", "planes"], FLIGHTS[:1])
    degrees = found.degrees(con, found.relations[0])
    assert degrees[0] == 48  # planes that flew nothing in these two months
    assert sum(degrees.values()) == 296
    assert sum(k * v for k, v in degrees.items()) == 4769 - 597 - 171


def test_a_composite_key_links_on_all_its_columns(con):
    con.execute("CREATE TEMP TABLE days AS SELECT DISTINCT year, month, day FROM flights")
    found = relations.schema(
        con,
        ["days", "flights"],
        [{"child": "flights", "key": ["year", "month", "day"], "parent": "days",
          "parent_key": ["year", "month", "day"]}],
    )  # fmt: skip
    degrees = found.degrees(con, found.relations[0])
    assert sum(degrees.values()) == 59 and 0 not in degrees  # every day of Jan-Feb flies


@pytest.mark.parametrize(
    ("tables", "given", "message"),
    [
        (["flights", "planes"], [{"child": "flights", "key": "tailnum", "parent": "flights",
          "parent_key": "tailnum"}], "a table referencing itself"),
        (["flights", "planes"], [{"child": "flights", "key": "tail", "parent": "planes",
          "parent_key": "tailnum"}], "'flights' has no column 'tail'"),
        (["flights"], FLIGHTS[:1], "'planes' is not among the tables trained"),
        (["flights", "planes"], [{"child": "flights", "key": ["tailnum", "year"],
          "parent": "planes", "parent_key": "tailnum"}], "different numbers of columns"),
        (["flights", "planes"], [{"child": "flights", "key": "year", "parent": "planes",
          "parent_key": "year"}], "the parent key must identify one row of 'planes', but"),
        (["flights", "planes"], [{"child": "flights", "key": "tailnum"}],
         "each relation needs child, key, parent and parent_key"),
        (["flights", "planes"], FLIGHTS[:1] * 2, "a relation is given twice"),
        (["planes", "planes"], None, "a table is listed twice"),
        (["flights", "nowhere"], None, "unknown table or view 'nowhere'"),
        (["flights", "planes"], FLIGHTS[:1] + [{"child": "planes", "key": "tailnum",
          "parent": "flights", "parent_key": "flight"}], "the parent key must identify"),
    ],
)  # fmt: skip
def test_bad_relations_are_refused_in_one_line_naming_them(con, tables, given, message):
    with pytest.raises(SynthError, match=message) as refused:
        relations.schema(con, tables, given)
    assert "\n" not in str(refused.value)


def test_tables_referencing_each_other_in_a_cycle_are_refused(con):
    con.execute("CREATE TEMP TABLE a AS SELECT range AS id, range AS b_id FROM range(3)")
    con.execute("CREATE TEMP TABLE b AS SELECT range AS id, range AS a_id FROM range(3)")
    cycle = [
        {"child": "a", "key": "b_id", "parent": "b", "parent_key": "id"},
        {"child": "b", "key": "a_id", "parent": "a", "parent_key": "id"},
    ]
    with pytest.raises(SynthError, match=r"reference each other in a cycle \((a|b) -> "):
        relations.schema(con, ["a", "b"], cycle)
