"""report() of a database (lists of tables): the database's metrics, the children per parent
real vs synthetic for each relation, and the cross-table trends.

>>> FROM report(['planes', 'flights'], ['syn_planes', 'syn_flights'], path => 'db.html')
-- path              | columns | plots | bytes
-- /work/db.html     |      22 |     1 | 81234

Per-column distributions are report()'s of each table (one call per pair of tables).
"""

from __future__ import annotations

import html
import os

import duckdb
import numpy as np

from ..errors import SynthError
from ..options import ReportOptions
from ..relations import Relation, Schema
from . import report_html, report_plots
from .relational import database_metrics, database_sources
from .report_data import Column, Histogram

RELATION_METRICS = (
    "degree_similarity",
    "zero_children_share",
    "referential_integrity",
    "null_key_share",
)
DEGREE_NOTE = (
    "Children per parent row (parents with none included), as shares of the parent rows; "
    "degree similarity is 1 - the KS statistic between the two distributions. Referential "
    "integrity: the share of synthetic child keys (with no NULL) that find a synthetic parent."
)
TRENDS_NOTE = (
    "Pearson r between each numeric column of the parent and its children's count and "
    "per-column means, in the real and in the synthetic database; a pair scores "
    "1 - |r_real - r_synthetic| / 2. Pairs with fewer than 10 parents having both values, or "
    "a constant side, are left out."
)


def database_report(
    con: duckdb.DuckDBPyConnection,
    real_tables: list[str],
    synthetic_tables: list[str],
    opts: ReportOptions,
) -> dict:
    """report() with lists of tables: write the HTML file; one summary row."""
    for name in ("holdout", "columns", "sensitive"):
        if getattr(opts, name) is not None:
            raise SynthError(f"report(): {name} is for one table; a database takes relations")
    schema, synthetic = database_sources(
        con, real_tables, synthetic_tables, opts.relations, "report"
    )
    rows = database_metrics(con, schema, synthetic)
    imitation = Schema(schema.tables, schema.relations, synthetic)
    similarity = {r["columns"]: r["value"] for r in rows if r["metric"] == "degree_similarity"}
    figures = [
        _degree_figure(con, schema, imitation, r, opts.bins, similarity.get(str(r)))
        for r in schema.relations
    ]
    pairs = ", ".join(f"{r} → {s}" for r, s in zip(real_tables, synthetic_tables, strict=True))
    quality = [r for r in rows if r["metric"] in ("database_quality", "table_quality")]
    by_relation = [r for r in rows if r["metric"] in RELATION_METRICS]
    trends = [r for r in rows if r["metric"] == "cross_table_trends"]
    document = report_html.page(
        f"duck_synth report: a database of {len(real_tables)} tables",
        [
            report_html.note(f"real → synthetic: {pairs}"),
            report_html.section("Database", report_html.table(quality)),
            report_html.section(
                "Relations: children per parent, real vs synthetic",
                report_html.note(DEGREE_NOTE)
                + report_html.grid(figures)
                + report_html.table(by_relation),
            ),
            report_html.section(
                "Cross-table trends",
                report_html.note(TRENDS_NOTE) + "".join(_trend_table(r) for r in trends),
            ),
        ],
    )
    path = report_html.write_document(opts.path, document)
    columns = sum(len(r["detail"].get("columns", [])) for r in quality)
    return {"path": path, "columns": columns, "plots": len(figures), "bytes": os.path.getsize(path)}


def degree_histogram(real: dict[int, int], synthetic: dict[int, int], bins: int) -> Histogram:
    """Two degree distributions (degree -> parents) as shares over the same bins: one bin per
    degree when there are at most ``bins`` of them, else ``bins`` equal-width ones."""
    top = max([*real, *synthetic, 0])
    per_degree = top + 1 <= bins
    edges = np.arange(top + 2) - 0.5 if per_degree else np.linspace(0, top + 1, bins + 1)
    shares = []
    for side in (real, synthetic):
        counts, _ = np.histogram(list(side), bins=edges, weights=list(side.values()))
        shares.append((counts / max(sum(side.values()), 1)).tolist())
    return Histogram(float(edges[0]), float(edges[-1]), shares[0], shares[1])


def _degree_figure(
    con, real: Schema, synthetic: Schema, relation: Relation, bins: int, similarity: float | None
) -> str:
    histogram = degree_histogram(
        real.degrees(con, relation), synthetic.degrees(con, relation), bins
    )
    column = Column(
        f"{relation.child} per {relation.parent} row", ", ".join(relation.key), "numeric"
    )
    svg = report_plots.histogram_svg(column, histogram)
    score = "" if similarity is None else f": degree similarity {similarity:.3f}"
    caption = f"<figcaption>{html.escape(str(relation))}{score}</figcaption>"
    name = html.escape(str(relation), quote=True)
    return f'<figure class="plot" data-relation="{name}">{svg}{caption}</figure>'


def _trend_table(row: dict) -> str:
    """One relation's pairs: parent column, children feature, r real, r synthetic, score."""
    value = "" if row["value"] is None else f"{row['value']:.4f}"
    pairs = row["detail"].get("pairs", [])
    head = (
        f"<h3>{html.escape(row['columns'])}: {value}</h3><details><summary>{len(pairs)} pairs"
        "</summary><table><tr><th>parent column</th><th>children</th><th>r real</th>"
        "<th>r synthetic</th><th>score</th></tr>"
    )
    lines = [
        f"<tr><td>{html.escape(p['parent'])}</td><td>{html.escape(p['children'])}</td>"
        + "".join(f'<td class="value">{p[k]:.3f}</td>' for k in ("real", "synthetic", "score"))
        + "</tr>"
        for p in pairs
    ]
    left_out = row["detail"].get("left_out")
    tail = report_html.note(f"{left_out} pairs left out.") if left_out else ""
    return head + "".join(lines) + "</table></details>" + tail
