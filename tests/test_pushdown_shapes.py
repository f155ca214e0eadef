"""The WHERE promise in every SQL shape, end to end: target rows, all matching.

A small table (10% 'Fair') and a tiny model trained with a fixed seed; each shape runs through
``session.sql``, the ``duck-synth`` CLI, Flight SQL (ADBC) and Quack (the ``duckdb`` CLI). For
aggregates, COUNT(*) under the filter is the target.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

import duck_synth
from duck_synth.sqltext import quote_literal
from tests.test_cli import cli

SMALL = (
    "CREATE TABLE small AS SELECT CASE WHEN i % 10 = 0 THEN 'Fair' WHEN i % 3 = 0 THEN 'Good' "
    "ELSE 'Ideal' END AS cut, (i % 50)::DOUBLE AS price FROM range(500) t(i)"
)
VIEW = "CREATE VIEW synthetic AS SELECT * FROM generate('m', target => 40, seed => 3)"

# (shape, query, the rows it returns: each has cut 'Fair' | the count it returns)
ROWS = [
    (
        "subquery",
        "SELECT * FROM (SELECT * FROM generate('m', target => 60, seed => 1)) t WHERE t.cut = 'Fair'",
        60,
    ),
    (
        "nested subquery with renames",
        "SELECT * FROM (SELECT c AS cut, p FROM (SELECT cut AS c, price AS p "
        "FROM generate('m', target => 30, seed => 1)) a) b WHERE b.cut = 'Fair' AND p >= 0",
        30,
    ),
    (
        "CTE",
        "WITH x AS (SELECT * FROM generate('m', target => 50, seed => 1)) "
        "SELECT * FROM x WHERE cut IN ('Fair')",
        50,
    ),
    ("view", "SELECT * FROM synthetic WHERE cut = 'Fair'", 40),
    (
        "IN, BETWEEN and OR",
        "SELECT * FROM (SELECT * FROM generate('m', target => 20, seed => 1)) t "
        "WHERE t.cut IN ('Fair') AND t.price BETWEEN 0 AND 49 OR t.cut = 'Fair' AND t.price < 0",
        20,
    ),
    (
        "UNION ALL in a subquery",
        "SELECT * FROM (SELECT * FROM generate('m', target => 20, seed => 1) UNION ALL "
        "SELECT * FROM generate('m', target => 15, seed => 2)) u WHERE u.cut = 'Fair'",
        35,
    ),
    (
        "join",
        "SELECT g.* FROM (SELECT * FROM generate('m', target => 25, seed => 1)) g "
        "JOIN (SELECT 'Fair' AS cut) k ON g.cut = k.cut WHERE g.cut = 'Fair' OR g.cut = 'Fair'",
        25,
    ),
]
COUNTS = [
    (
        "Superset's virtual_table",
        "SELECT cut, COUNT(*) AS n FROM (SELECT * FROM generate('m', target => 1000, seed => 1)) "
        "AS virtual_table WHERE cut = 'Fair' GROUP BY cut LIMIT 100",
        1000,
    ),
    (
        "aggregate over a view",
        "SELECT 'Fair' AS cut, count(*) AS n FROM synthetic WHERE cut = 'Fair'",
        40,
    ),
]


@pytest.fixture(scope="module")
def small_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shapes") / "small.duckdb"
    session = duck_synth.connect(str(path))
    session.sql(SMALL)
    session.sql("FROM train('m', 'small', epochs => 1, seed => 1)")
    session.sql(VIEW)
    session.close()
    return path


@pytest.fixture(scope="module")
def small(small_path):
    session = duck_synth.connect(str(small_path))
    yield session
    session.close()


def generations(session) -> int:
    return session.con.execute("SELECT count(*) FROM synth.generations").fetchone()[0]


@pytest.mark.parametrize(("shape", "sql", "rows"), ROWS, ids=[r[0] for r in ROWS])
def test_every_row_matches_and_target_counts_them(small, shape, sql, rows):
    cuts = small.sql(sql).df()["cut"]
    assert len(cuts) == rows
    assert set(cuts) == {"Fair"}


@pytest.mark.parametrize(("shape", "sql", "count"), COUNTS, ids=[c[0] for c in COUNTS])
def test_count_under_the_filter_is_the_target(small, shape, sql, count):
    assert small.sql(sql).df().to_dict("records") == [{"cut": "Fair", "n": count}]


def test_limit_caps_the_default_never_inflates(small):
    assert len(small.sql("SELECT * FROM (SELECT * FROM generate('m')) LIMIT 100001").df()) == 500
    assert len(small.sql("SELECT * FROM generate('m', target => 50) LIMIT 7").df()) == 7
    assert len(small.sql("SELECT * FROM generate('m', target => 5) LIMIT 100001").df()) == 5


def test_limit_over_a_filter_without_target_generates_only_the_limit(small):
    """SQL Lab's automatic LIMIT over a filtered default: 7 rows generated, not the 50 Fair
    training rows cut to 7."""
    cuts = small.sql("SELECT * FROM generate('m') WHERE cut = 'Fair' LIMIT 7").df()["cut"]
    assert len(cuts) == 7 and set(cuts) == {"Fair"}
    returned = "SELECT rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    assert small.con.execute(returned).fetchone() == (7,)
    cuts = small.sql("SELECT * FROM generate('m') WHERE cut = 'Fair' LIMIT 100001").df()["cut"]
    assert len(cuts) == 50  # the default (matching training rows) when the LIMIT is above it


def test_a_view_is_created_listed_and_described_without_generating(small):
    before = generations(small)
    small.sql(
        "CREATE OR REPLACE VIEW quiet AS SELECT * FROM generate('m', target => 10) "
        "WHERE cut = 'Good'"
    )
    small.sql("SELECT * FROM duckdb_views() WHERE view_name = 'quiet'")
    small.sql("SELECT * FROM information_schema.columns WHERE table_name = 'quiet'")
    described = small.sql("DESCRIBE quiet").df()
    assert list(described["column_name"]) == ["cut", "price"]
    assert generations(small) == before
    assert set(small.sql("FROM quiet").df()["cut"]) == {"Good"}
    assert generations(small) == before + 1


def test_explain_says_which_predicate_is_applied_after_generation(small):
    lines = small.explain(
        "SELECT * FROM (SELECT *, row_number() OVER () AS r FROM generate('m')) s "
        "WHERE s.cut = 'Fair'"
    )
    assert "kept in WHERE: s.cut = 'Fair' (the subquery has window functions" in lines


def test_every_shape_through_the_cli(small_path, tmp_path):
    copy = tmp_path / "copy.duckdb"
    shutil.copy(small_path, copy)
    for shape, sql, rows in ROWS:
        result = cli(tmp_path, str(copy), "--csv", "-c", sql)
        assert result.returncode == 0, (shape, result.stderr)
        read = list(csv.DictReader(io.StringIO(result.stdout)))
        assert len(read) == rows, shape
        assert {r["cut"] for r in read} == {"Fair"}, shape
    for shape, sql, count in COUNTS:
        result = cli(tmp_path, str(copy), "--csv", "-c", sql)
        read = list(csv.DictReader(io.StringIO(result.stdout)))
        assert read == [{"cut": "Fair", "n": str(count)}], shape


def quack_script(quack: str, token: str) -> str:
    """Every shape through quack_query: the counts of ROWS' shapes, then COUNTS' rows."""

    def remote(sql: str) -> str:
        return f"quack_query('{quack}', {quote_literal(sql)}, token => '{token}')"

    script = [
        f"SELECT count(*) AS n, count(*) FILTER (WHERE cut = 'Fair') AS fair FROM {remote(sql)};"
        for _, sql, _ in ROWS
    ]
    script += [f"SELECT * FROM {remote(sql)};" for _, sql, _ in COUNTS]
    return "".join(script)


def test_every_shape_through_flight_sql_and_quack(small_path, tmp_path):
    from tests.test_serve import ADMIN, adbc, duckdb_cli, free_port, start_server, stop

    copy = tmp_path / "served.duckdb"
    shutil.copy(small_path, copy)
    process, url, quack = start_server(
        copy, "--port", "0", "--quack-port", str(free_port()), "--token", ADMIN
    )
    try:
        with adbc(url) as conn, conn.cursor() as cur:
            for shape, sql, rows in ROWS:
                cur.execute(sql)
                cuts = [row[0] for row in cur.fetchall()]
                assert len(cuts) == rows and set(cuts) == {"Fair"}, shape
            for shape, sql, count in COUNTS:
                cur.execute(sql)
                assert cur.fetchall() == [("Fair", count)], shape
            # a bound parameter in Superset's wrapped query
            cur.execute(
                "SELECT cut, COUNT(*) AS n FROM (SELECT * FROM generate('m', target => 70, "
                "seed => 1)) AS virtual_table WHERE cut = ? GROUP BY cut LIMIT 100",
                ("Fair",),
            )
            assert cur.fetchall() == [("Fair", 70)]
        result = duckdb_cli(quack_script(quack, ADMIN))
        assert result.returncode == 0, result.stderr
        expected = []
        for _, _, rows in ROWS:
            expected += ["n,fair", f"{rows},{rows}"]
        for _, _, count in COUNTS:
            expected += ["cut,n", f"Fair,{count}"]
        assert result.stdout.split() == expected
    finally:
        stop(process)
