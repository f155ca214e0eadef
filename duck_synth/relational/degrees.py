"""The number of children per parent row: kept at training as quantiles of the trained
distribution (value-protected), and at generation the drawn counts mapped onto it.

A table model draws each parent row's count of children with its other columns, so the
counts follow the parent's columns (big planes fly more) but their distribution is only as
good as the model's. Mapping them through their place among the drawn counts onto the trained
quantiles keeps both: the order from the model, the distribution (zero share included) from
the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DEGREE_QUANTILES = 201  # a degree distribution is kept as this many quantiles


def degree_quantiles(counts, protection) -> list[float]:
    """The children per parent row as quantiles, the largest ``k`` (value protection's
    threshold) replaced by their mean: no parent's exact count is kept, the children's total
    is (a relation where a few parents hold every child keeps them, as a few more parents)."""
    values = np.sort(np.asarray(counts.fill_null(0).to_numpy(zero_copy_only=False), float))
    k = min(protection.threshold(), len(values))
    values[-k:] = values[-k:].mean()
    return np.quantile(values, np.linspace(0, 1, DEGREE_QUANTILES)).round(6).tolist()


def calibrated(
    rows: pa.Table, degrees: dict[str, list[float]], rng, reference: pa.Table | None
) -> pa.Table:
    """Each count of children mapped onto the trained distribution of that count through its
    place among the ``reference`` rows' counts (the rows themselves for a whole table, an
    unconditional pilot draw for a filtered or seeded one): a parent row keeps its place among
    the others (more seats, more flights), the degrees keep their distribution (the share of
    parents without children included), and a filter's shift (big planes fly more) is kept.
    Without a reference (below a filtered table) the counts are only clipped to the trained
    range."""
    for column, quantiles in degrees.items():
        if column not in rows.column_names or rows.num_rows == 0:
            continue
        index = rows.column_names.index(column)
        drawn = _counts(rows, column)
        if reference is None or reference.num_rows == 0:
            mapped = np.clip(np.rint(drawn), quantiles[0], quantiles[-1])
        else:
            grid = np.linspace(0, 1, len(quantiles))
            mapped = np.rint(
                np.interp(_places(drawn, reference, rows, column, rng), grid, quantiles)
            )
        field = rows.schema.field(index)
        rows = rows.set_column(index, column, pa.array(mapped.astype(np.int64)).cast(field.type))
    return rows


def _places(drawn: np.ndarray, reference: pa.Table, rows: pa.Table, column: str, rng):
    """Each count's place in [0, 1): among the rows themselves their ranks, evenly spaced
    (ties broken at random: the trained shares come out exactly); among a pilot draw's counts
    a randomized place (ties at random)."""
    if reference is rows:
        ranks = np.lexsort((rng.random(len(drawn)), drawn))
        places = np.empty(len(drawn))
        places[ranks] = (np.arange(len(drawn)) + 0.5) / len(drawn)
        return places
    known = np.sort(_counts(reference, column))
    below = np.searchsorted(known, drawn, side="left")
    equal = np.searchsorted(known, drawn, side="right") - below
    return (below + rng.random(len(drawn)) * equal) / len(known)


def _counts(rows: pa.Table, column: str) -> np.ndarray:
    return rows.column(column).fill_null(0).to_numpy(zero_copy_only=False).astype(float)
