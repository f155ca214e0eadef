"""What the ``duck-synth`` command prints: result tables (boxed, CSV or JSON) and errors as
one line on stderr."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from duck_synth import SynthError

DEFAULT_MAX_ROWS = 40
EXIT_ERROR = 1


@dataclass
class Output:
    mode: str = "table"
    max_rows: int = DEFAULT_MAX_ROWS  # 0: all rows
    stream: object = None  # defaults to sys.stdout at print time

    @property
    def out(self):
        return self.stream or sys.stdout

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def table(self, table: pa.Table) -> None:
        if table.num_columns == 0 or (
            table.num_rows == 0 and table.column_names in (["Count"], ["Success"])
        ):
            return  # a statement with nothing to show (CREATE, SET, DROP, ...)
        if self.mode == "csv":
            write_csv(table, self.out)
        elif self.mode == "json":
            write_json(table, self.out)
        else:
            self.boxed(table)
        self.out.flush()

    def boxed(self, table: pa.Table) -> None:
        terminal = self.out.isatty() if hasattr(self.out, "isatty") else False
        width = shutil.get_terminal_size().columns if terminal else 1_000_000
        max_rows = self.max_rows if self.max_rows > 0 else max(table.num_rows, 1)
        mode = (
            "columns" if terminal and table.num_rows == 1 and _rows_width(table) > width else "rows"
        )
        relation = _renderer().from_arrow(table)
        saved = sys.stdout
        sys.stdout = self.out  # DuckDB's renderer prints through sys.stdout
        try:
            relation.show(max_width=width, max_rows=max_rows, max_col_width=width, render_mode=mode)
        finally:
            sys.stdout = saved


_render_connection: duckdb.DuckDBPyConnection | None = None


def _renderer() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB used only to draw result tables."""
    global _render_connection
    if _render_connection is None:
        _render_connection = duckdb.connect(":memory:")
    return _render_connection


def _rows_width(table: pa.Table) -> int:
    """About how wide a one-row table is when drawn with one column per field."""
    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    return sum(max(len(name), len(str(row.get(name))), 8) + 3 for name in table.column_names) + 1


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(table: pa.Table):
    """Row tuples (columns may share a name, so no dicts)."""
    return zip(*(column.to_pylist() for column in table.columns), strict=True)


def write_csv(table: pa.Table, out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in _rows(table):
        writer.writerow(["" if v is None else _csv_value(v) for v in row])


def _csv_value(value) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), default=str)
    return str(value)


def write_json(table: pa.Table, out) -> None:
    """A JSON array of objects, one row a line."""
    names = table.column_names
    lines = [
        json.dumps(_plain(dict(zip(names, row, strict=True))), default=str) for row in _rows(table)
    ]
    out.write("[" + ",\n ".join(lines) + "]\n")


# -- running statements --------------------------------------------------------------------
def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line."""
    if isinstance(error, KeyboardInterrupt | duckdb.InterruptException) or (
        type(error) is RuntimeError and str(error) == "Query interrupted"  # DuckDB saw the SIGINT
    ):
        return "interrupted"
    text = str(error).strip()
    if isinstance(error, duckdb.Error | SynthError):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[0] if lines else type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def report(error: BaseException) -> None:
    print(f"Error: {one_line(error)}", file=sys.stderr, flush=True)
    if os.environ.get("DUCK_SYNTH_DEBUG") and not isinstance(error, SynthError | KeyboardInterrupt):
        import traceback

        traceback.print_exception(error, file=sys.stderr)
