"""evaluate(): fidelity metrics in SQL, on real data, checked against SDMetrics' QualityReport.

SDMetrics pins pandas < 3: it runs in its own virtual environment (tests/sdmetrics_requirements.txt,
built on first use, cached in ~/.cache/duck_synth/sdmetrics or $DUCK_SYNTH_SDMETRICS_VENV), over
Parquet files that duck_synth writes (tests/sdmetrics_quality.py).

The spread tables: the real data's own holdout (scores near 1), each column shuffled on its own
(shapes kept, pair trends gone) and columns partly replaced by noise (30% and 70% of the cells).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import DIAMONDS_TABLE, own_venv

import duck_synth
from duck_synth import SynthError
from duck_synth.evaluate import evaluate

SLID = Path(__file__).resolve().parents[1] / "examples" / "data" / "SLID.csv"
SPREAD = ("holdout", "shuffled", "noise30", "noise70")
SDMETRICS_REQUIREMENTS = Path(__file__).with_name("sdmetrics_requirements.txt")
SDMETRICS_SCRIPT = Path(__file__).with_name("sdmetrics_quality.py")
SDMETRICS_VENV = Path(
    os.environ.get("DUCK_SYNTH_SDMETRICS_VENV", Path.home() / ".cache" / "duck_synth" / "sdmetrics")
)


def make_spread(s: duck_synth.Session, name: str, rows: int) -> None:
    """``{name}_real`` and ``{name}_holdout`` (disjoint seeded halves of ``name``, ``rows`` each),
    ``{name}_shuffled`` (holdout, each column permuted on its own) and ``{name}_noise30/70``."""
    s.sql(f"CREATE TABLE {name}_ranked AS SELECT *, hash(rowid, 1) AS rank FROM {name}")
    s.sql(
        f"CREATE TABLE {name}_real AS SELECT * EXCLUDE rank FROM {name}_ranked "
        f"ORDER BY rank LIMIT {rows}"
    )
    s.sql(
        f"CREATE TABLE {name}_holdout AS SELECT * EXCLUDE rank FROM {name}_ranked "
        f"ORDER BY rank DESC LIMIT {rows}"
    )
    columns = s.con.execute(f"DESCRIBE {name}_holdout").fetchall()
    shuffled = ", ".join(
        f'(SELECT list("{c}" ORDER BY hash(rowid, {i + 7})) FROM {name}_holdout)[i] AS "{c}"'
        for i, (c, *_) in enumerate(columns)
    )
    s.sql(f"CREATE TABLE {name}_shuffled AS SELECT {shuffled} FROM range(1, {rows} + 1) r(i)")
    for share in (30, 70):
        items = []
        for i, (c, duck_type, *_) in enumerate(columns):
            noisy = f"hash(rowid, {i + 100}) % 100 < {share}"
            if duck_type == "VARCHAR" or duck_type.startswith("ENUM"):
                levels = f'(SELECT list(DISTINCT "{c}"::VARCHAR ORDER BY "{c}"::VARCHAR) FROM {name}_holdout)'
                noise = f"{levels}[1 + (hash(rowid, {i + 200}) % len({levels}))::BIGINT]"
                items.append(f'CASE WHEN {noisy} THEN {noise} ELSE "{c}"::VARCHAR END AS "{c}"')
            else:
                low, high = s.con.execute(
                    f'SELECT min("{c}")::DOUBLE, max("{c}")::DOUBLE FROM {name}_holdout'
                ).fetchone()
                uniform = f"(hash(rowid, {i + 300}) % 100000) / 100000.0"
                noise = f"{low} + ({high} - {low}) * {uniform}"
                items.append(f'CASE WHEN {noisy} THEN {noise} ELSE "{c}" END AS "{c}"')
        s.sql(f"CREATE TABLE {name}_noise{share} AS SELECT {', '.join(items)} FROM {name}_holdout")


@pytest.fixture(scope="module")
def s():
    session = duck_synth.connect(None)
    session.sql(DIAMONDS_TABLE)
    make_spread(session, "diamonds", 6000)
    if SLID.exists():
        session.sql(f"CREATE TABLE slid AS FROM read_csv('{SLID}', nullstr = 'NA')")
        session.sql('ALTER TABLE slid DROP COLUMN "column0"')
        make_spread(session, "slid", 3000)
    yield session
    session.close()


def scores(s: duck_synth.Session, real: str, synthetic: str, **options) -> dict[str, float]:
    """The overall rows of evaluate(), by metric."""
    args = "".join(f", {k} => {v!r}" for k, v in options.items())
    rows = s.sql(f"FROM evaluate('{real}', '{synthetic}'{args})").fetchall()
    return {metric: value for metric, columns, value, _ in rows if columns == ""}


def tables(s, name: str) -> list[str]:
    if name == "slid" and not SLID.exists():
        pytest.skip(f"{SLID} is not here")
    return [f"{name}_{kind}" for kind in SPREAD]


def test_output_rows_and_types(s):
    result = s.sql("FROM evaluate('diamonds_real', 'diamonds_holdout')")
    assert result.columns == ["metric", "columns", "value", "detail"]
    types = s.con.execute(
        "SELECT column_type FROM (DESCRIBE FROM evaluate('diamonds_real', 'diamonds_holdout'))"
    ).fetchall()
    assert [t for (t,) in types] == ["VARCHAR", "VARCHAR", "DOUBLE", "JSON"]
    rows = result.fetchall()
    metrics = [r[0] for r in rows]
    for overall in ("overall", "shapes", "pair_trends", "histogram", "mutual_information"):
        assert metrics.count(overall) == 1
    assert metrics.count("column_shape") == 10
    assert metrics.count("null_share_difference") == 10
    assert metrics.count("pair_trend") == 45
    assert metrics.count("mutual_information_similarity") == 45
    shape = {r[1]: json.loads(r[3]) for r in rows if r[0] == "column_shape"}
    assert shape["price"]["method"] == "KSComplement"
    assert shape["cut"]["method"] == "TVComplement"
    assert ("carat, price") in [r[1] for r in rows if r[0] == "pair_trend"]


@pytest.mark.parametrize("name", ["diamonds", "slid"])
def test_real_holdout_near_one_shuffled_drops_pair_trends(s, name):
    real, holdout, shuffled, *_ = [f"{name}_real", *tables(s, name)]
    same = scores(s, real, holdout)
    assert same["shapes"] > 0.97 and same["histogram"] > 0.97
    assert same["mutual_information"] > 0.97 and same["null_shares"] > 0.98
    if name == "diamonds":  # SLID has no strongly related pair: no pair_trends score there
        assert same["pair_trends"] > 0.85 and same["overall"] > 0.9
    mixed = scores(s, real, shuffled)
    assert abs(mixed["shapes"] - same["shapes"]) < 0.005  # a permutation keeps every marginal
    assert mixed["mutual_information"] < same["mutual_information"] - 0.02
    if name == "diamonds":
        assert mixed["pair_trends"] < same["pair_trends"] - 0.3


@pytest.mark.parametrize("name", ["diamonds", "slid"])
def test_noise_lowers_every_score(s, name):
    real, holdout, _, noise30, noise70 = [f"{name}_real", *tables(s, name)]
    by_noise = [scores(s, real, t) for t in (holdout, noise30, noise70)]
    for metric, gap in (("shapes", 0.03), ("histogram", 0.03), ("mutual_information", 0.01)):
        values = [b[metric] for b in by_noise]
        assert values[0] - gap > values[1] > values[2] + gap, (metric, values)


def sdtype(duck_type: str) -> str:
    if duck_type == "BOOLEAN":
        return "boolean"
    if duck_type.startswith(("DATE", "TIMESTAMP")):
        return "datetime"
    if duck_type == "VARCHAR" or duck_type.startswith("ENUM"):
        return "categorical"
    return "numerical"


@pytest.fixture(scope="module")
def sdmetrics() -> Path:
    """The Python of SDMetrics' virtual environment."""
    return own_venv(SDMETRICS_REQUIREMENTS, SDMETRICS_VENV, "SDMetrics") / "bin" / "python"


def sdmetrics_scores(
    python: Path, s, real: str, synthetic: list[str], thresholds: bool = True
) -> list[dict[str, float]]:
    """SDMetrics' Column Shapes and Column Pair Trends of each synthetic table against ``real``,
    the tables written as Parquet and judged in one run of tests/sdmetrics_quality.py."""
    sdtypes = {c: sdtype(t) for c, t, *_ in s.con.execute(f"DESCRIBE {real}").fetchall()}
    with tempfile.TemporaryDirectory(prefix="sdmetrics_") as folder:
        paths = {}
        for table in (real, *synthetic):
            paths[table] = str(Path(folder) / f"{table}.parquet")
            s.con.execute(f"COPY (FROM {table}) TO '{paths[table]}' (FORMAT parquet)")
        job = Path(folder) / "job.json"
        job.write_text(
            json.dumps(
                {
                    "real": paths[real],
                    "synthetic": [paths[t] for t in synthetic],
                    "sdtypes": sdtypes,
                    "thresholds": thresholds,
                }
            )
        )
        done = subprocess.run(
            [python, SDMETRICS_SCRIPT, job], capture_output=True, text=True, timeout=1800
        )
    assert done.returncode == 0, f"SDMetrics' QualityReport failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["diamonds", "slid"])
def test_agrees_with_sdmetrics_quality_report(s, sdmetrics, name):
    real = f"{name}_real"
    overall = []
    spread = tables(s, name)
    for synthetic, theirs in zip(spread, sdmetrics_scores(sdmetrics, s, real, spread), strict=True):
        ours = scores(s, real, synthetic)
        assert abs(ours["shapes"] - theirs["shapes"]) < 0.02, (synthetic, ours, theirs)
        if math.isnan(theirs["pair_trends"]):  # no pair is related enough in the real data
            assert ours["pair_trends"] is None
        else:
            assert abs(ours["pair_trends"] - theirs["pair_trends"]) < 0.02, (
                synthetic,
                ours,
                theirs,
            )
        overall.append(ours["overall"])
    if name == "diamonds":  # the tables spread from about 0.5 to 1
        assert min(overall) < 0.7 and max(overall) > 0.9


@pytest.mark.parametrize("name", ["diamonds", "slid"])
def test_every_pair_agrees_with_sdmetrics_without_thresholds(s, sdmetrics, name):
    """All pairs (NULLs in SLID included), against SDMetrics with its thresholds off."""
    real = f"{name}_real"
    spread = tables(s, name)
    all_theirs = sdmetrics_scores(sdmetrics, s, real, spread, thresholds=False)
    for synthetic, their_scores in zip(spread, all_theirs, strict=True):
        rows = s.sql(f"FROM evaluate('{real}', '{synthetic}')").fetchall()
        ours = json.loads(next(r[3] for r in rows if r[0] == "pair_trends"))["all_pairs"]
        theirs = their_scores["pair_trends"]
        assert abs(ours - theirs) < 0.02, (synthetic, ours, theirs)


def test_dates_booleans_and_decimals_agree_with_sdmetrics(s, sdmetrics):
    def table(name: str, rows: int, a: int, b: int) -> None:
        s.sql(
            f"""CREATE OR REPLACE TABLE {name} AS SELECT
                DATE '2020-01-01' + ((i % {a}) + (i % 3) * 40)::INTEGER AS day,
                TIMESTAMP '2020-01-01' + to_seconds(i * {b} + (i % 5) * 100000) AS moment,
                CASE WHEN i % {b % 7 + 3} = 0 THEN NULL ELSE i % 3 = 0 END AS flag,
                ['a', 'b', 'c'][1 + (i // {b % 5 + 1}) % 3] AS letter,
                ((i % 3) * 2.5 + (i % {a % 13 + 3}))::DECIMAL(6, 2) AS amount
            FROM range({rows}) r(i)"""
        )

    table("dated_real", 3000, 97, 37)
    table("dated_synthetic", 2500, 91, 41)
    ours = scores(s, "dated_real", "dated_synthetic")
    (theirs,) = sdmetrics_scores(sdmetrics, s, "dated_real", ["dated_synthetic"])
    assert ours["shapes"] == pytest.approx(theirs["shapes"], abs=0.02)
    assert ours["pair_trends"] == pytest.approx(theirs["pair_trends"], abs=0.02)
    assert ours["shapes"] < 0.95  # not a trivial agreement


def test_columns_sample_and_python_function(s):
    rows = evaluate(
        s.con.cursor(),
        "diamonds_real",
        "SELECT * FROM diamonds_noise30",
        {"columns": ["carat", "cut", "price"], "sample": 1000, "seed": 3},
    )
    assert {r["columns"] for r in rows if r["metric"] == "column_shape"} == {
        "carat",
        "cut",
        "price",
    }
    assert len([r for r in rows if r["metric"] == "pair_trend"]) == 3
    shapes = next(r for r in rows if r["metric"] == "shapes")
    assert shapes["detail"]["real_rows"] == shapes["detail"]["synthetic_rows"] == 1000
    again = evaluate(
        s.con.cursor(),
        "diamonds_real",
        "SELECT * FROM diamonds_noise30",
        '{"columns": ["carat", "cut", "price"], "sample": 1000, "seed": 3}',
    )
    # seeded samples: the same rows (sums may add up in another order across threads)
    assert [(r["metric"], r["columns"], round(r["value"], 9)) for r in again] == [
        (r["metric"], r["columns"], round(r["value"], 9)) for r in rows
    ]


def test_dates_booleans_and_nulls_against_themselves(s):
    s.sql(
        """CREATE OR REPLACE TABLE kinds AS SELECT
            DATE '2020-01-01' + (i % 97)::INTEGER AS day,
            TIMESTAMP '2020-01-01' + to_seconds(i * 37) AS moment,
            CASE WHEN i % 7 = 0 THEN NULL ELSE i % 3 = 0 END AS flag,
            CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 11)::DOUBLE END AS amount,
            ['a', 'b', 'c'][1 + i % 3] AS letter
        FROM range(2000) r(i)"""
    )
    rows = s.sql("FROM evaluate('kinds', 'kinds')").fetchall()
    values = {(r[0], r[1]): r[2] for r in rows}
    for metric in ("overall", "shapes", "pair_trends", "histogram", "mutual_information"):
        assert values[(metric, "")] == pytest.approx(1.0)
    assert json.loads(next(r[3] for r in rows if r[1] == "day" and r[0] == "column_shape")) == {
        "method": "KSComplement",
        "kind": "datetime",
    }
    null_detail = next(r[3] for r in rows if r[1] == "amount" and r[0] == "null_share_difference")
    assert json.loads(null_detail)["real"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM evaluate('nowhere', 'diamonds_real')", "unknown table or view 'nowhere'"),
        (
            "FROM evaluate('diamonds_real', 'diamonds_holdout', columns => ['carrot'])",
            "unknown column 'carrot'",
        ),
        (
            "FROM evaluate('diamonds_real', 'SELECT carat FROM diamonds_holdout')",
            "synthetic data has no column 'cut'",
        ),
        (
            "FROM evaluate('diamonds_real', 'SELECT * FROM diamonds_holdout WHERE false')",
            "synthetic data has no rows",
        ),
        (
            "FROM evaluate('SELECT * FROM diamonds_real LIMIT 0', 'diamonds_holdout')",
            "real data has no rows",
        ),
        (
            "FROM evaluate('SELECT [1] AS l', 'SELECT [2] AS l', columns => ['l'])",
            "column 'l' has type INTEGER\\[\\], which is not compared",
        ),
        (
            "FROM evaluate('diamonds_real', 'diamonds_holdout', target => 'price')",
            "target needs holdout",
        ),
        (
            "FROM evaluate('diamonds_real', 'diamonds_holdout', sample => 0)",
            "sample must be at least 1",
        ),
    ],
)
def test_refusals_are_one_line(s, sql, message):
    with pytest.raises(SynthError, match=message) as raised:
        s.sql(sql)
    assert "\n" not in str(raised.value)
