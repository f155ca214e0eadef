"""Categorical columns: VARCHAR, ENUM and BOOLEAN.

Tokens: 0 NULL, 1 rare, 2.. the protected categories (seen in at least k rows). Rare values are
never emitted verbatim: a VARCHAR column emits ``'_RARE_'`` for them, other types never sample
the rare token.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import NULL_TOKEN, Encoder, Protection, Restriction, pooled_share

RARE_TOKEN = 1
RARE_VALUE = "_RARE_"


class CategoricalEncoder(Encoder):
    kind = "categorical"

    @classmethod
    def fit(cls, name, duck_type, values, protection: Protection) -> CategoricalEncoder:
        values = values.cast(cls(name, duck_type, {}).arrow_type())  # e.g. an integer code column
        n = len(values)
        counts = pc.value_counts(values.drop_null()) if n else pa.array([])
        pairs = sorted(
            ((c["values"].as_py(), c["counts"].as_py()) for c in counts),
            key=lambda p: (-p[1], str(p[0])),
        )
        if protection.budget is not None:
            return cls(name, duck_type, private_statistics(pairs, n, values.null_count, protection))
        k = protection.threshold()
        kept = [(v, c) for v, c in pairs if c >= k][: protection.max_categories]
        stats = {
            "categories": [v for v, _ in kept],
            "counts": [c for _, c in kept],
            "null_share": values.null_count / n if n else 0.0,
            "rare_share": (sum(c for _, c in pairs) - sum(c for _, c in kept)) / n if n else 0.0,
            "cardinality": len(kept),
        }
        return cls(name, duck_type, stats)

    def extended(self, values, protection: Protection, rows_before: int):
        """Categories the new rows have at least k times join the vocabulary (after the
        known ones); counts and shares cover both trainings."""
        fresh = type(self).fit(self.name, self.duck_type, values, protection)
        seen = dict(zip(fresh.categories, fresh.stats["counts"], strict=True))
        added = [v for v in fresh.categories if v not in set(self.categories)]
        rows = len(values)
        stats = self.stats | {
            "categories": self.categories + added,
            "counts": [
                c + seen.get(v, 0)
                for v, c in zip(self.categories, self.stats["counts"], strict=True)
            ]
            + [seen[v] for v in added],
            "cardinality": len(self.categories) + len(added),
        }
        for share in ("null_share", "rare_share"):
            stats[share] = pooled_share(self.stats[share], rows_before, fresh.stats[share], rows)
        return type(self)(self.name, self.duck_type, stats), {"added": added} if added else {}

    def token_origin(self, before: Encoder) -> np.ndarray:
        added = self.n_tokens - before.n_tokens  # after the known categories, once rare
        return np.concatenate([np.arange(before.n_tokens), np.full(added, RARE_TOKEN)])

    @property
    def categories(self) -> list:
        return self.stats["categories"]

    @property
    def n_tokens(self) -> int:
        return 2 + len(self.categories)

    def _emits_rare_placeholder(self) -> bool:
        return self.duck_type == "VARCHAR"

    def sampling_mask(self) -> np.ndarray | None:
        mask = super().sampling_mask()
        if self._emits_rare_placeholder() and self.stats["rare_share"] > 0:
            return mask
        mask = np.ones(self.n_tokens, dtype=bool) if mask is None else mask
        mask[RARE_TOKEN] = False
        return mask

    def _value_set(self) -> pa.Array:
        return pa.array(self.categories, type=self.arrow_type())

    def encode(self, values: pa.Array) -> np.ndarray:
        values = values.cast(self.arrow_type()) if values.type != self.arrow_type() else values
        index = pc.index_in(values, value_set=self._value_set())
        tokens = np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64) + 2
        tokens[tokens == 1] = RARE_TOKEN
        tokens[np.asarray(values.is_null().to_numpy(zero_copy_only=False))] = NULL_TOKEN
        return tokens

    def decode(self, tokens, rng, restriction: Restriction | None = None) -> pa.Array:
        if restriction is not None and restriction.has_fixed:
            return pa.array([restriction.fixed] * len(tokens), type=self.arrow_type())
        rare = RARE_VALUE if self._emits_rare_placeholder() else None
        lookup = pa.array([None, rare, *self.categories], type=self.arrow_type())
        return lookup.take(pa.array(tokens))

    def arrow_type(self) -> pa.DataType:
        return pa.bool_() if self.duck_type == "BOOLEAN" else pa.string()

    def _coerce(self, value):
        if self.duck_type == "BOOLEAN" and isinstance(value, str):
            return {"true": True, "false": False}.get(value.lower(), value)
        return value

    def restrict(self, op: str, value) -> Restriction | None:
        if (nulls := self.null_restriction(op)) is not None:
            return nulls
        if op in ("ne", "not_in"):  # every category but these (never NULL: NULL <> x is NULL)
            unwanted = {self._coerce(v) for v in (value if op == "not_in" else [value])}
            allowed = np.ones(self.n_tokens, dtype=bool)
            allowed[NULL_TOKEN] = False
            for i, c in enumerate(self.categories):
                allowed[i + 2] = c not in unwanted
            if RARE_VALUE in unwanted or not self._emits_rare_placeholder():
                allowed[RARE_TOKEN] = False
            return Restriction(allowed=allowed)
        allowed = np.zeros(self.n_tokens, dtype=bool)
        if op not in ("eq", "in"):
            return None
        wanted = [self._coerce(v) for v in (value if op == "in" else [value])]
        index = {c: i + 2 for i, c in enumerate(self.categories)}
        for v in wanted:
            if v in index:
                allowed[index[v]] = True
            elif self._emits_rare_placeholder() and v == RARE_VALUE:
                allowed[RARE_TOKEN] = True
        if op == "eq" and allowed.any():
            return Restriction(allowed=allowed, fixed=wanted[0], has_fixed=True)
        return Restriction(allowed=allowed)

    def summary(self) -> dict:
        return {
            "null_share": self.stats["null_share"],
            "cardinality": self.stats["cardinality"],
            "rare_share": self.stats["rare_share"],
        }


def private_statistics(pairs: list[tuple], n: int, nulls: int, protection: Protection) -> dict:
    """The categories' statistics through DP: one noisy histogram (NULL a cell of its own); a
    category is kept when its noisy count clears both k and the threshold that makes naming it
    (epsilon, delta)-DP, so a value held by a few rows is almost never released."""
    budget = protection.budget
    noisy = np.array([c for _, c in pairs], dtype=np.float64) + budget.laplace(len(pairs))
    noisy_nulls = max(nulls + float(budget.laplace(1)[0]), 0.0)
    cut = max(protection.rare_threshold, budget.threshold())
    order = np.argsort(-noisy, kind="stable")
    kept = [i for i in order if noisy[i] >= cut][: protection.max_categories]
    kept_total = float(noisy[kept].sum()) if kept else 0.0
    rare_total = float(np.clip(noisy, 0, None).sum()) - float(np.clip(noisy[kept], 0, None).sum())
    total = max(noisy_nulls + kept_total + rare_total, 1.0)
    return {
        "categories": [pairs[i][0] for i in kept],
        "counts": [int(round(noisy[i])) for i in kept],
        "null_share": noisy_nulls / total,
        "rare_share": rare_total / total,
        "cardinality": len(kept),
    }
