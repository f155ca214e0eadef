"""generate()'s controls: constraints, equalize / rebalance, impute, fairness, unique values,
string limits — each inside generation, and target counting what survives all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SLID_TABLE


def last_generation(session) -> tuple[int, int, float]:
    return session.con.execute(
        "SELECT rows_drawn, rows_returned, acceptance FROM generations() "
        "ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()


def test_equalize_gives_equal_shares_by_conditioning(session):
    counts = dict(
        session.sql(
            "SELECT cut, count(*) FROM generate('d', target => 5000, equalize => 'cut', seed => 1) "
            "GROUP BY cut"
        ).fetchall()
    )
    assert counts == dict.fromkeys(["Fair", "Good", "Very Good", "Premium", "Ideal"], 1000)
    drawn, returned, _ = last_generation(session)
    assert returned == 5000 and drawn < 5200  # the value is given, not filtered for


def test_equalized_rows_follow_their_value(session):
    """Fair diamonds stay Fair diamonds: the other columns are drawn given the cut."""
    rows = session.sql(
        "SELECT cut, avg(depth) AS depth, avg(\"table\") AS tab FROM generate('d', target => 5000, "
        "equalize => 'cut', seed => 2) GROUP BY cut"
    ).df()
    real = session.sql(
        'SELECT cut, avg(depth) AS depth, avg("table") AS tab FROM diamonds GROUP BY cut'
    ).df()
    both = rows.merge(real, on="cut", suffixes=("_syn", "_real"))
    fair = both.set_index("cut").loc["Fair"]
    ideal = both.set_index("cut").loc["Ideal"]
    # in the real data Fair cuts have a much wider table than Ideal ones; the synthetic keep it
    assert fair.tab_syn - ideal.tab_syn > 0.6 * (fair.tab_real - ideal.tab_real) > 0


def test_equalize_under_a_filter_shares_among_what_passes(session):
    rows = session.sql(
        "SELECT cut, price FROM generate('d', target => 1000, equalize => 'cut', seed => 3) "
        "WHERE price > 5000 AND cut <> 'Fair'"
    ).df()
    assert len(rows) == 1000 and (rows.price > 5000).all()
    assert rows.cut.astype(str).value_counts().to_dict() == {
        "Good": 250,
        "Very Good": 250,
        "Premium": 250,
        "Ideal": 250,
    }


def test_rebalance_sets_given_shares_and_keeps_the_others_proportions(session):
    rows = session.sql(
        "SELECT cut FROM generate('d', target => 10000, seed => 4, "
        "rebalance => {'column': 'cut', 'probabilities': {'Fair': 0.5}})"
    ).df()
    shares = rows.cut.astype(str).value_counts(normalize=True)
    assert shares["Fair"] == pytest.approx(0.5, abs=1e-4)
    real = session.sql("SELECT cut, count(*) AS n FROM diamonds WHERE cut <> 'Fair' GROUP BY cut")
    real = real.df().set_index("cut").n
    real = real / real.sum() * 0.5
    for cut, share in real.items():
        assert shares[str(cut)] == pytest.approx(share, abs=0.005)


def test_impute_never_draws_null(session):
    session.sql(SLID_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    if not session.sql("SELECT count(*) FROM models() WHERE name = 'slid_small'").fetchone()[0]:
        session.sql("FROM train('slid_small', 'slid', epochs => 6, seed => 1)")
    plain = session.sql(
        "SELECT count(*) FILTER (WHERE wages IS NULL) FROM generate('slid_small', target => 4000, "
        "seed => 2)"
    ).fetchone()[0]
    imputed = session.sql(
        "SELECT count(*) FILTER (WHERE wages IS NULL), count(*) FILTER (WHERE education IS NULL) "
        "FROM generate('slid_small', target => 4000, seed => 2, impute => ['wages', 'education'])"
    ).fetchone()
    assert plain > 1000  # SLID has no wage for about 45% of people
    assert imputed == (0, 0)
    drawn, returned, _ = last_generation(session)
    assert drawn == returned == 4000  # suppressed in sampling, not filtered


def test_fairness_makes_the_target_independent_of_sensitive_columns(session):
    from scipy.stats import chi2_contingency

    def independence_p(extra: str) -> float:
        rows = session.sql(
            f"SELECT cut, clarity FROM generate('d', target => 20000, seed => 5 {extra})"
        ).df()
        return chi2_contingency(pd.crosstab(rows.clarity, rows.cut)).pvalue

    fair = independence_p(
        ", fairness => {'target_column': 'cut', 'sensitive_columns': ['clarity']}"
    )
    assert independence_p("") < 1e-12  # clarity and cut depend on each other in diamonds
    assert fair > 0.001  # with fairness, no detectable dependence in 20,000 rows


def test_constraints_hold_and_the_acceptance_rate_is_logged(session):
    rows = session.sql(
        "SELECT price, carat, x, y FROM generate('d', target => 800, seed => 6, "
        "constraints => ['price > 2500 * carat', 'x <= y'])"
    ).df()
    assert len(rows) == 800
    assert (rows.price > 2500 * rows.carat).all() and (rows.x <= rows.y).all()
    drawn, returned, acceptance = last_generation(session)
    assert returned == 800 and drawn > 800 and 800 / drawn <= acceptance < 1


def test_constraints_declared_at_training_bind_every_generation(session):
    session.sql(
        "FROM train('d_rules', 'SELECT * FROM diamonds USING SAMPLE 4000 ROWS (reservoir, 1)', "
        "epochs => 3, seed => 1, constraints => ['x <= y + 0.02', 'price >= 500'])"
    )
    violations = session.sql(
        "SELECT json_extract(metrics, '$.constraint_violations') FROM models() "
        "WHERE name = 'd_rules'"
    ).fetchone()[0]
    assert violations is None or all(
        v < 4000 for v in __import__("json").loads(violations).values()
    )
    rows = session.sql("SELECT x, y, price FROM generate('d_rules', target => 500, seed => 1)").df()
    assert len(rows) == 500 and (rows.x <= rows.y + 0.02).all() and (rows.price >= 500).all()


def test_unique_columns_drop_repeated_values_and_target_still_counts(session):
    rows = session.sql(
        "SELECT price FROM generate('d', target => 2000, seed => 7, unique_columns => ['price'])"
    ).df()
    assert len(rows) == 2000 and rows.price.is_unique
    drawn, _, _ = last_generation(session)
    assert drawn > 2000  # prices repeat in unconditional draws; those rows were dropped


def test_drop_unique_violation_covers_columns_unique_in_training(session):
    # a measurement with one decimal, distinct in every training row (not a key: not integers)
    session.sql(
        "CREATE OR REPLACE TABLE with_readings AS SELECT cut, color, "
        "CAST(row_number() OVER () AS DOUBLE) / 10 AS reading "
        "FROM diamonds USING SAMPLE 3000 ROWS (reservoir, 2)"
    )
    session.sql("FROM train('readings', 'with_readings', epochs => 2, seed => 1)")
    unique = session.sql(
        "SELECT json_extract(statistics, '$.facts.reading.unique') FROM synth.models "
        "WHERE name = 'readings'"
    ).fetchone()[0]
    assert unique == "true"
    plain = session.sql(
        "SELECT count(*) - count(DISTINCT reading) FROM generate('readings', target => 1000, "
        "seed => 1)"
    ).fetchone()[0]
    rows = session.sql(
        "SELECT reading FROM generate('readings', target => 1000, seed => 1, "
        "drop_unique_violation => true)"
    ).df()
    assert plain > 10  # 1,000 draws over 3,000 values repeat some
    assert len(rows) == 1000 and rows.reading.is_unique


def test_limit_strings_cuts_to_the_longest_training_string(session):
    # codes of at most 3 characters; the model emits '_RARE_' (6) for protected rare codes
    session.sql(
        "CREATE OR REPLACE TABLE short_codes AS SELECT cut, "
        "CASE WHEN row_number() OVER () % 40 = 0 THEN 'x' || (row_number() OVER ()) % 997 "
        "ELSE left(CAST(clarity AS VARCHAR), 3) END AS code FROM diamonds LIMIT 8000"
    )
    session.sql("FROM train('short', 'short_codes', epochs => 2, seed => 1)")
    longest = session.sql("SELECT max(length(code)) FROM short_codes").fetchone()[0]
    plain = session.sql(
        "SELECT max(length(code)) FROM generate('short', target => 3000, seed => 1)"
    ).fetchone()[0]
    limited = session.sql(
        "SELECT max(length(code)) FROM generate('short', target => 3000, seed => 1, "
        "limit_strings => true)"
    ).fetchone()[0]
    assert plain > longest and limited <= longest


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("equalize => 'nope'", "equalize: unknown column 'nope'"),
        ("equalize => 'price'", "'price' is numeric with value ranges"),
        (
            "equalize => 'cut', rebalance => {'column': 'cut', 'probabilities': {'Fair': 0.2}}",
            "either equalize or rebalance",
        ),
        ("rebalance => {'column': 'cut', 'probabilities': {'Superb': 0.2}}", "no value 'Superb'"),
        (
            "rebalance => {'column': 'cut', 'probabilities': {'Fair': 0.7, 'Ideal': 0.6}}",
            "add up to 1.3",
        ),
        ("rebalance => {'col': 'cut'}", "rebalance must be"),
        ("impute => ['nope']", "impute: unknown column 'nope'"),
        (
            "fairness => {'target_column': 'price', 'sensitive_columns': ['cut']}",
            "must be categorical",
        ),
        ("fairness => {'target_column': 'cut'}", "fairness must be"),
        ("unique_columns => ['nope']", "unique_columns: unknown column 'nope'"),
        ("constraints => ['nope > 1']", "unknown column 'nope'"),
        ("constraints => 'price >'", "not a valid SQL predicate"),
    ],
)
def test_bad_controls_fail_in_one_line_and_change_nothing(session, refused, arguments, message):
    refused(session, f"FROM generate('d', target => 10, {arguments})", message)


def test_shares_cannot_be_combined_with_seed_rows(session, refused):
    refused(
        session,
        "FROM generate('d', equalize => 'cut', seed_rows => 'SELECT ''Fair'' AS cut')",
        "equalize cannot be combined with seed_rows",
    )


def test_an_unsatisfiable_constraint_is_reported(session, refused):
    refused(
        session,
        "FROM generate('d', target => 10, constraints => ['price < 0 AND carat > 0'])",
        "found 0 rows|unsatisfiable",
    )


def test_constraints_at_training_must_name_model_columns(session, refused):
    refused(
        session,
        "FROM train('bad_rules', 'diamonds', epochs => 1, constraints => ['weight > 0'])",
        "constraint 'weight > 0': unknown column 'weight'",
    )


def test_equalize_conditions_session_metadata(session, careers):
    rows = session.sql(
        f"SELECT ethn, count(DISTINCT nr) AS people, count(*) AS steps FROM generate('{careers}', "
        "target => 300, equalize => 'ethn', seed => 1) GROUP BY ethn"
    ).fetchall()
    assert {e: p for e, p, _ in rows} == {"black": 100, "hisp": 100, "other": 100}
    assert np.mean([s / p for _, p, s in rows]) > 4  # whole careers, not single years
