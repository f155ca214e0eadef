"""Plots as inline SVG text, drawn with matplotlib's Figure and SVG canvas.

No pyplot: no GUI backend is touched and no global figure state is kept. Text is drawn as paths, so the SVG needs no font; element ids get a per-plot prefix so that
many plots can live in one HTML document.
"""

from __future__ import annotations

import io
import itertools
import re
from datetime import UTC, datetime

from .report_data import Categories, Column, Histogram

REAL_COLOUR = "#1f77b4"
SYNTHETIC_COLOUR = "#ff7f0e"
_plot_ids = itertools.count()
_SVG_ID = re.compile(r'(\bid="|url\(#|href="#)')


def svg_text(figure) -> str:
    """The figure as an <svg> element: no XML prolog, no metadata, unique ids."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "duck_synth", "svg.fonttype": "path"}):
        figure.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    prefix = f"p{next(_plot_ids)}-"
    return _SVG_ID.sub(lambda m: m.group(1) + prefix, text)


def _figure(width: float = 4.6, height: float = 3.0):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.add_subplot()


def _legend(axes, null_share: dict[str, float] | None = None) -> None:
    labels = ["real", "synthetic"]
    if null_share and any(null_share.values()):
        labels = [f"{s} (NULL {null_share[s]:.1%})" for s in labels]
    axes.legend(labels, fontsize=8, frameon=False)


def histogram_svg(column: Column, histogram: Histogram) -> str:
    """Real bars filled, synthetic as an outline over the same bins."""
    figure, axes = _figure()
    bins = len(histogram.real)
    width = (histogram.high - histogram.low) / bins or 1.0
    edges = [histogram.low + i * width for i in range(bins + 1)]
    axes.stairs(histogram.real, edges, fill=True, color=REAL_COLOUR, alpha=0.45)
    axes.stairs(histogram.synthetic, edges, color=SYNTHETIC_COLOUR, linewidth=1.8)
    if column.kind == "temporal":
        axes.xaxis.set_major_formatter(_epoch_formatter(histogram.high - histogram.low))
        axes.tick_params(axis="x", labelrotation=30)
    axes.set_title(column.label, fontsize=10)
    axes.set_ylabel("share of rows", fontsize=8)
    axes.tick_params(labelsize=8)
    _legend(axes, histogram.null_share)
    return svg_text(figure)


def _epoch_formatter(span: float):
    from matplotlib.ticker import FuncFormatter

    pattern = "%H:%M" if span < 86_400 else "%m-%d %H:%M" if span < 30 * 86_400 else "%Y-%m-%d"
    return FuncFormatter(lambda x, _: datetime.fromtimestamp(x, UTC).strftime(pattern))


def categories_svg(column: Column, categories: Categories) -> str:
    """Side-by-side bars per category, in the ENUM's order or by frequency."""
    figure, axes = _figure(width=max(4.6, 0.32 * len(categories.labels) + 1.5))
    positions = range(len(categories.labels))
    axes.bar([p - 0.2 for p in positions], categories.real, 0.4, color=REAL_COLOUR)
    axes.bar([p + 0.2 for p in positions], categories.synthetic, 0.4, color=SYNTHETIC_COLOUR)
    labels = [label if len(label) <= 18 else label[:17] + "…" for label in categories.labels]
    axes.set_xticks(list(positions), labels, rotation=45 if len(labels) > 5 else 0, ha="right")
    axes.set_title(column.label, fontsize=10)
    axes.set_ylabel("share of rows", fontsize=8)
    axes.tick_params(labelsize=8)
    _legend(axes)
    return svg_text(figure)


def heatmap_svg(title: str, names: list[str], matrix: list[list[float | None]]) -> str:
    """One association matrix on a fixed −1..1 scale, so the two heatmaps compare by colour."""
    import numpy as np

    k = len(names)
    size = min(max(4.0, 0.45 * k + 2.0), 12.0)
    figure, axes = _figure(size + 1.0, size)
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    image = axes.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    axes.set_xticks(range(k), names, rotation=90, fontsize=8)
    axes.set_yticks(range(k), names, fontsize=8)
    if k <= 15:
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                colour = "white" if abs(value) > 0.6 else "black"
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    axes.set_title(title, fontsize=11)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return svg_text(figure)
