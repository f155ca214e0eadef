"""What a session offers, the same for a local one (connection.py) and a remote one (remote.py):
the materialised ``Result`` of a statement and the Python shortcuts over the SQL."""

from __future__ import annotations

import datetime
import decimal
import re
import uuid

import pyarrow as pa

from . import sqltext
from .errors import SynthError


class Result:
    """A materialised statement result."""

    def __init__(self, table: pa.Table | None):
        self._table = table if table is not None else pa.table({})

    @property
    def columns(self) -> list[str]:
        return self._table.column_names

    def arrow(self) -> pa.Table:
        return self._table

    def df(self):
        return self._table.to_pandas()

    def pl(self):
        """The rows as a polars DataFrame (polars must be installed: it is optional)."""
        try:
            import polars
        except ImportError:
            raise SynthError("Result.pl() needs polars: pip install polars") from None
        return polars.from_arrow(self._table)

    def fetchall(self) -> list[tuple]:
        columns = [c.to_pylist() for c in self._table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return repr(self._table.to_pandas()) if self._table.num_columns else "Result(no rows)"

    def _repr_html_(self) -> str:
        """A notebook shows the rows as a table (the first 50, as pandas shows a frame)."""
        if not self._table.num_columns:
            return "<p>Result(no rows)</p>"
        return self._table.slice(0, 50).to_pandas()._repr_html_()


def _named_arguments(options: dict) -> str:
    """``, name => literal`` for each keyword argument (names must be identifiers)."""
    for name in options:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SynthError(f"not an argument name: {name!r}")
    return "".join(f", {k} => {sqltext.sql_literal(v)}" for k, v in options.items())


def _arrow(frame) -> pa.Table:
    """A pandas or polars DataFrame, or an Arrow table, as an Arrow table."""
    if isinstance(frame, pa.Table):
        return frame
    if hasattr(frame, "to_arrow"):  # polars
        return frame.to_arrow()
    return pa.Table.from_pandas(frame, preserve_index=False)


def _plain(value):
    """A value a SQL literal can carry: dates and times as ISO text, decimals as numbers."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


class Conveniences:
    """Python shortcuts over the SQL, the same for a local and a remote session."""

    def sql(self, query: str) -> Result:
        raise NotImplementedError

    def train(self, name: str, source: str, **options) -> dict:
        args = _named_arguments(options)
        result = self.sql(
            f"FROM train({sqltext.sql_literal(name)}, {sqltext.sql_literal(source)}{args})"
        )
        return dict(zip(result.columns, result.fetchone(), strict=True))

    def generate(self, model: str, **options) -> Result:
        args = _named_arguments(options)
        return self.sql(f"FROM generate({sqltext.sql_literal(model)}{args})")

    def infer(self, pipeline: str, input, **options) -> Result:
        """A deployed pipeline's outputs for ``input``: a query or table name, a row (dict), a
        list of rows, or a DataFrame / Arrow table (registered where the session is local,
        else sent inline as rows)."""
        call = f"FROM infer({sqltext.sql_literal(pipeline)}"
        if not (hasattr(input, "to_pylist") or hasattr(input, "to_dict")):
            return self.sql(f"{call}{_named_arguments({'input': input, **options})})")
        name = f"duck_synth_infer_{uuid.uuid4().hex}"
        try:
            self.register(name, input)
        except SynthError:  # a remote session: the rows travel in the statement
            rows = [{k: _plain(v) for k, v in row.items()} for row in _arrow(input).to_pylist()]
            return self.sql(f"{call}{_named_arguments({'input': rows, **options})})")
        try:
            return self.sql(f"{call}{_named_arguments({'input': name, **options})})")
        finally:
            self.unregister(name)

    def models(self) -> Result:
        return self.sql("FROM models()")

    def unregister(self, name: str) -> None:
        raise SynthError("unregister() is for a local session")

    def register(self, name: str, data) -> None:
        raise SynthError(
            "register() names a DataFrame in this process: it is for a local session "
            "(a server never reads its clients' Python objects, nor they its own)"
        )

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
