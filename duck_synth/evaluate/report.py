"""report(): one self-contained HTML file comparing a synthetic table with the real one.

>>> FROM report('diamonds', 'diamonds_syn', path => 'report.html')
-- path                      | columns | plots | bytes
-- /work/report.html         |      10 |    12 | 612345

Per-column distribution overlays, real vs synthetic association heatmaps, the metric table and,
with a holdout, privacy figures. The aggregation runs in DuckDB (report_data), the drawing in
matplotlib (report_plots); the file has no external reference (inline SVG and CSS only).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass

import duckdb

from .. import options as options_module
from ..errors import SynthError
from ..sources import describe, read_source
from . import report_data, report_plots
from .report_metrics import is_privacy, metric_rows


@dataclass
class ReportOptions:
    path: str = "report.html"
    holdout: str | None = None
    columns: list[str] | None = None
    bins: int = 30


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } .note { color: #555; font-size: 14px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure.plot { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; }
figure.plot svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; text-align: center; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
.real { color: #1f77b4; font-weight: bold; } .synthetic { color: #ff7f0e; font-weight: bold; }
"""


def report(con: duckdb.DuckDBPyConnection, real: str, synthetic: str, options_json: str) -> dict:
    """Write the HTML file; one summary row (path, columns, plots, bytes)."""
    opts = options_module.parse(ReportOptions, "report", options_json)
    if opts.bins < 2 or opts.bins > 500:
        raise SynthError(f"report(): bins must be between 2 and 500, got {opts.bins}")
    real_sql = read_source(con, real, what="report(): real")
    synthetic_sql = read_source(con, synthetic, what="report(): synthetic")
    if opts.holdout is not None:
        read_source(con, opts.holdout, what="report(): holdout")
    columns, skipped = report_data.shared_columns(
        describe(con, real_sql, "report(): real"),
        describe(con, synthetic_sql, "report(): synthetic"),
        opts.columns,
    )
    sections = [_header(con, real, synthetic, real_sql, synthetic_sql, opts.holdout, skipped)]
    rows, origin = metric_rows(
        con, real, synthetic, opts.holdout, (real_sql, synthetic_sql), columns
    )
    sections.append(_metrics_section(rows, origin, opts.holdout))
    distributions = [_distribution(con, real_sql, synthetic_sql, c, opts.bins) for c in columns]
    sections.append(_section("Distributions", _grid(distributions)))
    heatmaps = _heatmaps(con, real_sql, synthetic_sql, columns)
    sections.append(heatmaps)
    document = _page(f"duck_synth report: {synthetic} vs {real}", "\n".join(sections))
    path = os.path.abspath(opts.path)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(document)
    except OSError as error:
        raise SynthError(f"report(): cannot write '{opts.path}': {error.strerror}") from None
    return {
        "path": path,
        "columns": len(columns),
        "plots": len(distributions) + 2,
        "bytes": os.path.getsize(path),
    }


def _distribution(
    con: duckdb.DuckDBPyConnection, real_sql: str, synthetic_sql: str, column, bins: int
) -> str:
    if column.kind == "categorical":
        svg = report_plots.categories_svg(
            column, report_data.categories(con, real_sql, synthetic_sql, column)
        )
    else:
        svg = report_plots.histogram_svg(
            column, report_data.histogram(con, real_sql, synthetic_sql, column, bins)
        )
    name = html.escape(column.name, quote=True)
    return f'<figure class="plot" data-column="{name}">{svg}</figure>'


def _heatmaps(con, real_sql: str, synthetic_sql: str, columns) -> str:
    names = [c.name for c in columns]
    figures = []
    for kind, sql in (("real", real_sql), ("synthetic", synthetic_sql)):
        svg = report_plots.heatmap_svg(kind, names, report_data.associations(con, sql, columns))
        figures.append(f'<figure class="plot heatmap" data-kind="{kind}">{svg}</figure>')
    note = (
        "Pearson r for pairs of numeric or date/time columns (dates as epoch seconds); "
        "Cramér's V (0 to 1) for pairs with a categorical column, numbers entering as deciles "
        "and NULL as a category. Same colour scale on both sides."
    )
    return _section(
        "Associations: real vs synthetic", f'<p class="note">{note}</p>' + _grid(figures)
    )


def _header(con, real, synthetic, real_sql, synthetic_sql, holdout, skipped) -> str:
    def count(sql: str) -> int:
        return con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]

    parts = [
        f'<span class="real">real</span> {html.escape(real)}: {count(real_sql):,} rows',
        f'<span class="synthetic">synthetic</span> {html.escape(synthetic)}: '
        f"{count(synthetic_sql):,} rows",
    ]
    if holdout:
        parts.append(f"holdout {html.escape(holdout)}")
    if skipped:
        parts.append("not drawn (nested or binary types): " + html.escape(", ".join(skipped)))
    return f'<p class="note">{" · ".join(parts)}</p>'


def _metrics_section(rows: list[dict], origin: str, holdout: str | None) -> str:
    privacy = [r for r in rows if is_privacy(r)]
    fidelity = [r for r in rows if not is_privacy(r)]
    body = f'<p class="note">From {html.escape(origin)}.</p>' + _table(fidelity)
    if privacy:
        privacy_html = _table(privacy)
    elif holdout:
        privacy_html = '<p class="note">No privacy figures: evaluate() did not provide them.</p>'
    else:
        privacy_html = '<p class="note">Give a holdout (holdout =&gt; ...) for privacy figures.</p>'
    return _section("Metrics", body) + _section("Privacy", privacy_html)


def _table(rows: list[dict]) -> str:
    head = "<tr><th>metric</th><th>columns</th><th>value</th><th>detail</th></tr>"
    lines = []
    for row in rows:
        columns = row.get("columns")
        if isinstance(columns, list | tuple):
            columns = ", ".join(map(str, columns))
        value = row.get("value")
        value = f"{value:.4f}" if isinstance(value, float) else ("" if value is None else value)
        detail = row.get("detail")
        if isinstance(detail, dict | list):
            detail = json.dumps(detail, default=str)
        cells = [row.get("metric"), columns, value, detail]
        text = ["" if c is None else html.escape(str(c)) for c in cells]
        lines.append(
            f"<tr><td>{text[0]}</td><td>{text[1]}</td>"
            f'<td class="value">{text[2]}</td><td>{text[3]}</td></tr>'
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _grid(items: list[str]) -> str:
    return f'<div class="grid">{"".join(items)}</div>'


def _page(title: str, body: str) -> str:
    title = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
