"""report(): one self-contained HTML file comparing a synthetic table with the real one.

>>> FROM report('diamonds', 'diamonds_syn', path => 'report.html')
-- path                      | columns | plots | bytes
-- /work/report.html         |      10 |    12 | 612345

Per-column distribution overlays, real vs synthetic association heatmaps, the metric table and,
with a holdout, privacy figures. With ``session_key`` and ``order_by`` the metric table has
evaluate()'s session rows too (sessions.py: profiles, step bands, per-session aggregates) and the
key column is left out (synthetic keys are fresh). The aggregation runs in DuckDB (report_data), the drawing in
matplotlib (report_plots); the file has no external reference (inline SVG and CSS only).
"""

from __future__ import annotations

import html
import os

import duckdb

from .. import options as options_module
from ..errors import SynthError
from ..options import ReportOptions
from ..sources import describe, read_source
from . import report_data, report_html, report_plots
from .relational import database_lists
from .report_metrics import is_privacy, metric_rows

SHAPE_METRICS = ("column_shape", "shape_ks_complement", "shape_tv_complement")
DISTRIBUTION_NOTE = (
    "Numbers and dates: equal-width bins over the range of both tables, as shares of the "
    "non-NULL rows; a long tail is cut at the 0.5th or 99.5th percentile and counted in the edge "
    "bin. Categories: the 20 most frequent, the rest as (other), as shares of all rows."
)
ASSOCIATION_NOTE = (
    "Pearson r for pairs of numeric or date/time columns (dates as epoch seconds); Cramér's V "
    "(0 to 1) for pairs with a categorical column, numbers entering as deciles and NULL as a "
    "category. Same colour scale on both sides."
)


def report(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, options_json: str) -> dict:
    """Write the HTML file; one summary row (path, columns, plots, bytes)."""
    opts = options_module.parse(ReportOptions, "report", options_json)
    database = database_lists(real, synthetic, "report", opts.relations)
    if (opts.session_key is None) != (opts.order_by is None):
        raise SynthError("report(): session metrics need both session_key and order_by")
    if database is not None and opts.session_key is not None:
        raise SynthError("report(): session_key is for one table, not lists of tables")
    if database is not None:  # lists of tables
        from .report_database import database_report

        return database_report(con, *database, opts)
    real_sql = read_source(con, real, what="report(): real")
    synthetic_sql = read_source(con, synthetic, what="report(): synthetic")
    if opts.holdout is not None:
        read_source(con, opts.holdout, what="report(): holdout")
    described = [
        describe(con, sql, f"report(): {what}")
        for what, sql in (("real", real_sql), ("synthetic", synthetic_sql))
    ]
    columns, skipped = report_data.shared_columns(*described, opts.columns)
    if opts.session_key is not None:  # fresh synthetic keys: the key is neither drawn nor scored
        _check_session_columns(described, opts.session_key, opts.order_by)
        columns = [c for c in columns if c.name != opts.session_key]
    if opts.sensitive is not None and opts.holdout is None:
        raise SynthError("report(): sensitive needs holdout => '...' for the attack's baseline")
    if opts.sensitive is not None and opts.sensitive not in {c.name for c in columns}:
        raise SynthError(f"report(): sensitive column '{opts.sensitive}' is not a reported column")
    counts = tuple(
        con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
        for sql in (real_sql, synthetic_sql)
    )
    sessions = None if opts.session_key is None else (opts.session_key, opts.order_by)
    rows, origin = metric_rows(
        con,
        real,
        synthetic,
        opts.holdout,
        (real_sql, synthetic_sql),
        columns,
        opts.sensitive,
        sessions,
    )
    shapes = {r.get("columns"): r.get("value") for r in rows if r.get("metric") in SHAPE_METRICS}
    distributions = [
        _distribution(con, real_sql, synthetic_sql, c, opts.bins, shapes.get(c.name))
        for c in columns
    ]
    heatmaps = [
        _heatmap(con, kind, sql, columns)
        for kind, sql in (("real", real_sql), ("synthetic", synthetic_sql))
    ]
    document = report_html.page(
        f"duck_synth report: {synthetic} vs {real}",
        [
            report_html.header(real, synthetic, counts, opts.holdout, skipped),
            report_html.metrics_section([r for r in rows if not is_privacy(r)], origin),
            report_html.privacy_section([r for r in rows if is_privacy(r)], opts.holdout),
            report_html.section(
                "Distributions: real vs synthetic",
                report_html.note(DISTRIBUTION_NOTE) + report_html.grid(distributions),
            ),
            report_html.section(
                "Associations: real vs synthetic",
                report_html.note(ASSOCIATION_NOTE) + report_html.grid(heatmaps),
            ),
        ],
    )
    path = report_html.write_document(opts.path, document)
    return {
        "path": path,
        "columns": len(columns),
        "plots": len(distributions) + len(heatmaps),
        "bytes": os.path.getsize(path),
    }


def _check_session_columns(described: list, key: str, order_by: str) -> None:
    for what, names in zip(("real", "synthetic"), described, strict=True):
        for name in (key, order_by):
            if name not in {n for n, _ in names}:
                raise SynthError(f"report(): the {what} data has no column '{name}'")


def _distribution(
    con: duckdb.DuckDBPyConnection,
    real_sql: str,
    synthetic_sql: str,
    column: report_data.Column,
    bins: int,
    shape: float | None,
) -> str:
    """One figure per column: a histogram overlay, or side-by-side category bars."""
    if column.kind == "categorical":
        data = report_data.categories(con, real_sql, synthetic_sql, column)
        svg = report_plots.categories_svg(column, data)
    else:
        data = report_data.histogram(con, real_sql, synthetic_sql, column, bins)
        svg = report_plots.histogram_svg(column, data)
    caption = f"<figcaption>shape score {shape:.3f}</figcaption>" if shape is not None else ""
    name = html.escape(column.name, quote=True)
    return f'<figure class="plot" data-column="{name}">{svg}{caption}</figure>'


def _heatmap(
    con: duckdb.DuckDBPyConnection, kind: str, sql: str, columns: list[report_data.Column]
) -> str:
    matrix = report_data.associations(con, sql, columns)
    svg = report_plots.heatmap_svg(kind, [c.name for c in columns], matrix)
    return f'<figure class="plot heatmap" data-kind="{kind}">{svg}</figure>'
