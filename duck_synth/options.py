"""Named arguments of the SQL functions, validated once at the edge.

Each table macro passes its named arguments as one JSON object; ``parse`` checks names, types
and bounds and fills defaults, so the rest of the code works with plain, typed dataclasses.
The dataclasses are also where sql/macros.sql gets each function's named arguments from
(duck_synth/surface/).
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import SynthError
from .privacy import STATISTICS_SHARE


@dataclass(frozen=True)
class Bounds:
    """Where a number may lie: ``low``/``high`` (open or closed), or one of ``choices``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    says: str | None = None  # the wording of the refusal, when the bounds' own is not clear
    finite: bool = False
    show_value: bool = True  # end the refusal with ", got <value>"

    def holds(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.finite and not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return bool(above and below)  # NaN compares false: refused

    def wording(self) -> str:
        if self.says:
            return self.says
        if self.choices:
            return "must be " + " or ".join(repr(c) for c in self.choices)
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            if self.open_low:
                return "must be positive" if self.low == 0 else f"must be more than {low}"
            return "must be zero or more" if self.low == 0 else f"must be at least {low}"
        if not self.open_low and not self.open_high:
            return f"must be between {low} and {high}"
        return f"must be in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def bounded(default: Any = None, **bounds: Any) -> Any:
    """A dataclass field with its bounds, checked by ``parse``."""
    return field(default=default, metadata={"bounds": Bounds(**bounds)})


AT_LEAST_1 = {"low": 1}
POSITIVE = {"low": 0, "open_low": True}
SHARE = {"low": 0, "high": 1, "open_low": True, "open_high": True}


@dataclass
class TrainOptions:
    method: str = "auto"
    columns: list[str] | None = None
    exclude: list[str] | None = None
    encoding: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    epochs: int | None = bounded(None, **AT_LEAST_1)  # None: the method's default
    # a fit with no time can never finish an epoch
    max_time: float = bounded(
        300.0, **POSITIVE, says="must be more than 0 seconds", show_value=False
    )
    batch_size: int | None = bounded(None, **AT_LEAST_1)
    validation_share: float = bounded(0.1, low=0, high=1, open_high=True)
    nrows: int | None = bounded(None, **AT_LEAST_1)
    strip_strings: bool = False
    empty_strings_as_null: bool = False
    rare_threshold: int = bounded(5, **AT_LEAST_1)
    device: str | None = None
    threads: int | None = bounded(None, low=1)  # None: the cores free when training starts
    # session data (see sessions.py): one session per key, its steps ordered by order_by
    session_key: str | None = None
    order_by: str | None = None
    metadata: list[str] | None = None
    # row rules every generation of the model keeps (SQL predicates over its columns)
    constraints: list[str] | None = None
    # differential privacy (privacy.py): one budget for the statistics and the network
    epsilon: float | None = bounded(None, **POSITIVE, finite=True, says="must be a positive number")
    delta: float = bounded(1e-5, **SHARE)
    max_grad_norm: float = bounded(1.0, **POSITIVE)
    noise_multiplier: float | None = bounded(None, **POSITIVE)
    dp_statistics_share: float = bounded(STATISTICS_SHARE, **SHARE)
    # privbayes (models/privbayes.py), Hazy's parameters
    n_parents: int = bounded(3, **AT_LEAST_1)
    n_bins: int = bounded(20, **AT_LEAST_1)
    max_cat: int = bounded(50, **AT_LEAST_1)
    bin_strategy: str = bounded("quantile", choices=("quantile", "uniform"))
    sample_parents: int | None = bounded(None, **AT_LEAST_1)
    # a database (a list of tables, duck_synth/relational/): its foreign keys when not declared,
    # and whether child rows whose parent is missing are kept (with a NULL key) or dropped
    relations: list[dict] | None = None
    keep_orphans: bool = False
    # checkpoints (checkpoints.py): saved at an epoch's end every checkpoint_every seconds (0:
    # every epoch); an interrupted run is continued by resume => true (the model's latest
    # checkpoint) or resume_run => its run_id
    checkpoint_every: float = bounded(60.0, low=0)
    resume: bool = False
    resume_run: int | None = bounded(None, **AT_LEAST_1)
    # continued training (continued.py): a stored version's encoders and weights, learning on
    # the new rows
    from_model: str | None = None
    # where the networks train (distributed/training.py): 'local', or 'ray' (data-parallel over
    # ``workers`` Ray workers; autoregressive only)
    engine: str = bounded("local", choices=("local", "ray"))
    workers: int | None = bounded(None, **AT_LEAST_1)


@dataclass
class GenerateOptions:
    target: int | None = bounded(None, low=0)
    magnitude: float | None = bounded(None, **POSITIVE)
    filter: str | None = None
    # JSON conditions (conditions.json_predicate), ANDed to filter; given as JSON or text
    conditions: str | None = field(default=None, metadata={"as_text": True})
    seed: int | None = None
    temperature: float = bounded(1.0, **POSITIVE)
    top_p: float = bounded(1.0, low=0, high=1, open_low=True)
    batch_size: int = bounded(100_000, **AT_LEAST_1)
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
    at_most: int | None = bounded(None, low=0)  # a cap on the target, whatever it is (LIMIT)
    # a database model: the one table to return, its parents generated but not returned
    table_name: str | None = None
    # a database: the root tables' rows, times this (None: 1.0, and absent from generate_into's
    # stored arguments, which a resumed run must match)
    scale: float | None = bounded(None, **POSITIVE)


@dataclass
class GenerateIntoOptions(GenerateOptions):
    """generate_into()'s: generate()'s, and where the batches are drawn and written
    (distributed/generation.py)."""

    engine: str = bounded("local", choices=("local", "ray"))
    workers: int | None = bounded(None, **AT_LEAST_1)  # Ray tasks in flight (None: the CPUs)
    path: str | None = None  # a folder: the rows as Parquet parts there, not in a table


@dataclass
class GenerateTablesOptions:
    scale: float = bounded(1.0, **POSITIVE)  # the root tables' rows, times this
    seed: int | None = None
    prefix: str = "syn_"
    filters: dict[str, str] | None = None  # table => SQL predicate; children follow parents
    seed_rows: dict[str, str] | None = None  # root table => its rows (keys kept) to generate for
    replace: bool = False  # replace tables of these names that exist
    temperature: float = bounded(1.0, **POSITIVE)
    batch_size: int = bounded(100_000, **AT_LEAST_1)


@dataclass
class ResampleOptions:
    condition: str | None = None  # rows to replace (all rows when NULL)
    replace_values: list | None = None
    model: str | None = None
    seed: int | None = None
    temperature: float = bounded(1.0, **POSITIVE)


@dataclass
class EvaluateOptions:
    holdout: str | None = None
    target: str | None = None
    columns: list[str] | None = None
    sample: int | None = bounded(None, **AT_LEAST_1)
    seed: int = 0
    session_key: str | None = None
    order_by: str | None = None
    sensitive: str | None = None  # attribute-inference attack on this column (needs holdout)
    # a database (lists of tables): [{child, key, parent, parent_key}], else REFERENCES
    relations: list[dict] | None = None


@dataclass
class ReportOptions:
    path: str = "report.html"
    holdout: str | None = None
    columns: list[str] | None = None
    bins: int = bounded(30, low=2, high=500)
    sensitive: str | None = None  # attribute-inference attack on this column (with a holdout)
    relations: list[dict] | None = None  # a database's (lists of tables), else REFERENCES
    session_key: str | None = None  # with order_by: evaluate()'s session metrics in the table
    order_by: str | None = None


@dataclass
class RecommendOptions:
    session_key: str | None = None


@dataclass
class WorkflowOptions:
    parameters: dict | str | None = None  # {'n': 1000}: the workflow's arguments and defaults


@dataclass
class DropModelOptions:
    version: int | None = None  # None: every version


@dataclass
class DropCheckpointsOptions:
    model: str | None = None  # None: every model's


@dataclass
class ImportModelOptions:
    name: str | None = None  # None: the name in the file


@dataclass
class RegisterModelOptions:
    inputs: list[str] | None = None  # the columns the program takes, in its order
    outputs: list[str] | None = None  # the names of the values it returns, in its order


@dataclass
class SubsetOptions:
    fraction: float | None = bounded(None, low=0, high=1, open_low=True)  # of the root tables' rows
    filter: dict | None = None  # {'table': 'SQL predicate'}: the rows that table keeps
    prefix: str = "sub_"  # the tables written: prefix || table
    seed: int = 0  # which rows a fraction keeps
    relations: list[dict] | None = None  # as train()'s; None: the declared foreign keys
    replace: bool = False  # overwrite the tables written, if they exist


@dataclass
class PipelineOptions:
    steps: list | None = None  # [{'generate': 'm'}, {'sql': '...'}, ...] (pipelines/steps.py)
    split: dict | None = None  # {'random': {'a': 2, 'b': 1}, 'hash_key': ..} | key | shadow


@dataclass
class DeployOptions:
    keep_days: int = bounded(30, low=1)  # inference log rows older than this are removed
    keep_rows: int = bounded(1_000_000, low=1)  # log rows kept per pipeline (the newest)
    rows_per_call: int = bounded(1_000, low=0)  # input and output rows logged per call


@dataclass
class InferOptions:
    input: str | list | dict | None = None  # 'query' | 'table' | [{'a': 1}, ..] (rows)
    timeout: float = bounded(15.0, low=0, open_low=True)  # seconds before the call is stopped


@dataclass
class LogsOptions:
    start: str | None = None  # TIMESTAMP (UTC): calls from then on
    until: str | None = None  # TIMESTAMP (UTC): calls before then ("end" => is the same)
    max_rows: int = bounded(100, low=1)  # the newest log rows, oldest first ("limit" =>)
    failures_only: bool = False  # failed calls and calls with check failures


@dataclass
class LoggedRowsOptions:
    arm: str | None = None  # one arm's rows (pipeline@version); None: every arm's
    side: str = bounded("out", choices=("in", "out"))  # the logged input or output rows
    start: str | None = None  # TIMESTAMP (UTC): calls from then on
    until: str | None = None  # TIMESTAMP (UTC): calls before then
    max_rows: int = bounded(1_000, low=1)  # of the newest log rows (calls' arms)


EXAMPLES = {  # of a struct argument, for its error
    "encoding": "{'id': 'key'}",
    "filters": "{'planes': 'seats > 100'}",
    "seed_rows": "{'planes': 'SELECT * FROM my_planes'}",
}


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
            f"{function}(): {name} must be a struct of names to strings, e.g. "
            f"{EXAMPLES.get(name, EXAMPLES['encoding'])}, got {json.dumps(value)}"
        )
    return value


def _check_bounds(function: str, name: str, value: Any, bounds: Bounds | None) -> None:
    if bounds is None or bounds.holds(value):
        return
    got = f", got {value!r}" if bounds.show_value else ""
    raise SynthError(f"{function}(): {name} {bounds.wording()}{got}")


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
            _check_bounds(function, name, values[name], known[name].metadata.get("bounds"))
    for name, f in known.items():
        if name not in values:
            values[name] = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    return cls(**values)
