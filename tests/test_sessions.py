"""Session models on real panel data: plm's Males, 545 men observed yearly 1980-1987."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import MALES_TABLE, catalog_checksum

import duck_synth
from duck_synth import SynthError

PANEL = "session_key => 'nr', order_by => 'year'"

# within-person dynamics: wage persistence, experience growing a year a year, union persistence
DYNAMICS = """
WITH steps AS (
    SELECT wage, lag(wage) OVER person AS previous_wage,
           exper - lag(exper) OVER person AS exper_step,
           "union" = lag("union") OVER person AS union_kept
    FROM {table} WINDOW person AS (PARTITION BY nr ORDER BY year)
)
SELECT corr(wage, previous_wage), avg((exper_step = 1)::INT), avg(union_kept::INT) FROM steps
"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    path = tmp_path_factory.mktemp("males") / "males.duckdb"
    session = duck_synth.connect(str(path))
    session.con.execute(MALES_TABLE)
    summary = session.sql(
        f"FROM train('p', 'males', {PANEL}, epochs => 20, max_time => 1800, seed => 0)"
    ).df()
    yield session, summary.iloc[0]
    session.close()


def test_train_reports_sessions_and_infers_metadata(panel):
    session, summary = panel
    assert summary["sessions"] == 545 and summary["rows"] == 4360
    assert summary["method"] == "autoregressive" and summary["why"].startswith("auto: session")
    kinds = dict(session.sql("SELECT \"column\", kind FROM describe_model('p')").fetchall())
    assert kinds["nr"] == "session_key" and kinds["year"] == "order"
    metadata = session.sql(
        "SELECT statistics->'sessions'->'layout'->>'metadata' FROM synth.models WHERE name = 'p'"
    ).fetchone()[0]
    assert metadata == '["school","ethn"]'  # the columns constant within every person


def test_generate_returns_as_many_whole_sessions_as_training_by_default(panel):
    session, _ = panel
    rows = session.sql("FROM generate('p', seed => 1)").df()
    assert rows["nr"].nunique() == 545 and sorted(rows["nr"].unique()) == list(range(1, 546))
    per_person = rows.groupby("nr").agg(
        steps=("year", "size"),
        first=("year", "min"),
        last=("year", "max"),
        years=("year", "nunique"),
        schools=("school", "nunique"),
        ethns=("ethn", "nunique"),
    )
    assert (per_person["steps"] == 8).all()  # every real person has 8 years
    assert (per_person["first"] == 1980).all() and (per_person["last"] == 1987).all()
    assert (per_person["years"] == 8).all()
    assert (per_person["schools"] == 1).all() and (per_person["ethns"] == 1).all()


def test_steps_keep_the_panel_dynamics(panel):
    session, _ = panel
    session.sql("CREATE OR REPLACE TABLE synthetic AS FROM generate('p', seed => 2)")
    real = session.sql(DYNAMICS.format(table="males")).fetchone()
    synthetic = session.sql(DYNAMICS.format(table="synthetic")).fetchone()
    wage_lag, exper_step, union_kept = synthetic
    assert real[0] > 0.6 and wage_lag > 0.4  # shuffled steps would give about 0.25
    assert real[1] == 1.0 and exper_step > 0.9
    assert abs(union_kept - real[2]) < 0.05


def test_where_on_metadata_conditions_the_sessions(panel):
    session, _ = panel
    rows = session.sql(
        "SELECT nr, ethn FROM generate('p', target => 40, seed => 3) WHERE ethn = 'black'"
    ).df()
    assert rows["nr"].nunique() == 40 and set(rows["ethn"]) == {"black"}
    drawn, returned = session.con.execute(
        "SELECT rows_drawn, rows_returned FROM synth.generations ORDER BY generation_id DESC LIMIT 1"
    ).fetchone()
    assert drawn == returned == 40  # conditioning, not rejection: counted in sessions


def test_where_on_a_measurement_keeps_whole_sessions_with_such_a_step(panel):
    session, _ = panel
    rows = session.sql(
        "SELECT nr, wage FROM generate('p', target => 25, seed => 4) WHERE wage > 2.5"
    ).df()
    per_person = rows.groupby("nr")["wage"].agg(["size", "max"])
    assert len(per_person) == 25 and (per_person["size"] == 8).all()
    assert (per_person["max"] > 2.5).all() and (rows["wage"] <= 2.5).any()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("session_key => 'person'", "session_key: unknown column 'person'"),
        ("session_key => 'nr'", "needs order_by"),
        ("order_by => 'year'", "give session_key too"),
        (f"{PANEL}, metadata => ['wage']", "metadata column 'wage' varies within session nr ="),
        (f"{PANEL}, metadata => ['nr']", "metadata: unknown column 'nr'"),
        ("session_key => 'nr', order_by => 'ethn'", "order_by column 'ethn' is VARCHAR"),
    ],
)
def test_bad_session_arguments_are_one_line_and_change_nothing(panel, arguments, message):
    session, _ = panel
    before = catalog_checksum(session)
    with pytest.raises(SynthError, match=message) as caught:
        session.sql(f"FROM train('bad', 'males', {arguments})")
    assert "\n" not in str(caught.value)
    assert catalog_checksum(session) == before


SPLIT = {part: f"SELECT * FROM males WHERE hash(nr) % 3 = {i}" for i, part in enumerate("abh")}
# b's steps dealt out at random to b's people and years: per-step shapes stay, sessions go
SHUFFLED = f"""
SELECT person.nr, person.year, person.school, person.ethn,
       step.* EXCLUDE (nr, year, school, ethn, i)
FROM (SELECT *, row_number() OVER (ORDER BY hash(nr, year)) AS i FROM ({SPLIT["b"]})) step
JOIN (SELECT nr, year, school, ethn, row_number() OVER (ORDER BY nr, year) AS i
      FROM ({SPLIT["b"]})) person USING (i)
"""


def session_scores(session, synthetic: str) -> dict[tuple[str, str], float]:
    rows = session.sql(
        f"FROM evaluate($${SPLIT['a']}$$, $${synthetic}$$, holdout => $${SPLIT['h']}$$, "
        "session_key => 'nr', order_by => 'year')"
    ).fetchall()
    return {(metric, columns): value for metric, columns, value, _ in rows}


def test_session_metrics_tell_real_sessions_from_shuffled_steps(panel):
    session, _ = panel
    real, shuffled = session_scores(session, SPLIT["b"]), session_scores(session, SHUFFLED)
    assert real[("sessions", "")] > 0.9
    assert real[("session_column_shape", "length")] == 1.0
    assert 0.4 < real[("session_dcr_share", "")] < 0.65  # unseen people: about 0.5
    # every step still looks like a step, but people no longer hold together
    assert abs(shuffled[("column_shape", "wage")] - real[("column_shape", "wage")]) < 0.03
    assert shuffled[("sessions", "")] < real[("sessions", "")] - 0.1
    assert shuffled[("lag1_autocorrelation", "wage")] < real[("lag1_autocorrelation", "wage")] - 0.2
    assert shuffled[("session_column_shape", "wage mean")] < 0.8


def test_evaluate_runs_a_generated_side_once_for_all_session_metrics(panel):
    session, _ = panel
    before = session.sql("SELECT count(*) FROM generations()").fetchone()[0]
    scores = session_scores(session, "FROM generate('p', seed => 3)")
    assert scores[("sessions", "")] > 0.5
    # every metric judged the same rows: one generation, not one per metric
    assert session.sql("SELECT count(*) FROM generations()").fetchone()[0] == before + 1


def test_copied_sessions_score_one_and_are_caught_by_the_session_dcr(panel):
    session, _ = panel
    copied = session_scores(session, SPLIT["a"])
    assert copied[("sessions", "")] == pytest.approx(1.0)
    assert copied[("session_dcr_share", "")] == 1.0
    assert copied[("session_exact_copy_rate", "")] == 1.0
    assert ("dcr_share", "") not in copied  # single steps are not judged for privacy


def test_timestamps_are_rebuilt_from_start_and_gaps_and_text_keys_count_sessions():
    """Sessions keyed by text, ordered by TIMESTAMP: visits every 10 minutes from 08:00."""
    session = duck_synth.connect()
    session.con.execute(
        """
        CREATE TABLE visits AS
        SELECT 'user-' || (i // 4) AS user_id,
               TIMESTAMP '2024-03-01 08:00:00' + INTERVAL (i % 4 * 10) MINUTE AS ts,
               CASE WHEN i // 4 % 2 = 0 THEN 'web' ELSE 'app' END AS channel,
               (i % 4) * 1.5 + (i // 4 % 2) AS spend
        FROM range(2000) t(i)
        """
    )
    summary = session.sql(
        "FROM train('v', 'visits', session_key => 'user_id', order_by => 'ts', epochs => 30, "
        "max_time => 1800, seed => 0)"
    ).df()
    assert summary["sessions"][0] == 500
    rows = session.sql("FROM generate('v', target => 50, seed => 1)").df()
    assert rows["user_id"].map(type).eq(str).all()
    assert sorted(rows["user_id"].astype(int).unique()) == list(range(1, 51))
    gaps = rows.groupby("user_id")["ts"].agg(lambda ts: sorted(ts.diff().dropna().unique()))
    assert rows.groupby("user_id").size().eq(4).all()
    assert rows.groupby("user_id")["ts"].min().dt.strftime("%H:%M").eq("08:00").all()
    assert gaps.map(lambda g: g == [pd.Timedelta(minutes=10)]).mean() > 0.9
    session.close()


def test_seed_rows_give_each_session_its_metadata(panel):
    """One session per seed row, in the seed rows' order; NULL seed cells are generated."""
    session, _ = panel
    rows = session.sql(
        "FROM generate('p', seed => 5, seed_rows => "
        "'SELECT * FROM (VALUES (16, ''black''), (9, NULL), (12, ''hisp'')) s(school, ethn)')"
    ).df()
    per_person = rows.groupby("nr").agg(
        steps=("year", "size"), school=("school", "first"), ethn=("ethn", "first")
    )
    assert list(per_person.index) == [1, 2, 3] and (per_person["steps"] == 8).all()
    assert list(per_person["school"]) == [16, 9, 12]
    assert per_person["ethn"][1] == "black" and per_person["ethn"][3] == "hisp"
    assert per_person["ethn"][2] in ("black", "hisp", "other")  # generated, not NULL
    with pytest.raises(SynthError, match="'wage' is not a metadata column of session model 'p'"):
        session.sql("FROM generate('p', seed_rows => 'SELECT 1.5 AS wage')")


def test_a_session_model_travels_as_one_file(panel, tmp_path):
    session, _ = panel
    path = tmp_path / "panel.safetensors"
    session.sql(f"FROM export_model('p', '{path}')").fetchall()
    other = duck_synth.connect()
    other.sql(f"FROM import_model('{path}', name => 'copy')").fetchall()
    original = session.sql("FROM generate('p', target => 5, seed => 9)").df()
    copied = other.sql("FROM generate('copy', target => 5, seed => 9)").df()
    assert copied.equals(original) and original["nr"].nunique() == 5
    other.close()


def test_variable_lengths_are_learned_and_single_step_sessions_work():
    """600 sessions of 1 to 10 steps, equally many of each length."""
    session = duck_synth.connect()
    session.con.execute(
        """
        CREATE TABLE runs AS
        SELECT k, step AS pos, (k % 3)::VARCHAR AS grp, k % 3 + step * 0.5 AS x
        FROM range(600) a(k), range(10) b(step) WHERE step < 1 + k % 10
        """
    )
    session.sql(
        "FROM train('r', 'runs', session_key => 'k', order_by => 'pos', epochs => 30, "
        "max_time => 1800, seed => 0)"
    )
    rows = session.sql("FROM generate('r', seed => 1)").df()
    lengths = rows.groupby("k").size()
    assert len(lengths) == 600 and lengths.min() == 1 and lengths.max() == 10
    assert lengths.value_counts().min() > 30  # every length about 60 times
    in_order = rows.groupby("k")["pos"].apply(lambda p: list(p) == list(range(len(p))))
    assert in_order.all()  # positions rebuilt as 0, 1, 2, ... from start and gaps
    session.close()
