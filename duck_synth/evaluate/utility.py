"""Utility of synthetic data: train on synthetic, test on real (TSTR) against train on real (TRTR).

Two histogram gradient-boosting models (scikit-learn's ``HistGradientBoosting*``: NULLs handled
natively, categoricals as ordinal codes with ``categorical_features``) learn ``target`` from the
other evaluated columns, one on the synthetic rows and one on the real training rows; both are
scored on the real holdout. The task is classification for categorical and boolean targets and
for numeric ones with at most 20 distinct values (ROC AUC one-vs-rest, macro-averaged over the
holdout's classes), regression otherwise.

Rows (``columns`` is the target): ``tstr_<m>`` and ``trtr_<m>`` for each metric ``m``
(accuracy, macro_f1, roc_auc; or r2, mae) and ``utility_ratio``, the primary metric's
TSTR / TRTR (macro-F1, or R²; clipped at 0): 1 means the synthetic data trains as good a model as
the real data. For MAE, lower being better, its ``detail.ratio`` is TRTR / TSTR.

Features are read as the other evaluated columns (numeric and date/time as DOUBLE, the rest as
text); categories are coded by the real training data's 250 most frequent, the rest sharing one
"other" code. Each training side is capped at a seeded sample of 100,000 rows. Rows whose target
is NULL are left out.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score

from .. import caller
from ..errors import SynthError
from ..sources import describe
from .columns import Column, choose_columns, prepare

MAX_TRAINING_ROWS = 100_000
MAX_CLASSES_FOR_NUMERIC = 20
TOP_CATEGORIES = 250  # gradient boosting takes at most 255 categories per feature


def utility_metrics(
    con: duckdb.DuckDBPyConnection,
    real_sql: str,
    synthetic_sql: str,
    holdout_sql: str,
    target: str,
    columns: list[str] | None,
    seed: int,
) -> list[dict]:
    """TSTR vs TRTR for predicting ``target``.

    >>> utility_metrics(con, 'FROM train', 'FROM synthetic', 'FROM holdout', 'cut', None, 0)[-1]
    {'metric': 'utility_ratio', 'columns': 'cut', 'value': 0.97, 'detail': {...}}
    """
    real_names = [name for name, _ in describe(con, real_sql, what="evaluate(): real")]
    if target not in real_names:
        raise SynthError(
            f"evaluate(): unknown target column '{target}' (columns: {', '.join(real_names)})"
        )
    requested = None if columns is None else [c for c in columns if c != target] + [target]
    chosen, _ = choose_columns(con, real_sql, synthetic_sql, requested)
    holdout_names = {name for name, _ in describe(con, holdout_sql, what="evaluate(): holdout")}
    for column in chosen:
        if column.name not in holdout_names:
            raise SynthError(f"evaluate(): the holdout data has no column '{column.name}'")
    label = next((c for c in chosen if c.name == target), None)
    if label is None:
        raise SynthError(f"evaluate(): target column '{target}' has a type that is not compared")
    features = [c for c in chosen if c is not label]
    if not features:
        raise SynthError(f"evaluate(): no feature column to predict target '{target}' from")
    sides = (
        ("real", real_sql, MAX_TRAINING_ROWS),
        ("synthetic", synthetic_sql, MAX_TRAINING_ROWS),
        ("holdout", holdout_sql, None),
    )
    frames = {}
    for side, sql, cap in sides:
        table = prepare(con, sql, chosen, side, cap, seed)
        try:
            frames[side] = con.execute(f"SELECT * FROM {table}").df()
        finally:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return _metrics(frames, features, label, seed)


def _metrics(
    frames: dict[str, pd.DataFrame], features: list[Column], label: Column, seed: int
) -> list[dict]:
    classify = (
        not label.continuous or _distinct(frames["real"][label.slot]) <= MAX_CLASSES_FOR_NUMERIC
    )
    for side, frame in frames.items():
        frame = frame[frame[label.slot].notna()]
        if not classify:
            frame = frame[np.isfinite(frame[label.slot].astype(float))]
        if frame.empty:
            raise SynthError(f"evaluate(): the {side} data has no row with target '{label.name}'")
        frames[side] = frame
    if classify and _distinct(frames["real"][label.slot]) < 2:
        raise SynthError(f"evaluate(): target '{label.name}' has a single class in the real data")
    encoded = {side: _features(frame, features, frames["real"]) for side, frame in frames.items()}
    targets = {side: _target(frame[label.slot], classify) for side, frame in frames.items()}
    categorical = np.array([not c.continuous for c in features])
    scores = {}
    for name, side in (("tstr", "synthetic"), ("trtr", "real")):
        caller.check()
        model = _fit(encoded[side], targets[side], categorical, classify, seed)
        score = _classification_scores if classify else _regression_scores
        scores[name] = score(model, encoded["holdout"], targets["holdout"])
    detail = {
        "task": "classification" if classify else "regression",
        "model": "HistGradientBoostingClassifier" if classify else "HistGradientBoostingRegressor",
        "rows": {side: len(frame) for side, frame in frames.items()},
        "features": [c.name for c in features],
    }
    rows = []
    for metric in scores["tstr"]:
        tstr, trtr = scores["tstr"][metric], scores["trtr"][metric]
        ratio = _ratio(trtr, tstr) if metric == "mae" else _ratio(tstr, trtr)
        about = detail | {"tstr": tstr, "trtr": trtr, "ratio": ratio}
        rows.append(_row(f"tstr_{metric}", tstr, label, about))
        rows.append(_row(f"trtr_{metric}", trtr, label, about))
    primary = "macro_f1" if classify else "r2"
    ratio = _ratio(scores["tstr"][primary], scores["trtr"][primary])
    summary = detail | {"primary": primary, "tstr": scores["tstr"], "trtr": scores["trtr"]}
    rows.append(_row("utility_ratio", np.nan if ratio is None else max(ratio, 0.0), label, summary))
    return rows


def _row(metric: str, value: float, label: Column, detail: dict) -> dict:
    return {"metric": metric, "columns": label.name, "value": float(value), "detail": _json(detail)}


def _json(value):
    """The detail with NaN as None, so it stays valid JSON."""
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def _distinct(values: pd.Series) -> int:
    return int(values.dropna().nunique())


def _target(values: pd.Series, classify: bool) -> np.ndarray:
    return values.astype(str).to_numpy() if classify else values.astype(float).to_numpy()


def _features(frame: pd.DataFrame, features: list[Column], real: pd.DataFrame) -> np.ndarray:
    """A float matrix: continuous values (NaN for NULL and infinities), categories as codes."""
    parts = []
    for column in features:
        values = frame[column.slot]
        if column.continuous:
            x = values.astype(float).to_numpy()
            parts.append(np.where(np.isfinite(x), x, np.nan))
            continue
        counts = real[column.slot].dropna().astype(str).value_counts()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        categories = [name for name, _ in ranked[:TOP_CATEGORIES]]
        codes = pd.Categorical(values.astype(str), categories=categories).codes.astype(float)
        codes[codes < 0] = len(categories)  # "other"
        codes[values.isna().to_numpy()] = np.nan
        parts.append(codes)
    return np.column_stack(parts)


def _fit(x: np.ndarray, y: np.ndarray, categorical: np.ndarray, classify: bool, seed: int):
    kind = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    # early stopping on a seeded 10% validation share, whatever the size: bounded time, no overfit
    model = kind(categorical_features=categorical, early_stopping=True, random_state=seed % 2**32)
    if classify and len(np.unique(y)) < 2:
        return _Constant(y[0])  # a synthetic side with one class: it can only predict that class
    # A feature that is NULL in every training row carries nothing, but the binner cannot bin
    # it: a constant stands in, which no split can use either.
    empty = np.isnan(x).all(axis=0)
    if empty.any():
        x = x.copy()
        x[:, empty] = 0.0
    return model.fit(x, y)


class _Constant:
    """A classifier that always predicts one class (certain of it)."""

    def __init__(self, value: str):
        self.classes_ = np.array([value])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.classes_[0], dtype=object)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


def _classification_scores(model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    predicted = model.predict(x).astype(str)
    proba = model.predict_proba(x)
    known = {str(name): i for i, name in enumerate(model.classes_)}
    aucs = []
    for name in np.unique(y):
        positive = y == name
        if positive.all():
            continue
        # a class the model never saw gets probability 0 everywhere (AUC 0.5)
        score = proba[:, known[name]] if name in known else np.zeros(len(y))
        aucs.append(roc_auc_score(positive, score))
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
    }


def _regression_scores(model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    predicted = model.predict(x)
    return {
        "r2": float(r2_score(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
    }
