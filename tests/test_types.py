"""Every column type the README promises, end to end through SQL; the others refused by name."""

from __future__ import annotations

import pytest

import duck_synth

ALL_TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything AS
SELECT i AS id,                                                       -- unique key
       (i % 7)::TINYINT AS small, (i * 13 % 1000)::SMALLINT AS medium, (i * 7919)::HUGEINT % 100000 AS huge,
       (i % 5)::UTINYINT AS unsigned,
       (i % 97) / 7.0 AS ratio, ((i % 89) / 3.0)::FLOAT AS single,
       ((i * 37 % 10000) / 100.0)::DECIMAL(8, 2) AS price,
       i % 3 = 0 AS flag,
       ['sad', 'ok', 'happy'][i % 3 + 1]::mood AS mood,
       ['red', 'green', 'blue', NULL][i % 4 + 1] AS colour,
       'item-' || (i % 300) AS product,                                  -- higher cardinality
       DATE '2020-01-01' + (i % 700)::INTEGER AS day,
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 11) MINUTE AS seen,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (i * 7) SECOND AS seen_tz,
       (TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 3) MINUTE)::TIMESTAMP_MS AS seen_ms,
       TIME '08:00:00' + INTERVAL (i % 600) MINUTE AS clock,
       'constant' AS always
FROM range(3000) t(i)
"""


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    s = duck_synth.connect(str(tmp_path_factory.mktemp("types") / "types.duckdb"))
    s.sql(ALL_TYPES)
    s.sql("FROM train('all', 'everything', epochs => 3, max_time => 600, seed => 1)")
    s.sql("CREATE TABLE synthetic AS FROM generate('all', target => 2000, seed => 2)")
    yield s
    s.close()


def test_generated_columns_have_the_source_types(everything):
    real = everything.sql("SELECT column_name, column_type FROM (DESCRIBE everything)").fetchall()
    assert (
        everything.sql("SELECT column_name, column_type FROM (DESCRIBE synthetic)").fetchall()
        == real
    )


def test_kinds_are_chosen_from_type_and_values(everything):
    kinds = dict(everything.sql("SELECT \"column\", kind FROM describe_model('all')").fetchall())
    assert kinds["id"] == "key" and kinds["always"] == "constant" and kinds["mood"] == "categorical"
    assert (
        kinds["day"] == kinds["seen_tz"] == kinds["clock"] == "datetime"
        and kinds["price"] == "numeric"
    )


def test_keys_are_fresh_and_unique_constants_constant_nulls_learned(everything):
    ids, distinct_ids, always, null_colours = everything.sql(
        "SELECT count(id), count(DISTINCT id), count(DISTINCT always), count(*) FILTER (colour IS NULL) FROM synthetic"
    ).fetchone()
    assert ids == distinct_ids == 2000 and always == 1
    assert 200 < null_colours < 800  # a quarter of the real rows are NULL


def test_values_stay_in_their_domains(everything):
    row = everything.sql("""
        SELECT min(small), max(small), bool_and(flag IS NOT NULL), count(DISTINCT mood),
               min(day) >= DATE '2020-01-01', max(day) <= DATE '2021-12-01',
               bool_and(clock BETWEEN TIME '08:00:00' AND TIME '18:00:00'),
               bool_and(price * 100 = round(price * 100))
        FROM synthetic""").fetchone()
    assert row == (0, 6, True, 3, True, True, True, True)


def test_where_on_enum_boolean_and_dates_is_pushed(everything):
    rows = everything.sql(
        "SELECT mood, flag, day FROM generate('all', target => 300, seed => 3) "
        "WHERE mood = 'happy' AND flag AND day >= DATE '2021-01-01'"
    ).fetchall()
    assert len(rows) == 300 and all(
        m == "happy" and f and str(d) >= "2021-01-01" for m, f, d in rows
    )


@pytest.mark.parametrize(
    "expression, type_name",
    [
        ("[1, 2]", "INTEGER[]"),
        ("{'a': 1}", "STRUCT"),
        ("MAP {'a': 1}", "MAP"),
        ("'\\x00'::BLOB", "BLOB"),
        ("INTERVAL 1 DAY", "INTERVAL"),
    ],
)
def test_unmodelable_types_are_refused_by_column_name(everything, expression, type_name):
    source = f"SELECT {expression} AS bad, small FROM everything".replace("'", "''")
    pattern = f"column 'bad': type {type_name.replace('[', '.').replace(']', '.')}"
    with pytest.raises(duck_synth.SynthError, match=pattern):
        everything.sql(f"FROM train('x', '{source}')")
    summary = everything.sql(
        f"FROM train('x', '{source}', exclude => ['bad'], epochs => 1, max_time => 600)"
    )
    assert summary.fetchone()[0] == "x"


def test_string_cleaning_and_encoding_overrides(tmp_path):
    s = duck_synth.connect(str(tmp_path / "clean.duckdb"))
    s.sql("""CREATE TABLE raw AS SELECT ['  a ', 'a', '', 'b '][i % 4 + 1] AS label, (i % 6) * 100 AS code,
             i % 10 AS grp FROM range(2000) t(i)""")
    s.sql(
        "FROM train('m', 'raw', strip_strings => true, empty_strings_as_null => true, "
        "encoding => {'code': 'categorical'}, columns => ['label', 'code'], epochs => 2, "
        "max_time => 600)"
    )
    kinds = dict(s.sql("SELECT \"column\", kind FROM describe_model('m')").fetchall())
    assert kinds == {"label": "categorical", "code": "categorical"}
    labels = {
        r[0]
        for r in s.sql(
            "SELECT DISTINCT label FROM generate('m', target => 3000, seed => 1)"
        ).fetchall()
    }
    assert labels == {"a", "b", None}
    codes = {
        r[0]
        for r in s.sql(
            "SELECT DISTINCT code FROM generate('m', target => 3000, seed => 1)"
        ).fetchall()
    }
    assert codes == {0, 100, 200, 300, 400, 500}
    s.close()


def test_integer_keys_count_from_one(everything):
    ids = everything.sql(
        "SELECT min(id), max(id) FROM generate('all', target => 500, seed => 9)"
    ).fetchone()
    assert ids == (1, 500)
