"""Session data: a table of steps, grouped into sessions by a key and ordered within each.

A session is its **metadata** (columns constant within the session: the GROUP BY fields), its
**start** (the first ``order_by`` value) and **length**, and then its **steps**: the other
columns (the measurements) plus the **delta** of ``order_by`` since the previous step. Two tables
carry that to training: one row per session, one row per step; ``assemble`` turns generated
sessions and steps back into rows of the source's shape with fresh session keys.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .encoding import DATETIME_TYPES, Encoder, from_json, is_numeric_type
from .errors import SynthError
from .sqltext import quote_identifier as q

START, LENGTH, DELTA = "__start", "__length", "__delta"
# a session's end (its last order_by), drawn with its start and length: its steps' gaps are
# scaled to end then, so time cannot drift away from it over long sessions (sessions.ended)
END = "__end"
# gaps whose median is fewer grid steps than this keep a beat (a season, a year, a week): they are
# only shrunk to the drawn end; finer-grained gaps (a plane's hours to days) are also stretched
BEAT_STEPS = 4


@dataclass
class SessionLayout:
    key: str
    order_by: str
    order_type: str
    metadata: list[str]
    measurements: list[str]
    columns: list[tuple[str, str]]  # the source's columns in order, with DuckDB types

    def to_json(self) -> dict:
        return asdict(self) | {"columns": [list(c) for c in self.columns]}

    @classmethod
    def from_json(cls, spec: dict) -> SessionLayout:
        return cls(**(spec | {"columns": [tuple(c) for c in spec["columns"]]}))

    @property
    def delta_unit(self) -> str:
        """What a delta counts: days between dates, microseconds between timestamps."""
        if self.order_type == "DATE":
            return "days"
        if self.order_type in DATETIME_TYPES or self.order_type.startswith("TIMESTAMP"):
            return "microseconds"
        return "units"


def layout(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[tuple[str, str]],
    key: str,
    order_by: str | None,
    metadata: list[str] | None,
) -> SessionLayout:
    """Check the session arguments against the data; metadata defaults to every column that is
    constant within each session."""
    names = [c for c, _ in columns]
    types = dict(columns)
    for what, given in (("session_key", key), ("order_by", order_by)):
        if given is not None and given not in names:
            raise SynthError(
                f"train(): {what}: unknown column '{given}' (columns: {', '.join(names)})"
            )
    if order_by is None:
        raise SynthError("train(): a session model needs order_by => '<column>' to order the steps")
    if order_by == key:
        raise SynthError("train(): order_by must be another column than session_key")
    order_type = types[order_by]
    if not (
        is_numeric_type(order_type)
        or order_type in DATETIME_TYPES
        or order_type.startswith("TIMESTAMP")
    ):
        raise SynthError(
            f"train(): order_by column '{order_by}' is {order_type}; it must be a number, date or timestamp"
        )
    others = [c for c in names if c not in (key, order_by)]
    for name in metadata or []:
        if name not in others:
            raise SynthError(
                f"train(): metadata: unknown column '{name}' (columns besides the key and order: "
                f"{', '.join(others)})"
            )
    varying = _varying(con, relation, key, others)
    if metadata is None:
        metadata = [c for c in others if c not in varying]
    for name in metadata:
        if name in varying:
            raise SynthError(
                f"train(): metadata column '{name}' varies within session {key} = {varying[name]!r}; "
                f"metadata must be constant per session"
            )
    measurements = [c for c in others if c not in metadata]
    return SessionLayout(key, order_by, order_type, list(metadata), measurements, list(columns))


def _varying(con, relation: str, key: str, columns: list[str]) -> dict[str, object]:
    """Columns that take more than one value (NULL counts as one) within some session, with one
    such session's key."""
    if not columns:
        return {}
    varies = ", ".join(
        f"count(DISTINCT {q(c)}) + (count(*) > count({q(c)}))::INT > 1 AS {q(c)}" for c in columns
    )
    flags = con.execute(
        f"SELECT {q(key)} AS session, {varies} FROM ({relation}) GROUP BY {q(key)}"
    ).to_arrow_table()
    found = {}
    for c in columns:
        mask = flags.column(c).combine_chunks()
        if pc.any(mask).as_py():
            found[c] = flags.column("session").filter(mask)[0].as_py()
    return found


def _order_number(layout: SessionLayout, column: str) -> str:
    """order_by as a number in delta units."""
    if layout.delta_unit == "days":
        return f"(date_diff('day', DATE '1970-01-01', {column}))"
    if layout.delta_unit == "microseconds":
        return f"epoch_us({column})"
    return f"CAST({column} AS DOUBLE)"


def split_sql(layout: SessionLayout, relation: str, end: bool = False) -> tuple[str, str]:
    """(sessions, steps) queries. Sessions: one row each, in key order, with metadata, start and
    length (and with ``end`` the end). Steps: session number (0-based, the
    sessions' order), step number, measurements and delta (NULL at the first step). Rows whose
    key or order_by is NULL are left out."""
    key, order = q(layout.key), q(layout.order_by)
    numbered = (
        f"SELECT *, dense_rank() OVER (ORDER BY {key}) - 1 AS __session, "
        f"row_number() OVER (PARTITION BY {key} ORDER BY {order}) - 1 AS __step "
        f"FROM ({relation}) WHERE {key} IS NOT NULL AND {order} IS NOT NULL"
    )
    number = _order_number(layout, order)
    metadata = "".join(f", any_value({q(c)}) AS {q(c)}" for c in layout.metadata)
    last = f", max({order}) AS {END}" if end else ""
    sessions = (
        f"SELECT __session{metadata}, min({order}) AS {START}, count(*) AS {LENGTH}{last} "
        f"FROM ({numbered}) GROUP BY __session ORDER BY __session"
    )
    measurements = "".join(f", {q(c)}" for c in layout.measurements)
    steps = (
        f"SELECT __session, __step{measurements}, "
        f"{number} - lag({number}) OVER (PARTITION BY __session ORDER BY __step) AS {DELTA} "
        f"FROM ({numbered}) ORDER BY __session, __step"
    )
    return sessions, steps


def delta_type(layout: SessionLayout) -> str:
    return "DOUBLE" if layout.delta_unit == "units" else "BIGINT"


def assemble(
    layout: SessionLayout,
    sessions: pa.Table,
    steps: pa.Table,
    session_index: np.ndarray,
    grid: float = 0.0,
    latest: float = math.inf,
) -> pa.Table:
    """Rows in the source's column order: key (the session's index: callers renumber it),
    metadata repeated over each session's steps, order_by = start + the running sum of deltas
    (shrunk to end by the session's end where it has one, else by ``latest``, in delta units;
    kept on the deltas' ``grid``)."""
    index = pa.array(session_index)
    start = sessions.column(START).combine_chunks()
    deltas = np.nan_to_num(
        np.asarray(steps.column(DELTA).combine_chunks().cast(pa.float64()).fill_null(0.0)), nan=0.0
    )
    if END in sessions.column_names:
        first = _order_numbers(layout, start)
        span = _order_numbers(layout, sessions.column(END)) - first
        deltas = ended(deltas, session_index, span, latest - first, grid)
    order = _order_values(layout, start, session_index, deltas)
    out = {}
    for name, _ in layout.columns:
        if name == layout.key:
            out[name] = pa.array(session_index, pa.int64())
        elif name == layout.order_by:
            out[name] = order
        elif name in layout.metadata:
            out[name] = sessions.column(name).combine_chunks().take(index)
        else:
            out[name] = steps.column(name).combine_chunks()
    return pa.table(out)


def ended(
    deltas: np.ndarray,
    session_index: np.ndarray,
    span: np.ndarray,
    room: np.ndarray | float = math.inf,
    grid: float = 0.0,
) -> np.ndarray:
    """Each session's gaps scaled to end at its drawn span (end - start): steps drawn one by one
    cannot know how much time is left, so over hundreds of steps their sum drifts either way
    (flights per plane: a third of the planes flew on past the year; a third ended more than a
    tenth early, so December had 5% of the flights instead of 8.5%). Gaps that keep a beat (their
    median under ``BEAT_STEPS`` grid steps: seasons, years) are only shrunk, never stretched:
    stretching would break the beat, and a span drawn too long would pull the steps apart
    (careers of 17 seasons over 74 years). A session with no span (NULL, or an end drawn before
    its start) is shrunk to fit its ``room`` (the latest end learned - its start). The times so
    far are rounded to ``grid`` (the gaps' own: whole hours stay whole hours). The first gap is
    ignored (made 0) as assembling does."""
    first = np.r_[True, session_index[1:] != session_index[:-1]]
    gaps = np.where(first, 0.0, deltas)
    total = np.bincount(session_index, weights=gaps, minlength=len(span))
    room = np.broadcast_to(np.asarray(room, dtype=np.float64), total.shape)
    drawn = np.isfinite(span) & (span >= 0)
    limit = np.where(drawn, span, room)
    scale = np.ones_like(total)
    scaled = (total > 0) & (limit >= 0) & (total > limit)
    if not _keeps_a_beat(gaps, grid):
        scaled |= drawn & (total > 0)
    scale[scaled] = limit[scaled] / total[scaled]
    gaps = gaps * scale[session_index]
    if grid <= 0:
        return gaps
    so_far = np.cumsum(gaps)
    lengths = np.diff(np.r_[np.flatnonzero(first), len(gaps)])
    so_far -= np.repeat(so_far[first], lengths)  # from each session's start
    on_grid = np.round(so_far / grid) * grid
    return np.where(first, 0.0, np.diff(on_grid, prepend=0.0))


def _keeps_a_beat(gaps: np.ndarray, grid: float) -> bool:
    """Whether the drawn gaps are mostly a few grid steps (a panel's beat), not free times."""
    positive = gaps[gaps > 0]
    return grid <= 0 or not len(positive) or np.median(positive) < BEAT_STEPS * grid


def _order_numbers(layout: SessionLayout, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """order_by values as numbers in delta units (NaN for NULL)."""
    values = pa.chunked_array([values]) if isinstance(values, pa.Array) else values
    values = values.combine_chunks()
    if layout.delta_unit == "units":
        numbers = values.cast(pa.float64())
    elif layout.delta_unit == "days":
        numbers = values.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())
    else:
        numbers = values.cast(pa.timestamp("us", tz=values.type.tz)).cast(pa.int64())
        numbers = numbers.cast(pa.float64())
    return np.asarray(numbers.fill_null(np.nan), dtype=np.float64)


def _order_values(
    layout: SessionLayout, start: pa.Array, session_index: np.ndarray, deltas: np.ndarray
) -> pa.Array:
    """Each step's order_by: its session's start plus the deltas so far (the first step's is 0)."""
    first = np.r_[True, session_index[1:] != session_index[:-1]]
    deltas = np.where(first, 0.0, deltas)
    running = np.cumsum(deltas)
    lengths = np.diff(np.r_[np.flatnonzero(first), len(deltas)])
    running -= np.repeat(running[first], lengths)  # restart at each session (first delta is 0)
    if layout.delta_unit == "units":
        base = np.asarray(start.cast(pa.float64()).fill_null(0.0))[session_index]
        return pa.array(base + running)
    unit = pa.int32() if layout.delta_unit == "days" else pa.int64()
    storage = start.cast(
        pa.date32() if unit == pa.int32() else pa.timestamp("us", tz=start.type.tz)
    )
    base = np.asarray(storage.cast(unit).fill_null(0), dtype=np.int64)[session_index]
    values = pa.array(base + np.round(running).astype(np.int64)).cast(unit)
    return values.cast(storage.type)


def column_encoders(columns: list[dict], statistics: dict) -> list[tuple[dict, Encoder | None]]:
    """Each output column with the encoder that makes it; None for a session model's key and
    order (made from a counter and from start plus deltas)."""
    if "sessions" not in statistics:
        encoders = [from_json(spec) for spec in statistics["encoders"]]
        return list(zip(columns, encoders, strict=True))
    by_name = _session_encoders(statistics)
    return [(column, by_name.get(column["name"])) for column in columns]


def _session_encoders(statistics: dict) -> dict[str, Encoder]:
    """A session model's encoders by name: the sessions' (metadata, start, length) and the
    steps' (measurements, delta)."""
    specs = statistics["encoders"] + statistics["sessions"]["step_encoders"]
    return {spec["name"]: from_json(spec) for spec in specs}


def order_summary(statistics: dict) -> dict:
    """What describe_model says of a session model's order column: its start and its deltas."""
    layout = SessionLayout.from_json(statistics["sessions"]["layout"])
    by_name = _session_encoders(statistics)
    return {
        "start": by_name[START].summary(),
        "delta": by_name[DELTA].summary() | {"unit": layout.delta_unit},
    }
