"""Privacy of synthetic data: exact copies, distance to closest record (DCR), NNDR, and two
attacks: membership inference and (for a named sensitive column) attribute inference.

Each figure is reported next to its baseline, the same figure for real rows the model never saw
(the holdout), because real data has near neighbours of its own:

- ``exact_copy_rate``: share of synthetic rows identical (NULL-safe, on every evaluated column) to
  some training row, by a SQL semi-join over the whole tables; ``exact_copy_rate_holdout`` is the
  holdout's own rate against train.
- ``dcr_share``: on seeded samples, for each synthetic row, is its nearest training row nearer than
  its nearest row of an equal-size holdout sample? Share of rows strictly nearer to train, ties
  counted half: 0.5 is ideal (train is no closer than unseen data), 1 is a copy of train.
- ``nndr_mean``: distance to the nearest training row over the distance to the second nearest
  (1 when both are equally far), averaged over synthetic rows; ``nndr_mean_holdout`` the same for
  holdout rows. Low values mean a synthetic row sits on one particular training record.
- ``membership_auc``: a distance attack. The attacker holds the synthetic data and a real record
  and guesses "it was trained on" when the record's nearest synthetic row is near. Over the equal
  train and holdout samples, the ROC AUC of that guess (score = minus the distance): 0.5 means the
  synthetic data tells members from non-members no better than a coin, 1 means it gives them away.
- ``attribute_inference`` (with ``sensitive``): the attacker knows every other column of a real
  record and reads the sensitive value off the nearest synthetic row on those columns; the share
  of records guessed right (a category exactly, NULL-safe; a number or date within
  ATTRIBUTE_TOLERANCE of its quantile rank). ``attribute_inference_holdout`` is the same attack
  on records the model never saw, which measures what the population's patterns give away
  anyway; ``attribute_inference_risk`` is the difference, what training on the records added.

Distances are Euclidean on an encoding of mixed columns where every column weighs at most 1:
numeric and date/time values become their quantile rank in the real training sample (in [0, 1],
robust to skew and outliers; NULL gets rank 0.5 plus a NULL indicator); categorical and boolean
values are one-hot over the real sample's top categories, NULL and "other" being categories of
their own, scaled so that two different categories are at distance 1.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from ..errors import SynthError
from ..sources import describe
from .columns import Column, choose_columns, prepare

DEFAULT_SAMPLE = 10_000
TOP_CATEGORIES = 20
MIN_SYNTHETIC_SAMPLE = 1_000
ATTRIBUTE_TOLERANCE = 0.05  # of quantile rank: a guessed number within 5 percentiles is right


def privacy_metrics(
    con: duckdb.DuckDBPyConnection,
    real_sql: str,
    synthetic_sql: str,
    holdout_sql: str,
    columns: list[str] | None,
    sample: int | None,
    seed: int,
    sensitive: str | None = None,
) -> list[dict]:
    """Exact-copy rate, DCR share, NNDR and the attacks on ``synthetic_sql`` against training
    ``real_sql`` (attribute inference only for a ``sensitive`` column).

    >>> privacy_metrics(con, 'SELECT * FROM train', 'SELECT * FROM train', 'SELECT * FROM holdout',
    ...                 None, None, 0)[1]
    {'metric': 'dcr_share', 'columns': '', 'value': 1.0, 'detail': {...}}
    """
    sample = DEFAULT_SAMPLE if sample is None else int(sample)
    if sample < 1:
        raise SynthError(f"evaluate(): sample must be a positive number of rows, not {sample}")
    chosen, _ = choose_columns(con, real_sql, synthetic_sql, columns)
    if sensitive is not None:
        if sensitive not in {c.name for c in chosen}:
            raise SynthError(
                f"evaluate(): sensitive column '{sensitive}' is not an evaluated column"
            )
        if len(chosen) < 2:
            raise SynthError(
                "evaluate(): attribute inference needs columns besides the sensitive one"
            )
    holdout_names = {name for name, _ in describe(con, holdout_sql, what="evaluate(): holdout")}
    for column in chosen:
        if column.name not in holdout_names:
            raise SynthError(f"evaluate(): the holdout data has no column '{column.name}'")
    tables = {
        side: prepare(con, sql, chosen, side, None, seed)
        for side, sql in (
            ("real", real_sql),
            ("synthetic", synthetic_sql),
            ("holdout", holdout_sql),
        )
    }
    try:
        return _metrics(con, tables, chosen, sample, seed, sensitive)
    finally:
        for table in tables.values():
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _metrics(
    con: duckdb.DuckDBPyConnection,
    tables: dict[str, str],
    columns: list[Column],
    sample: int,
    seed: int,
    sensitive: str | None,
) -> list[dict]:
    counts = {
        side: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for side, t in tables.items()
    }
    for side, count in counts.items():
        if count == 0:
            raise SynthError(f"evaluate(): the {side} data is empty (privacy needs rows)")
    copies = exact_copy_rate(con, tables["synthetic"], tables["real"], columns)
    baseline = exact_copy_rate(con, tables["holdout"], tables["real"], columns)
    copy_detail = {
        "synthetic_rate": copies,
        "holdout_rate": baseline,
        "rows": {side: int(count) for side, count in counts.items()},
    }
    # equal-size train and holdout samples, so neither side is nearer just by having more rows
    reference = min(sample, counts["real"], counts["holdout"])
    # the synthetic sample is coordinated with the train sample (see sample_frame)
    coordinated = math.ceil(counts["synthetic"] * reference / counts["real"])
    synthetic_rows = min(sample, counts["synthetic"], max(coordinated, MIN_SYNTHETIC_SAMPLE))
    frames = {
        "real": sample_frame(con, tables["real"], columns, reference, seed),
        "holdout": sample_frame(con, tables["holdout"], columns, reference, seed + 1),
        "synthetic": sample_frame(con, tables["synthetic"], columns, synthetic_rows, seed),
    }
    encoded, slices = encode(frames, columns)
    train_nn = NearestNeighbors(n_neighbors=min(2, reference), algorithm="brute").fit(
        encoded["real"]
    )
    holdout_nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(encoded["holdout"])
    synthetic_train = nearest(train_nn, encoded["real"], encoded["synthetic"])
    synthetic_holdout = nearest(holdout_nn, encoded["holdout"], encoded["synthetic"])[:, 0]
    holdout_train = nearest(train_nn, encoded["real"], encoded["holdout"])
    share, dcr_detail = dcr_share(synthetic_train[:, 0], synthetic_holdout)
    dcr_detail |= {
        "samples": {
            "synthetic": len(encoded["synthetic"]),
            "train": reference,
            "holdout": reference,
        },
        "dcr_synthetic_train": summary(synthetic_train[:, 0]),
        "dcr_holdout_train": summary(holdout_train[:, 0]),
    }
    synthetic_nndr, holdout_nndr = nndr(synthetic_train), nndr(holdout_train)
    nndr_detail = {"synthetic": summary(synthetic_nndr), "holdout": summary(holdout_nndr)}
    rows = [
        row("exact_copy_rate", copies, copy_detail),
        row("exact_copy_rate_holdout", baseline, copy_detail),
        row("dcr_share", share, dcr_detail),
        row("nndr_mean", float(synthetic_nndr.mean()), nndr_detail),
        row("nndr_mean_holdout", float(holdout_nndr.mean()), nndr_detail),
    ]
    auc, attack_detail = membership_auc(encoded)
    rows.append(row("membership_auc", auc, attack_detail))
    if sensitive is not None:
        column = next(c for c in columns if c.name == sensitive)
        rows += attribute_inference(frames, encoded, slices, column)
    return rows


def membership_auc(encoded: dict[str, np.ndarray]) -> tuple[float, dict]:
    """ROC AUC of "member when the nearest synthetic row is near" over train vs holdout rows
    (the attacker's index holds the synthetic sample alone)."""
    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(encoded["synthetic"])
    to_train = nearest(index, encoded["synthetic"], encoded["real"])[:, 0]
    to_holdout = nearest(index, encoded["synthetic"], encoded["holdout"])[:, 0]
    members = np.concatenate([np.ones(len(to_train)), np.zeros(len(to_holdout))])
    scores = -np.concatenate([to_train, to_holdout])
    auc = float(roc_auc_score(members, scores))
    false_positive, true_positive, _ = roc_curve(members, scores)
    return auc, {
        "attack": "distance to the nearest synthetic row",
        "members": len(to_train),
        "non_members": len(to_holdout),
        "advantage": float(np.max(true_positive - false_positive)),
        "tpr_at_fpr_0.01": float(np.interp(0.01, false_positive, true_positive)),
        "median_distance": {
            "members": float(np.median(to_train)),
            "non_members": float(np.median(to_holdout)),
        },
    }


def attribute_inference(
    frames: dict[str, dict[str, np.ndarray]],
    encoded: dict[str, np.ndarray],
    slices: dict[str, slice],
    column: Column,
) -> list[dict]:
    """Accuracy of reading ``column`` off the nearest synthetic row on the other columns, for
    training records and for holdout records, and their difference (the risk)."""
    known = np.ones(encoded["synthetic"].shape[1], dtype=bool)
    known[slices[column.name]] = False
    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(encoded["synthetic"][:, known])
    accuracy = {}
    for side in ("real", "holdout"):
        _, found = index.kneighbors(encoded[side][:, known])
        guessed = found[:, 0]
        if column.continuous:
            truth, guess = encoded[side][:, slices[column.name]], encoded["synthetic"][guessed]
            guess = guess[:, slices[column.name]]
            same_null = truth[:, 1] == guess[:, 1]
            close = np.abs(truth[:, 0] - guess[:, 0]) <= ATTRIBUTE_TOLERANCE
            right = same_null & (close | (truth[:, 1] == 1))
        else:
            truth = _labels(frames[side][column.slot])
            right = truth == _labels(frames["synthetic"][column.slot])[guessed]
        accuracy[side] = float(right.mean())
    risk = accuracy["real"] - accuracy["holdout"]
    detail = {
        "attack": "nearest synthetic row on the other columns",
        "members": accuracy["real"],
        "non_members": accuracy["holdout"],
        "risk": risk,
        "known_columns": [c for c in slices if c != column.name],
    }
    if column.continuous:
        detail["tolerance_quantile_rank"] = ATTRIBUTE_TOLERANCE
    return [
        {**row("attribute_inference", accuracy["real"], detail), "columns": column.name},
        {**row("attribute_inference_holdout", accuracy["holdout"], detail), "columns": column.name},
        {**row("attribute_inference_risk", risk, detail), "columns": column.name},
    ]


def _labels(values: np.ndarray) -> np.ndarray:
    """Values as strings, NULL as a label of its own (so NULL = NULL counts as right)."""
    missing = _missing(values)
    raw = _values(values)
    return np.array(
        ["\x00NULL" if m else str(v) for v, m in zip(raw, missing, strict=True)], dtype=object
    )


def row(metric: str, value: float, detail: dict) -> dict:
    return {"metric": metric, "columns": "", "value": float(value), "detail": detail}


def exact_copy_rate(
    con: duckdb.DuckDBPyConnection, table: str, train: str, columns: list[Column]
) -> float:
    """Share of ``table``'s rows equal, NULL included, to some row of ``train`` (a SQL join)."""
    same = " AND ".join(f"t.{c.slot} IS NOT DISTINCT FROM r.{c.slot}" for c in columns)
    return float(
        con.execute(
            f"SELECT coalesce(avg((EXISTS (SELECT 1 FROM {train} AS r WHERE {same}))::DOUBLE), 0) "
            f"FROM {table} AS t"
        ).fetchone()[0]
    )


def sample_frame(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[Column], rows: int, seed: int
) -> dict[str, np.ndarray]:
    """A seeded sample as numpy columns: the rows with the lowest hash of (seed, content).

    Ranking by content, not position, coordinates the samples drawn with the same seed: a
    synthetic row that copies a training row is in the synthetic sample only when (roughly) its
    original is in the train sample, so subsampling does not hide copies from the DCR share.
    """
    slots = ", ".join(c.slot for c in columns)
    query = f"SELECT {slots} FROM {table} ORDER BY hash({int(seed)}, {slots}) LIMIT {int(rows)}"
    return con.execute(query).fetchnumpy()


def encode(
    frames: dict[str, dict[str, np.ndarray]], columns: list[Column]
) -> tuple[dict[str, np.ndarray], dict[str, slice]]:
    """Every side as a float matrix with the encoding of the module docstring (fit on 'real'),
    and each column's slice of the matrix columns."""
    blocks: dict[str, list[np.ndarray]] = {side: [] for side in frames}
    slices: dict[str, slice] = {}
    width = 0  # matrix columns so far
    for column in columns:
        before = len(blocks["real"])
        real = frames["real"][column.slot]
        if column.continuous:
            present = np.sort(_values(real)[~_missing(real)].astype(float))
            for side, frame in frames.items():
                blocks[side] += _rank_block(frame[column.slot], present)
        else:
            categories = _top_categories(real)
            for side, frame in frames.items():
                blocks[side].append(_one_hot(frame[column.slot], categories))
        added = sum(b.shape[1] if b.ndim == 2 else 1 for b in blocks["real"][before:])
        slices[column.name] = slice(width, width + added)
        width += added
    return {side: np.column_stack(parts) for side, parts in blocks.items()}, slices


def _missing(values: np.ndarray) -> np.ndarray:
    if isinstance(values, np.ma.MaskedArray):
        return np.ma.getmaskarray(values)
    return np.array([v is None for v in values], dtype=bool)


def _values(values: np.ndarray) -> np.ndarray:
    return values.data if isinstance(values, np.ma.MaskedArray) else np.asarray(values)


def _rank_block(values: np.ndarray, real_sorted: np.ndarray) -> list[np.ndarray]:
    """Mid quantile rank among the real values, and a NULL indicator (NULL: rank 0.5)."""
    missing = _missing(values)
    x = np.where(missing, 0.0, _values(values).astype(float))
    if len(real_sorted) == 0:
        rank = np.full(len(x), 0.5)
    else:
        below = np.searchsorted(real_sorted, x, side="left")
        upto = np.searchsorted(real_sorted, x, side="right")
        rank = (below + upto) / (2.0 * len(real_sorted))
    return [np.where(missing, 0.5, rank), missing.astype(float)]


def _top_categories(values: np.ndarray) -> list[str]:
    present = _values(values)[~_missing(values)]
    names, counts = np.unique(present.astype(str), return_counts=True)
    order = np.lexsort((names, -counts))  # most frequent first, ties by name: deterministic
    return [str(names[i]) for i in order[:TOP_CATEGORIES]]


def _one_hot(values: np.ndarray, categories: list[str]) -> np.ndarray:
    """One-hot over the categories, then 'other', then NULL; two categories are 1 apart."""
    missing = _missing(values)
    index = {name: i for i, name in enumerate(categories)}
    other, null = len(categories), len(categories) + 1
    raw = _values(values)
    codes = np.array(
        [null if m else index.get(str(v), other) for v, m in zip(raw, missing, strict=True)],
        dtype=np.int64,
    )
    block = np.zeros((len(codes), len(categories) + 2))
    block[np.arange(len(codes)), codes] = np.sqrt(0.5)
    return block


def nearest(model: NearestNeighbors, reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distances to the nearest reference rows, recomputed exactly for the neighbours found.

    The brute search (chunked, so memory stays bounded) uses the fast dot-product form, which
    leaves tiny rounding on identical rows; recomputing makes a copy exactly 0 and ties exact.
    """
    _, index = model.kneighbors(queries)
    exact = np.linalg.norm(reference[index] - queries[:, None, :], axis=2)
    return np.sort(exact, axis=1)


def dcr_share(to_train: np.ndarray, to_holdout: np.ndarray) -> tuple[float, dict]:
    nearer_train = int((to_train < to_holdout).sum())
    nearer_holdout = int((to_train > to_holdout).sum())
    ties = len(to_train) - nearer_train - nearer_holdout
    share = (nearer_train + 0.5 * ties) / len(to_train)
    return share, {"nearer_train": nearer_train, "nearer_holdout": nearer_holdout, "ties": ties}


def nndr(distances: np.ndarray) -> np.ndarray:
    """Nearest over second-nearest distance; 1 when both are equal (zero included)."""
    if distances.shape[1] < 2:
        return np.ones(len(distances))
    first, second = distances[:, 0], distances[:, 1]
    return np.where(second > 0, first / np.where(second > 0, second, 1.0), 1.0)


def summary(values: np.ndarray) -> dict:
    p5, p25, p50, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return {
        "mean": float(values.mean()),
        "p5": float(p5),
        "p25": float(p25),
        "median": float(p50),
        "p75": float(p75),
        "p95": float(p95),
    }
