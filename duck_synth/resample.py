"""resample(): replace one column's values where a SQL condition holds.

Two ways to draw the new values: from a list (Rockfish's ValuesResample), or from a model,
which draws the column conditioned on the row's other columns so the row stays plausible.
When the condition reads the replaced column itself (``door = 'rear' AND color <> 'black'``),
drawing is repeated until no row satisfies it any more: the condition then works as a rule.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from . import spool, sqltext
from .conditions import CompiledFilter, parse_predicate
from .encoding.base import Restriction
from .encoding.categorical import CategoricalEncoder
from .encoding.numeric import NumericEncoder
from .errors import SynthError
from .generate import load, new_seed
from .options import GenerateOptions, ResampleOptions, parse
from .sources import describe, read_source
from .sqltext import DUCKDB

REDRAWS = 30
MASK = "__duck_synth_replace"


def resample(con: duckdb.DuckDBPyConnection, source: str, column: str, options_json: str) -> str:
    """The source's rows, ``column`` replaced where ``condition`` holds; returns reading SQL.

    >>> FROM resample('cars', 'color', condition => 'door = ''rear'' AND color <> ''black''',
    ...               replace_values => ['black'])
    """
    options = parse(ResampleOptions, "resample", options_json)
    relation = read_source(con, source)
    types = describe(con, relation)
    names = [n for n, _ in types]
    if column not in names:
        raise SynthError(
            f"resample(): unknown column '{column}' (the rows have: {', '.join(names)})"
        )
    if (options.replace_values is None) == (options.model is None):
        raise SynthError("resample(): give either replace_values => [...] or model => 'name'")
    condition = parse_predicate(
        options.condition or "TRUE", what="resample(): condition", con=con
    ).sql(DUCKDB)
    try:
        rows = con.execute(
            f"SELECT *, coalesce(({condition}), false) AS {MASK} FROM ({relation})"
        ).to_arrow_table()
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise SynthError(f"resample(): condition {condition!r}: {first}") from None
    mask = np.asarray(rows.column(MASK).to_numpy(zero_copy_only=False), dtype=bool)
    rows = rows.drop_columns([MASK])
    seed = options.seed if options.seed is not None else new_seed()
    duck_type = dict(types)[column]
    if options.replace_values is not None:
        if not isinstance(options.replace_values, list) or not options.replace_values:
            raise SynthError(
                f"resample(): replace_values must be a non-empty list, got {options.replace_values!r}"
            )
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(options.replace_values), size=int(mask.sum()))
        new = _typed(con, [options.replace_values[i] for i in picked], duck_type, column)
    else:
        reads_column = any(
            c.name == column for c in parse_predicate(condition).find_all(exp.Column)
        )
        new = _by_model(con, rows, mask, column, condition if reads_column else None, options, seed)
    values = _plain(rows.column(column).combine_chunks())
    new = _plain(new).cast(values.type)
    index = np.full(rows.num_rows, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    merged = pa.chunked_array([values, new]).combine_chunks()
    taken = merged.take(pa.array(np.where(mask, len(values) + index, np.arange(rows.num_rows))))
    rows = rows.set_column(names.index(column), column, taken)
    path = spool.new_path("resample")
    pq.write_table(rows, path)
    return spool.select_sql(path, types)


def _plain(values: pa.Array) -> pa.Array:
    """ENUM columns arrive dictionary-encoded; the spool casts them back."""
    return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values


def _typed(con, values: list, duck_type: str, column: str) -> pa.Array:
    """``values`` cast to the column's type by DuckDB (so '2024-01-01' fits a DATE)."""
    try:
        con.register(MASK, pa.table({"v": pa.array(values)}))
        result = con.execute(f"SELECT {sqltext.cast('v', duck_type)} FROM {MASK}").to_arrow_table()
    except (duckdb.Error, pa.ArrowException) as error:
        raise SynthError(
            f"resample(): replace_values do not fit column '{column}' ({duck_type}): "
            f"{str(error).splitlines()[0]}"
        ) from None
    finally:
        con.unregister(MASK)
    return result.column(0).combine_chunks()


def _by_model(con, rows: pa.Table, mask: np.ndarray, column: str, rule, options, seed: int):
    """New values of ``column`` for the masked rows, drawn by the model given the rows' other
    columns. ``rule``: the condition when it reads the column (drawn again while it holds)."""
    loaded = load(con, options.model)
    if not loaded.shape.tabular:
        raise SynthError("resample(): model must be a tabular model, not a session model")
    encoders = {e.name: e for e in loaded.encoders}
    if column not in encoders or encoders[column].n_tokens == 0:
        raise SynthError(f"resample(): model '{options.model}' does not draw column '{column}'")
    given = [n for n in rows.column_names if n in encoders and n != column]
    generate_options = parse(GenerateOptions, "resample", {"temperature": options.temperature})
    todo = rows.filter(pa.array(mask))
    arrow_type = encoders[column].arrow_type()
    out = [None] * todo.num_rows
    pending = np.arange(todo.num_rows)
    for attempt in range(REDRAWS + 2):
        if len(pending) == 0:
            break
        if attempt == REDRAWS + 1:
            raise SynthError(
                f"resample(): {len(pending)} rows still satisfy {rule!r} after drawing '{column}' "
                f"from model '{options.model}' only among values that break it; give "
                "replace_values"
            )
        groups = [(None, pending)]
        if attempt == REDRAWS:  # the rule still holds: draw among the values that break it
            groups = _values_breaking(con, todo.take(pa.array(pending)), column, rule, encoders)
            if groups is None:
                raise SynthError(
                    f"resample(): {len(pending)} rows still satisfy {rule!r} after {REDRAWS} "
                    f"draws of '{column}' by model '{options.model}'; give replace_values"
                )
            groups = [(restriction, pending[local]) for restriction, local in groups]
        for k, (restriction, where) in enumerate(groups):
            compiled = CompiledFilter(restrictions={column: restriction} if restriction else {})
            generator = loaded.shape.sampler(loaded, generate_options, compiled, seed)
            seeds = todo.take(pa.array(where)).select(given)
            drawn = generator.draw(len(where), attempt * 4096 + k, seeds).column(column)
            for i, value in zip(where, drawn.to_pylist(), strict=True):
                out[i] = value
        if rule is None:
            break
        pending = pending[_holds(con, todo.take(pa.array(pending)), column, out, pending, rule)]
    return pa.array(out, arrow_type)


def _holds(con, rows: pa.Table, column: str, out: list, pending: np.ndarray, rule: str):
    """Whether ``rule`` still holds for each of ``rows`` with its new value."""
    new = pa.array([out[i] for i in pending]).cast(rows.schema.field(column).type)
    return _holds_for(con, rows.set_column(rows.column_names.index(column), column, new), rule)


def _holds_for(con, rows: pa.Table, rule: str) -> np.ndarray:
    con.register(MASK, rows)
    try:
        result = con.execute(f"SELECT coalesce(({rule}), false) FROM {MASK}").fetchall()
    finally:
        con.unregister(MASK)
    return np.array([bool(r[0]) for r in result], dtype=bool)


def _values_breaking(con, rows: pa.Table, column: str, rule: str, encoders: dict):
    """[(restriction to the tokens whose values make ``rule`` false, row indexes)] grouped by
    the allowed set; None when some row has no such token. A numeric token (a range) is allowed
    when the rule is false at both its ends."""
    encoder = encoders[column]
    if isinstance(encoder, CategoricalEncoder):
        candidates = [(k + 2, [v]) for k, v in enumerate(encoder.categories)]
    elif type(encoder) is NumericEncoder:
        spans = encoder.token_spans()
        whole = encoder.stats["integer"]
        ends = [(np.ceil(lo), np.floor(hi)) if whole else (lo, hi) for lo, hi in spans]
        candidates = [(t, list(ends[t])) for t in range(1, encoder.n_tokens)]
    else:
        return None
    allowed = np.ones((rows.num_rows, encoder.n_tokens), dtype=bool)
    allowed[:, 0] = False  # never NULL
    field = rows.schema.field(column).type
    for token, values in candidates:
        for value in values:
            trial = rows.set_column(
                rows.column_names.index(column),
                column,
                pa.array([value] * rows.num_rows).cast(field, safe=False),
            )
            allowed[:, token] &= ~_holds_for(con, trial, rule)
    if not isinstance(encoder, NumericEncoder):
        allowed[:, 1] = False  # the rare placeholder
    if not allowed.any(axis=1).all():
        return None
    patterns, group = np.unique(allowed, axis=0, return_inverse=True)
    group = group.reshape(-1)
    return [
        (Restriction(allowed=pattern), np.flatnonzero(group == g))
        for g, pattern in enumerate(patterns)
    ]
