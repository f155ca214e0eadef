"""Keyed transforms on real rows: pseudonyms, format-preserving masks, per-session date shifts."""

from __future__ import annotations

import pytest
from conftest import MALES_TABLE

import duck_synth


@pytest.fixture(scope="module")
def males():
    session = duck_synth.connect()
    session.con.execute(MALES_TABLE)
    session.con.execute("CREATE TABLE people AS SELECT DISTINCT nr, school, ethn FROM males")
    yield session
    session.close()


def test_same_key_gives_the_same_pseudonym_across_tables(males):
    """Pseudonymised separately, the two tables still join, exactly as on the raw key."""
    males.sql(
        "CREATE TABLE steps_p AS SELECT pseudonymize(nr, 'secret') AS nr, year, wage FROM males"
    )
    males.sql(
        "CREATE TABLE people_p AS SELECT pseudonymize(nr, 'secret') AS nr, school FROM people"
    )
    joined = males.sql("SELECT count(*) FROM steps_p JOIN people_p USING (nr)").fetchone()[0]
    assert joined == males.sql("SELECT count(*) FROM males").fetchone()[0] == 4360
    distinct = males.sql("SELECT count(DISTINCT nr), min(length(nr)) FROM people_p").fetchone()
    assert distinct == (545, 20)  # one pseudonym per person, fixed length, no collision


def test_another_key_gives_unrelated_pseudonyms(males):
    same, order_kept = males.sql(
        """
        SELECT count(*) FILTER (WHERE a = b),
               corr(rank_a, rank_b)
        FROM (
            SELECT pseudonymize(nr, 'one') AS a, pseudonymize(nr, 'two') AS b,
                   rank() OVER (ORDER BY pseudonymize(nr, 'one')) AS rank_a,
                   rank() OVER (ORDER BY pseudonymize(nr, 'two')) AS rank_b
            FROM people
        )
        """
    ).fetchone()
    assert same == 0 and abs(order_kept) < 0.15  # no shared value, no shared order


def test_mask_keeps_length_and_character_classes_and_is_keyed(males):
    rows = males.sql(
        """
        SELECT v, mask(v, 'k') AS m, mask(v, 'k') AS again, mask(v, 'other') AS other
        FROM (SELECT DISTINCT occupation || ' #' || nr AS v FROM males LIMIT 200)
        """
    ).fetchall()
    for value, masked, again, other in rows:
        assert masked == again and masked != value and other != masked
        assert len(masked) == len(value)
        for a, b in zip(value, masked, strict=True):
            assert a.isdigit() == b.isdigit() and a.isupper() == b.isupper()
            assert a.islower() == b.islower()
            if not a.isalnum():
                assert a == b  # separators and spaces kept


def test_date_shift_moves_a_session_as_one(males):
    shifted = males.sql(
        """
        SELECT nr, list(shift_date(make_date(year, 6, 1), nr, 'k', max_days := 60)
                        - make_date(year, 6, 1)) AS offsets
        FROM males GROUP BY nr
        """
    ).fetchall()
    offsets = [set(o) for _, o in shifted]
    assert all(len(o) == 1 for o in offsets)  # every year of a person moved alike
    values = [next(iter(o)) for o in offsets]
    assert min(values) >= -60 and max(values) <= 60 and len(set(values)) > 80
    timestamp_type = males.sql(
        "SELECT typeof(shift_timestamp(TIMESTAMP '2020-01-01 08:00', 1, 'k'))"
    ).fetchone()[0]
    assert timestamp_type == "TIMESTAMP"


def test_nulls_stay_null_and_bad_keys_are_one_line(males, refused):
    assert males.sql("SELECT pseudonymize(NULL, 'k'), mask(NULL, 'k')").fetchone() == (None, None)
    refused(males, "SELECT pseudonymize(nr, '') FROM people", "key must be a non-empty string")
    refused(males, "SELECT shift_date(DATE '2020-01-01', 1, 'k', max_days := 0)", "max_days")
