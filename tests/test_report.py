"""report(): one self-contained HTML file, opened in a real headless browser (Debian chromium)."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DIAMONDS_TABLE

import duck_synth
from duck_synth.evaluate import report_data, report_metrics
from duck_synth.evaluate.report import report

COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> duck_synth.Session:
    """A database file: real = 80% of diamonds, holdout = the rest, syn = a small model's rows."""
    path = tmp_path_factory.mktemp("report") / "report.duckdb"
    s = duck_synth.connect(str(path))
    s.sql(DIAMONDS_TABLE)
    s.sql("CREATE TABLE real AS FROM diamonds USING SAMPLE 80% (reservoir, 1)")
    s.sql("CREATE TABLE holdout AS FROM diamonds EXCEPT ALL FROM real")
    s.sql("FROM train('d', 'real', nrows => 3000, epochs => 2, max_time => 600, seed => 1)")
    s.sql("CREATE TABLE syn AS FROM generate('d', target => 3000, seed => 1)")
    yield s
    s.close()


@pytest.fixture(scope="module")
def written(tables, tmp_path_factory) -> tuple[tuple, Path]:
    path = tmp_path_factory.mktemp("html") / "report.html"
    row = tables.sql(
        f"FROM report('real', 'syn', holdout => 'holdout', path => '{path}', sensitive => 'cut')"
    ).fetchone()
    return row, path


def test_report_row_and_self_contained_file(written):
    (path, columns, plots, size), html_path = written
    assert (path, columns, plots) == (str(html_path), 10, 12)
    text = html_path.read_text()
    assert size == html_path.stat().st_size
    # no external reference at all: the only URLs are XML namespace names
    urls = re.findall(r"""(\S*)(https?://[^\s"'<>)]*)""", text)
    assert urls and all(before.startswith("xmlns") for before, _ in urls), set(urls)
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!#|data:)""", text)
    for column in COLUMNS:
        assert f'<figure class="plot" data-column="{column}">' in text
    privacy = text[text.index("<h2>Privacy</h2>") :]
    if importlib.util.find_spec("sklearn"):  # evaluate()'s privacy metrics need it
        assert "dcr_share" in privacy and "exact_copy_rate" in privacy
        assert "membership_auc" in privacy and "attribute_inference_risk" in privacy


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium found: apt-get install -y chromium")
def test_report_renders_in_headless_chromium(written, tmp_path):
    _, html_path = written
    url = html_path.as_uri()
    dom = _browser(["--dump-dom", url], tmp_path / "dom")
    figures = re.findall(r'<figure class="plot( heatmap)?" data-(column|kind)="([^"]+)">', dom)
    assert sorted(name for heat, _, name in figures if not heat) == sorted(COLUMNS)
    assert sorted(name for heat, _, name in figures if heat) == ["real", "synthetic"]
    for chunk in dom.split('<figure class="plot')[1:]:
        assert "<svg" in chunk.split("</figure>")[0]

    png = tmp_path / "report.png"
    _browser([f"--screenshot={png}", "--window-size=1400,3000", url], tmp_path / "shot")
    from PIL import Image  # matplotlib's own dependency

    image = Image.open(io.BytesIO(png.read_bytes())).convert("RGB")
    assert image.size == (1400, 3000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # plots drawn, not a blank or uniform page


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium found: apt-get install -y chromium")
def test_the_console_check_sees_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    with pytest.raises(AssertionError, match="boom"):
        _browser(["--dump-dom", page.as_uri()], tmp_path / "profile")


def _browser(arguments: list[str], profile: Path) -> str:
    """Run headless chromium; its stdout, after checking the page logged no console message."""
    done = subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    return done.stdout


def test_without_evaluate_the_report_scores_shapes_itself(tables, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("not finished")

    monkeypatch.setattr("duck_synth.evaluate.evaluate", broken)
    path = tmp_path / "own.html"
    options = f'{{"path": "{path}", "columns": ["cut", "price"]}}'
    row = report(tables.con.cursor(), "real", "syn", options)
    assert (row["columns"], row["plots"]) == (2, 4)
    text = path.read_text()
    assert "evaluate() failed: not finished" in text
    assert "shape_ks_complement" in text and "shape_tv_complement" in text


def test_own_shape_scores_are_one_on_identical_tables_and_drop_on_shifted(tables):
    con = tables.con.cursor()
    real = "SELECT * FROM real"
    columns, _ = report_data.shared_columns(
        [("price", "INTEGER"), ("cut", "VARCHAR")], [("price", "INTEGER"), ("cut", "VARCHAR")], None
    )
    same = report_metrics.fallback_shape_scores(con, real, real, columns)
    assert [round(r["value"], 6) for r in same] == [1.0, 1.0, 1.0]
    shifted = "SELECT price + 5000 AS price, 'Ideal' AS cut FROM real"
    scores = report_metrics.fallback_shape_scores(con, real, shifted, columns)
    assert all(r["value"] < 0.7 for r in scores)


def test_associations_match_numpy_and_cramers_v(tables):
    con = tables.con.cursor()
    columns, _ = report_data.shared_columns(
        [("carat", "DOUBLE"), ("price", "INTEGER"), ("cut", "ENUM")],
        [("carat", "DOUBLE"), ("price", "INTEGER"), ("cut", "ENUM")],
        None,
    )
    matrix = report_data.associations(con, "SELECT * FROM real", columns)
    expected = con.execute("SELECT corr(carat, price) FROM real").fetchone()[0]
    assert matrix[0][1] == pytest.approx(expected) and matrix[1][0] == matrix[0][1]
    assert 0.0 < matrix[0][2] < 1.0 and matrix[2][1] == matrix[1][2]
    twins = [report_data.Column(name, "ENUM", "categorical") for name in ("cut", "twin")]
    perfect = report_data.associations(con, "SELECT cut, cut AS twin FROM real", twins)
    assert perfect[0][1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("FROM report('nope', 'syn')", r"report\(\): real: unknown table or view 'nope'"),
        ("FROM report('real', 'syn', holdout => 'nope')", r"holdout: unknown table"),
        ("FROM report('real', 'syn', columns => ['nope'])", r"unknown column 'nope'"),
        ("FROM report('real', 'syn', bins => 1)", r"bins must be between 2 and 500"),
        ("FROM report('real', 'syn', sensitive => 'cut')", r"sensitive needs holdout"),
        (
            "FROM report('real', 'syn', holdout => 'holdout', sensitive => 'nope')",
            r"sensitive column 'nope' is not a reported column",
        ),
        ("FROM report('real', 'syn', path => '/nonexistent/r.html')", r"cannot write"),
    ],
)
def test_report_refuses_bad_calls(tables, sql, message):
    with pytest.raises(duck_synth.SynthError, match=message) as raised:
        tables.sql(sql)
    assert "\n" not in str(raised.value)


def test_dates_booleans_nulls_and_nested_columns(tmp_path):
    s = duck_synth.connect(None)
    s.sql(
        """CREATE TABLE t AS SELECT
            DATE '2020-01-01' + (i % 400)::INTEGER AS day,
            TIMESTAMP '2021-03-01 08:00' + to_minutes(i) AS at,
            i % 3 = 0 AS flag,
            CASE WHEN i % 7 = 0 THEN NULL ELSE 'k' || (i % 40) END AS code,
            CASE WHEN i % 5 = 0 THEN NULL ELSE i / 10 END AS amount,
            [i, i] AS pair
        FROM range(2000) r(i)"""
    )
    path = tmp_path / "types.html"
    row = s.sql(f"FROM report('t', 'SELECT * FROM t WHERE flag', path => '{path}')").fetchone()
    assert row[1:3] == (5, 7)
    text = path.read_text()
    assert "not drawn (nested or binary types): pair" in text
    code = report_data.Column("code", "VARCHAR", "categorical")
    bars = report_data.categories(s.con.cursor(), "FROM t", "FROM t WHERE flag", code)
    assert len(bars.labels) == 22 and bars.labels[-2:] == ["(other)", "(NULL)"]
    assert sum(bars.real) == pytest.approx(1.0) and sum(bars.synthetic) == pytest.approx(1.0)
    s.close()
