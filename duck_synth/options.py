"""Arguments of the SQL table functions, validated once at the edge.

Each table macro passes its named arguments as one JSON object; ``parse`` checks names and types
and fills defaults, so the rest of the code works with plain, typed dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import SynthError
from .privacy import STATISTICS_SHARE

METHODS = ("autoregressive",)


@dataclass
class TrainOptions:
    method: str = "auto"
    columns: list[str] | None = None
    exclude: list[str] | None = None
    encoding: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    epochs: int | None = None  # None: the method's default
    max_time: float = 300.0
    batch_size: int | None = None
    validation_share: float = 0.1
    nrows: int | None = None
    strip_strings: bool = False
    empty_strings_as_null: bool = False
    rare_threshold: int = 5
    device: str | None = None
    # session data (see sessions.py): one session per key, its steps ordered by order_by
    session_key: str | None = None
    order_by: str | None = None
    metadata: list[str] | None = None
    # row rules every generation of the model keeps (SQL predicates over its columns)
    constraints: list[str] | None = None
    # differential privacy (privacy.py): one budget for the statistics and the network
    epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    dp_statistics_share: float = STATISTICS_SHARE
    # privbayes (models/privbayes.py), Hazy's parameters
    n_parents: int = 3
    n_bins: int = 20
    max_cat: int = 50
    bin_strategy: str = "quantile"
    sample_parents: int | None = None


@dataclass
class GenerateOptions:
    target: int | None = None
    magnitude: float | None = None
    filter: str | None = None
    conditions: str | None = None  # JSON conditions (conditions.json_predicate), ANDed to filter
    seed: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 100_000
    seed_rows: str | None = None
    # controls (controls.py): rules, shares, imputation, fairness, unique values, string lengths
    constraints: list[str] | None = None
    equalize: str | None = None
    rebalance: dict | str | None = None
    impute: list[str] | None = None
    fairness: dict | str | None = None
    drop_unique_violation: bool = False
    unique_columns: list[str] | None = None
    limit_strings: bool = False
    at_most: int | None = None  # a cap on the target, whatever it is (a query's LIMIT)


TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}


def _check(function: str, name: str, value: Any, annotation: str) -> Any:
    base = annotation.replace(" | None", "")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SynthError(f"{function}(): {name} must be an integer, got {json.dumps(value)}")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SynthError(f"{function}(): {name} must be a number, got {json.dumps(value)}")
        value = float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise SynthError(f"{function}(): {name} must be a string, got {json.dumps(value)}")
    elif base == "bool":
        if not isinstance(value, bool):
            raise SynthError(f"{function}(): {name} must be a boolean, got {json.dumps(value)}")
    elif base == "list[str]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            what = "SQL predicates" if name == "constraints" else "column names"
            raise SynthError(
                f"{function}(): {name} must be a list of {what}, got {json.dumps(value)}"
            )
    elif base == "dict[str, str]" and (
        not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
    ):
        raise SynthError(
            f"{function}(): {name} must be a struct of column => kind, e.g. {{'id': 'key'}}, "
            f"got {json.dumps(value)}"
        )
    return value


def parse(cls, function: str, options: str | dict | None):
    """Typed options from the macro's JSON (NULL means: use the default)."""
    given = json.loads(options) if isinstance(options, str) else dict(options or {})
    known = {f.name: f for f in fields(cls)}
    values = {}
    for name, value in given.items():
        if name not in known:
            raise SynthError(f"{function}(): unknown argument '{name}' (known: {', '.join(known)})")
        if value is not None:
            values[name] = _check(function, name, value, known[name].type)
    for name, f in known.items():
        if name not in values:
            values[name] = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    return cls(**values)


def argument_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]
