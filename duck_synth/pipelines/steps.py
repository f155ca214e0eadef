"""What a pipeline is made of, checked when it is saved: steps, or a split over other pipelines.

A step is one SQL object with one kind key:

    {'generate': 'model'}                      rows drawn given each input row (seed rows)
    {'generate': 'model', 'target': 100}       100 rows per call, the input ignored
    {'score': 'user_model'}                    the user model's outputs added to each row
    {'sql': 'SELECT *, a * 2 AS b FROM input'} a query over the rows so far, named input
    {'validation': 'name', 'check': 'price > 0' [, 'alert': 0.05]}  flags output rows

A pipeline runs read-only whoever calls it (``running_as_pipeline``): its SQL is checked as a
read-only query when it is saved and runs as one, so a step never writes, attaches or reaches a
file, even one planted in the catalog; the caller's row limit and time-out still hold.
Model names are pinned to the version current when the step is saved (every change of a
pipeline is a new version, and a version always does the same).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from dataclasses import asdict, dataclass

import duckdb
import pyarrow as pa

from .. import caller, catalog, sqltext
from ..errors import SynthError

_inside = threading.local()  # the pipelines running on this thread (a step may not call infer)
INPUT = "input"  # the name a SQL step reads the rows so far by
ROW = "__input_row"  # each row's place among the call's input rows (runner.py)


@dataclass(frozen=True)
class Generate:
    generate: str  # model@version
    target: int | None = None
    seed: int | None = None
    filter: str | None = None


@dataclass(frozen=True)
class Score:
    score: str  # user model@version


@dataclass(frozen=True)
class Transform:
    sql: str


@dataclass(frozen=True)
class Validation:
    validation: str  # its name, as check_failures lists it
    check: str  # a predicate a good output row satisfies (NULL passes, as in a CHECK)
    alert: float | None = None  # a call's share of failed rows above which it is an alert


Step = Generate | Score | Transform | Validation
KINDS: dict[str, type] = {
    "generate": Generate,
    "score": Score,
    "sql": Transform,
    "validation": Validation,
}


@dataclass(frozen=True)
class RandomSplit:
    random: dict[str, float]  # arm (pipeline@version) -> weight
    hash_key: str | None = None  # a column whose value picks the arm, the same every call


@dataclass(frozen=True)
class KeySplit:
    key: str  # a column whose value names the arm
    arms: dict[str, str]  # value -> arm
    default: str | None = None  # the arm of other values (None: such rows are refused)


@dataclass(frozen=True)
class Shadow:
    champion: str  # its output is returned
    challengers: list[str]  # run on the same input and logged


Split = RandomSplit | KeySplit | Shadow


def parse_step(value: object, where: str) -> Step:
    """The step ``value`` spells (a JSON object; DuckDB's struct unification adds NULL keys,
    which are dropped)."""
    if not isinstance(value, dict):
        raise SynthError(
            f"{where}: a step is an object like {{'sql': 'SELECT ...'}}, got {value!r}"
        )
    given = {k: v for k, v in value.items() if v is not None}
    kinds = [k for k in given if k in KINDS]
    if len(kinds) != 1:
        raise SynthError(
            f"{where}: a step has exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})"
        )
    cls = KINDS[kinds[0]]
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(given) - known)
    if unknown:
        raise SynthError(
            f"{where}: a {kinds[0]} step takes {', '.join(sorted(known))}, not {unknown[0]!r}"
        )
    step = cls(**given)
    _check_types(step, where)
    return step


def _check_types(step: Step, where: str) -> None:
    for name, value in asdict(step).items():
        if value is None:
            continue
        wanted = {"target": int, "seed": int, "alert": (int, float)}.get(name, str)
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise SynthError(f"{where}: '{name}' must be {_kind_name(wanted)}, got {value!r}")
    if isinstance(step, Generate) and step.target is not None and step.target < 1:
        raise SynthError(f"{where}: 'target' must be at least 1, got {step.target}")
    alert = step.alert if isinstance(step, Validation) else None
    if alert is not None and not (math.isfinite(alert) and 0 <= alert <= 1):
        raise SynthError(f"{where}: 'alert' is a share of rows in [0, 1], got {step.alert!r}")


def _kind_name(wanted) -> str:
    return {int: "a whole number", str: "a string"}.get(wanted, "a number")


def checked_step(con: duckdb.DuckDBPyConnection, value: object, where: str) -> Step:
    """The step ``value`` spells, its names pinned to their versions and its SQL checked as
    a pipeline may run it."""
    step = parse_step(value, where)
    with running_as_pipeline(con, pa.table({ROW: pa.array([], pa.int64())})):
        if isinstance(step, Generate):
            name, version = catalog.resolve_version(con, step.generate)
            if step.filter is not None and step.target is None:
                raise SynthError(
                    f"{where}: a generate step's filter needs a 'target' (rows drawn given the "
                    "input rows keep their values; filter them with a SQL step)"
                )
            if step.filter is not None:
                sqltext.predicate(con, step.filter, f"{where}: filter")
            return Generate(f"{name}@{version}", step.target, step.seed, step.filter)
        if isinstance(step, Score):
            from . import user_models  # torch.export, only where a pipeline scores

            name, version = user_models.resolve(con, step.score)
            return Score(f"{name}@{version}")
        if isinstance(step, Transform):
            sqltext.query(con, step.sql, f"{where}: sql")
            return step
        if not catalog.MODEL_NAME.match(step.validation):
            raise SynthError(
                f"{where}: a validation's name is an identifier, got {step.validation!r}"
            )
        sqltext.predicate(con, step.check, f"{where}: check")
        return step


def stored(value: Step | Split) -> dict:
    """A step or split as its catalog row keeps it (unset keys left out)."""
    return {k: v for k, v in asdict(value).items() if v is not None}


def parse_split(value: object, where: str) -> Split:
    if not isinstance(value, dict):
        raise SynthError(f"{where}: a split is an object like {{'random': {{'a': 1, 'b': 1}}}}")
    given = {k: v for k, v in value.items() if v is not None}
    for cls in (RandomSplit, KeySplit, Shadow):
        first = next(iter(cls.__dataclass_fields__))
        if first in given:
            unknown = sorted(set(given) - set(cls.__dataclass_fields__))
            if unknown:
                raise SynthError(f"{where}: a {first} split does not take {unknown[0]!r}")
            try:
                split = cls(**given)
            except TypeError:
                raise SynthError(
                    f"{where}: a {first} split needs {', '.join(cls.__dataclass_fields__)}"
                ) from None
            _check_split(split, where)
            return split
    raise SynthError(
        f"{where}: a split has 'random', 'key' or 'champion', got {', '.join(given) or 'none'}"
    )


def _check_split(split: Split, where: str) -> None:
    if isinstance(split, RandomSplit):
        weights = split.random
        if not isinstance(weights, dict) or not weights:
            raise SynthError(f"{where}: 'random' maps each arm to its weight")
        for arm, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
                raise SynthError(f"{where}: arm '{arm}' needs a positive weight, got {weight!r}")
        _names(split.hash_key, where, "hash_key", optional=True)
    elif isinstance(split, KeySplit):
        _names(split.key, where, "key")
        if not isinstance(split.arms, dict) or not split.arms:
            raise SynthError(f"{where}: 'arms' maps each key value to an arm")
    elif not isinstance(split.challengers, list) or not split.challengers:
        raise SynthError(f"{where}: 'challengers' is a list of pipelines")


def _names(value, where: str, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise SynthError(f"{where}: '{what}' is a column name, got {value!r}")


def pinned_split(split: Split, pin) -> Split:
    """``split`` with each arm replaced by ``pin(arm)`` (its pipeline@version)."""
    if isinstance(split, RandomSplit):
        return RandomSplit({pin(a): float(w) for a, w in split.random.items()}, split.hash_key)
    if isinstance(split, KeySplit):
        return KeySplit(
            split.key,
            {str(k): pin(a) for k, a in split.arms.items()},
            pin(split.default) if split.default else None,
        )
    return Shadow(pin(split.champion), [pin(a) for a in split.challengers])


@contextlib.contextmanager
def running_as_pipeline(con: duckdb.DuckDBPyConnection, rows: pa.Table):
    """Run the block with a pipeline's rights (the caller's cancel and time-out kept) and
    ``rows`` readable as ``input``."""
    outer = caller.current()
    rights = dataclasses.replace(outer.rights, role=caller.READ_ONLY, folders=(), deployments=None)
    call = caller.Call(rights, outer.cancelled, outer.timeout, outer.started)
    con.register(INPUT, rows)
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        with caller.running(call):
            yield call
    finally:
        _inside.depth -= 1
        con.unregister(INPUT)


def inside_pipeline() -> bool:
    """Whether a pipeline's step is running on this thread."""
    return getattr(_inside, "depth", 0) > 0
