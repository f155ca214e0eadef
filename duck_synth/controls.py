"""Generation controls beyond filters: shares of a column's values (equalize, rebalance),
imputation, fairness, unique values and string lengths.

Each control acts inside generation, never by overwriting values after the fact: shares and
fairness fix the conditioned column's tokens before the model draws the rest of the row, so the
other columns follow them; imputation removes the NULL token from sampling. Only uniqueness and
string limits act on decoded rows (they drop or cut what the model drew).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .encoding import NULL_TOKEN, Encoder
from .encoding.base import Restriction
from .encoding.categorical import CategoricalEncoder
from .encoding.numeric import NumericEncoder
from .errors import SynthError


def _value_tokens(encoder: Encoder, function: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(values, their tokens, training counts) of a column whose every value has a token."""
    if isinstance(encoder, CategoricalEncoder):
        values = list(encoder.categories)
        return values, np.arange(2, 2 + len(values)), np.asarray(encoder.stats["counts"], float)
    if type(encoder) is NumericEncoder and encoder.n_bins == 0 and len(encoder.points):
        values = [int(v) if encoder.stats["integer"] else float(v) for v in encoder.points]
        counts = np.asarray(encoder.stats.get("point_counts") or [1.0] * len(values), float)
        return values, np.arange(1, 1 + len(values)), counts
    raise SynthError(
        f"generate(): {function} needs a column of categories or of a few distinct numbers; "
        f"'{encoder.name}' is {encoder.kind} with value ranges"
    )


def _lookup(encoders: list[Encoder], modelled: list[int], name: str, function: str):
    """(position among the modelled columns, encoder) of column ``name``."""
    names = [encoders[i].name for i in modelled]
    lower = {n.lower(): n for n in names}
    found = lower.get(str(name).lower())
    if found is None:
        raise SynthError(
            f"generate(): {function}: unknown column '{name}' (the model draws: {', '.join(names)})"
        )
    pos = names.index(found)
    return pos, encoders[modelled[pos]]


@dataclass
class Quotas:
    """Equalize / rebalance: how many units of each value of one column the run returns.

    Each batch fixes the column's tokens with probabilities following the quotas still open
    (divided by each value's acceptance so far, so filters do not skew the shares); the model
    draws the rest of each row given the value. Units beyond a value's quota are dropped.
    """

    column: str
    position: int
    values: list
    tokens: np.ndarray
    wanted: np.ndarray
    kept: np.ndarray = field(init=False)
    drawn: np.ndarray = field(init=False)

    def __post_init__(self):
        self.kept = np.zeros(len(self.values), dtype=np.int64)
        self.drawn = np.zeros(len(self.values), dtype=np.int64)

    @classmethod
    def build(
        cls,
        encoders: list[Encoder],
        modelled: list[int],
        equalize: str | None,
        rebalance: dict | str | None,
        restrictions: dict[str, Restriction],
        target: int,
    ) -> Quotas | None:
        if equalize is None and rebalance is None:
            return None
        if equalize is not None and rebalance is not None:
            raise SynthError("generate(): give either equalize or rebalance, not both")
        if equalize is not None:
            pos, encoder = _lookup(encoders, modelled, equalize, "equalize")
            values, tokens, _ = _value_tokens(encoder, "equalize")
            shares = np.ones(len(values))
        else:
            column, probabilities = _rebalance_spec(rebalance)
            pos, encoder = _lookup(encoders, modelled, column, "rebalance")
            values, tokens, counts = _value_tokens(encoder, "rebalance")
            shares = _rebalanced(encoder, values, counts, probabilities)
        restriction = restrictions.get(encoder.name)
        if restriction is not None and restriction.allowed is not None:
            # a filter on the same column: share among what it allows
            shares = shares * restriction.allowed[tokens]
            if not shares.any():
                raise SynthError(f"generate(): the filter allows no value of '{encoder.name}'")
        keep = shares > 0
        values = [v for v, k in zip(values, keep, strict=True) if k]
        tokens, shares = tokens[keep], shares[keep] / shares[keep].sum()
        return cls(encoder.name, pos, values, tokens, _apportion(shares, target))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Tokens for ``n`` new units."""
        return rng.permutation(np.repeat(self.tokens, self.advance(n)))

    def advance(self, n: int) -> np.ndarray:
        """Each value's count among ``n`` new units, counted as drawn (a batch drawn by
        another process moves the quotas here as its draw did there)."""
        counts = self.counts(self.kept, self.drawn, n)
        self.drawn += counts
        return counts

    def counts(self, kept: np.ndarray, drawn: np.ndarray, n: int) -> np.ndarray:
        """How many of ``n`` new units each value gets: the quotas still open, divided by each
        value's acceptance so far (exact counts: no value overshoots)."""
        open_ = np.maximum(self.wanted - kept, 0).astype(float)
        if not open_.any():
            open_ = self.wanted.astype(float)
        acceptance = (kept + 1) / (drawn + 1)
        weights = open_ / np.maximum(acceptance, 1e-3)
        return _apportion(weights / weights.sum(), n)

    def admit(self, table: pa.Table, unit_of_row: np.ndarray) -> pa.Table:
        """The units (rows, or a session's rows) whose value's quota is still open."""
        if table.num_rows == 0:
            return table
        column = table.column(self.column).combine_chunks()
        if pa.types.is_dictionary(column.type):  # an ENUM column, typed as the output
            column = column.dictionary_decode()
        index = pc.index_in(column, value_set=pa.array(self.values, type=column.type))
        value = np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        first = np.r_[True, unit_of_row[1:] != unit_of_row[:-1]]
        unit_value = value[first]
        rank = np.zeros(len(unit_value), dtype=np.int64)
        for v in np.unique(unit_value[unit_value >= 0]):
            rank[unit_value == v] = np.arange((unit_value == v).sum())
        open_ = np.maximum(self.wanted - self.kept, 0)
        admitted = (unit_value >= 0) & (rank < open_[np.maximum(unit_value, 0)])
        np.add.at(self.kept, unit_value[admitted], 1)
        return table.filter(pa.array(admitted[np.cumsum(first) - 1]))


def _spec(value: dict | str, name: str):
    """A control given as a struct (JSON object) or as JSON text."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        raise SynthError(f"generate(): {name} is not JSON: {value}") from None


def _rebalance_spec(rebalance: dict | str) -> tuple[str, dict]:
    spec = _spec(rebalance, "rebalance")
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("column"), str)
        or not isinstance(spec.get("probabilities"), dict)
        or set(spec) - {"column", "probabilities"}
    ):
        raise SynthError(
            "generate(): rebalance must be {'column': 'name', 'probabilities': {'value': share, "
            f"...}}, got {json.dumps(spec)}"
        )
    return spec["column"], spec["probabilities"]


def _rebalanced(encoder: Encoder, values: list, counts: np.ndarray, asked: dict) -> np.ndarray:
    """Shares: the asked ones, the rest of the mass to the other values by training counts."""
    index = {str(v): i for i, v in enumerate(values)}
    shares = np.full(len(values), np.nan)
    for value, share in asked.items():
        if str(value) not in index:
            raise SynthError(
                f"generate(): rebalance: '{encoder.name}' has no value {value!r} the model can "
                f"generate (it has: {', '.join(map(str, values[:20]))})"
            )
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
            raise SynthError(f"generate(): rebalance: share of {value!r} must be in [0, 1]")
        shares[index[str(value)]] = share
    given = float(np.nansum(shares))
    if given > 1 + 1e-9:
        raise SynthError(f"generate(): rebalance: the shares add up to {given:g}, more than 1")
    rest = np.isnan(shares)
    if rest.any() and counts[rest].sum() > 0:
        shares[rest] = (1 - given) * counts[rest] / counts[rest].sum()
    shares[np.isnan(shares)] = 0.0
    return shares


def _apportion(shares: np.ndarray, total: int) -> np.ndarray:
    """Whole counts summing to ``total`` in the given shares (largest remainders)."""
    exact = shares * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    return counts


def imputation_masks(
    encoders: list[Encoder], modelled: list[int], columns: list[str], known: list[str]
) -> dict[int, np.ndarray]:
    """Per modelled position, the tokens left when NULL may not be drawn. ``known`` lists every
    column of the model (some may be drawn by another network)."""
    names = {encoders[i].name.lower(): pos for pos, i in enumerate(modelled)}
    lower = {k.lower() for k in known}
    masks = {}
    for column in columns:
        if column.lower() not in lower:
            raise SynthError(
                f"generate(): impute: unknown column '{column}' (the model has: {', '.join(known)})"
            )
        pos = names.get(column.lower())
        if pos is None:
            continue
        encoder = encoders[modelled[pos]]
        mask = encoder.sampling_mask()
        mask = np.ones(encoder.n_tokens, dtype=bool) if mask is None else mask.copy()
        mask[NULL_TOKEN] = False
        masks[pos] = mask
    return masks


@dataclass
class Fairness:
    """Statistical parity: the target column's values independent of the sensitive columns'.

    One unconditional draw gives the sensitive columns' values (their joint distribution) and,
    from a random permutation of its rows, the target's (its marginal); a second draw fixes both
    and lets the model fill in the rest of each row.
    """

    target: int
    sensitive: list[int]

    @classmethod
    def build(cls, encoders, modelled, spec: dict | str | None) -> Fairness | None:
        if spec is None:
            return None
        spec = _spec(spec, "fairness")
        sensitive = spec.get("sensitive_columns") if isinstance(spec, dict) else None
        if (
            not isinstance(spec.get("target_column"), str)
            or not isinstance(sensitive, list)
            or not sensitive
            or set(spec) - {"target_column", "sensitive_columns"}
        ):
            raise SynthError(
                "generate(): fairness must be {'target_column': 'name', 'sensitive_columns': "
                f"['name', ...]}}, got {json.dumps(spec)}"
            )
        target, encoder = _lookup(encoders, modelled, spec["target_column"], "fairness")
        if not isinstance(encoder, CategoricalEncoder):
            raise SynthError(
                f"generate(): fairness: target column '{encoder.name}' must be categorical"
            )
        positions = []
        for name in sensitive:
            pos, encoder = _lookup(encoders, modelled, name, "fairness")
            if not isinstance(encoder, CategoricalEncoder):
                raise SynthError(
                    f"generate(): fairness: sensitive column '{encoder.name}' must be categorical"
                )
            if pos == target:
                raise SynthError("generate(): fairness: the target cannot also be sensitive")
            positions.append(pos)
        return cls(target, positions)

    def fixed(self, tokens: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
        """Given values for the second draw, from the first draw's tokens."""
        fixed = {pos: tokens[:, pos] for pos in self.sensitive}
        fixed[self.target] = tokens[rng.permutation(len(tokens)), self.target]
        return fixed


class UniqueValues:
    """drop_unique_violation: rows repeating a value of a unique column are dropped (values are
    remembered across the batches of one run)."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.seen: dict[str, set] = {c: set() for c in columns}

    def admit(self, table: pa.Table) -> pa.Table:
        if not self.columns or table.num_rows == 0:
            return table
        keep = np.ones(table.num_rows, dtype=bool)
        rows = zip(*(table.column(c).to_pylist() for c in self.columns), strict=True)
        for i, values in enumerate(rows):
            pairs = [(c, v) for c, v in zip(self.columns, values, strict=True) if v is not None]
            if any(v in self.seen[c] for c, v in pairs):
                keep[i] = False
                continue
            for c, v in pairs:
                self.seen[c].add(v)
        return table.filter(pa.array(keep))


def limit_strings(table: pa.Table, max_lengths: dict[str, int]) -> pa.Table:
    """Strings cut to the longest length seen in training."""
    for name, length in max_lengths.items():
        if name in table.column_names and pa.types.is_string(table.schema.field(name).type):
            i = table.column_names.index(name)
            cut = pc.utf8_slice_codeunits(table.column(name), 0, length)
            table = table.set_column(i, name, cut)
    return table
