"""The report's HTML: page, sections and metric tables; inline CSS, no script, no external URL;
and the file it is written to."""

from __future__ import annotations

import html
import json

from .. import access
from ..errors import SynthError

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } .note { color: #555; font-size: 14px; max-width: 70em; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure.plot { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; }
figure.plot svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; text-align: center; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.value { text-align: right; font-variant-numeric: tabular-nums; }
td.detail { color: #555; font-size: 12px; max-width: 60em; }
summary { cursor: pointer; color: #1f77b4; margin: 8px 0; }
.real { color: #1f77b4; font-weight: bold; } .synthetic { color: #ff7f0e; font-weight: bold; }
"""

PRIVACY_NOTE = (
    "On seeded samples: exact-copy rate is the share of synthetic rows equal to a real row (next to "
    "the holdout's own rate); DCR share is the share of synthetic rows nearer to the real rows "
    "than to the equally sized holdout (0.5 is ideal, near 1 means copying); NNDR is the nearest "
    "to second-nearest distance ratio (low values: rows sit on top of single real rows). "
    "Membership AUC: how well closeness to a synthetic row tells training records from holdout "
    "records (0.5: not at all). Attribute inference: the share of a sensitive column's values "
    "read right off the nearest synthetic row, for training and for holdout records; the risk is "
    "their difference."
)


def page(title: str, sections: list[str]) -> str:
    title = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def grid(items: list[str]) -> str:
    return f'<div class="grid">{"".join(items)}</div>'


def header(real: str, synthetic: str, counts: tuple[int, int], holdout: str | None, skipped) -> str:
    parts = [
        f'<span class="real">real</span> {html.escape(real)}: {counts[0]:,} rows',
        f'<span class="synthetic">synthetic</span> {html.escape(synthetic)}: {counts[1]:,} rows',
    ]
    if holdout:
        parts.append(f"holdout {html.escape(holdout)}")
    if skipped:
        parts.append("not drawn (nested or binary types): " + html.escape(", ".join(skipped)))
    return f'<p class="note">{" · ".join(parts)}</p>'


def is_summary(row: dict) -> bool:
    """Overall scores have no column (or '*'); per-column and per-pair rows name theirs."""
    return row.get("columns") in (None, "", "*", [])


def metrics_section(rows: list[dict], origin: str) -> str:
    """The overall scores, then every row behind a disclosure (it can be hundreds of pairs)."""
    summary = [r for r in rows if is_summary(r)]
    details = [r for r in rows if not is_summary(r)]
    body = note(f"From {origin}.") + table(summary)
    if details:
        body += (
            f"<details><summary>All {len(details)} per-column and per-pair rows</summary>"
            f"{table(details)}</details>"
        )
    return section("Metrics", body)


def privacy_section(rows: list[dict], holdout: str | None) -> str:
    if rows:
        return section("Privacy", note(PRIVACY_NOTE) + table(rows))
    if holdout:
        return section("Privacy", note("No privacy figures: evaluate() did not provide them."))
    return section("Privacy", note("Give a holdout (holdout => 'table') for privacy figures."))


def table(rows: list[dict]) -> str:
    head = "<tr><th>metric</th><th>columns</th><th>value</th><th>detail</th></tr>"
    lines = []
    for row in rows:
        columns = row.get("columns")
        if isinstance(columns, list | tuple):
            columns = ", ".join(map(str, columns))
        value = row.get("value")
        value = f"{value:.4f}" if isinstance(value, float) else value
        cells = ["" if c is None else html.escape(str(c)) for c in (row.get("metric"), columns)]
        lines.append(
            f"<tr><td>{cells[0]}</td><td>{cells[1]}</td>"
            f'<td class="value">{html.escape("" if value is None else str(value))}</td>'
            f'<td class="detail">{html.escape(_detail_text(row.get("detail")))}</td></tr>'
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _detail_text(detail) -> str:
    """Details are JSON (text or objects): shown compact, numbers rounded to 4 digits."""
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return detail
    if detail is None or detail == {}:
        return ""
    return json.dumps(_rounded(detail), ensure_ascii=False, default=str)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_document(given: str, document: str) -> str:
    """Write the report where the caller may write (access.check_path); the full path."""
    path = access.check_path(given, "report()", write=True)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(document)
    except OSError as error:
        raise SynthError(f"report(): cannot write '{given}': {error.strerror}") from None
    return path
