"""A pipeline version over an Arrow table of input rows: its steps in order, its validations
on the output, and a split's routing of the rows to its arms (or a shadow's running of all).

Each row carries its input row's place (``ROW``) through the steps that keep it (generate
given seed rows, score, a SQL step selecting ``*``), so the result can show the input an
output row came from; rows drawn anew (a generate target) have none.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from .. import caller, generate, sqltext
from ..errors import Cancelled, SynthError
from ..options import GenerateOptions
from ..rewrite import DUCKDB
from . import steps as S
from . import versions

ROW = S.ROW
_names = itertools.count(1)


@dataclass
class ArmRun:
    """One pipeline version run on some of a call's rows (a split's arm, or the whole call)."""

    arm: str  # pipeline@version
    shadow: bool
    rows: pa.Table  # its input rows, ROW included
    output: pa.Table | None = None  # ROW included
    failures: list[list[str]] = field(default_factory=list)  # per output row
    alerts: list[str] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    seconds: float = 0.0

    def failure_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for names in self.failures:
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        return counts


def run(con: duckdb.DuckDBPyConnection, version: versions.Version, rows: pa.Table) -> list[ArmRun]:
    """Every arm's run of a call, the returned ones first. A failed or timed-out arm that is
    not a shadow ends the call: the runs so far are returned with it, for the log."""
    rows = rows.append_column(ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    if version.split is None:
        routes = [(version, rows, False)]
    else:
        routes = [
            (versions.load(con, arm), part, shadow)
            for arm, part, shadow in route(version.split, rows, version.name)
        ]
    runs = []
    for arm, part, shadow in routes:
        one = ArmRun(arm.spec, shadow, part)
        runs.append(one)
        started = time.monotonic()
        try:
            one.output, one.failures, one.alerts = run_steps(con, arm, part)
        except (Cancelled, duckdb.InterruptException) as stopped:  # the call's time-out
            one.status, one.error = "timeout", sqltext.first_line(stopped)
        except Exception as error:  # any failure of a step is the arm's, logged as such
            one.status, one.error = "error", sqltext.first_line(error)
        one.seconds = time.monotonic() - started
        if one.status == "timeout" or (one.status != "ok" and not shadow):
            break
    return runs


def run_steps(con, version: versions.Version, rows: pa.Table):
    """(output, each output row's failed validations, the validations over their alert)."""
    table, validations = rows, []
    with S.running_as_pipeline(con, rows):
        for i, step in enumerate(version.steps, 1):
            caller.check()
            where = f"pipeline '{version.spec}' step {i}"
            if isinstance(step, S.Validation):
                validations.append(step)
            elif isinstance(step, S.Generate):
                table = _generated(con, step, table, where)
            elif isinstance(step, S.Score):
                table = _scored(con, step, table)
            else:
                con.register(S.INPUT, table)
                table = con.execute(sqltext.query(con, step.sql, where)).to_arrow_table()
                table = _kept_places(table, rows, where)
        failures, alerts = _validated(con, validations, table, version.spec)
    return table, failures, alerts


def _kept_places(table: pa.Table, rows: pa.Table, where: str) -> pa.Table:
    """A SQL step's rows with their input rows' places: NULL where it dropped them, refused
    where it changed them."""
    if ROW not in table.column_names:
        return table.append_column(ROW, pa.nulls(table.num_rows, pa.int64()))
    places = table.column(ROW)
    known = places.type == pa.int64() and pc.all(
        pc.or_kleene(pc.is_null(places), pc.is_in(places, value_set=rows.column(ROW)))
    ).as_py() in (True, None)
    if not known:
        raise SynthError(
            f"{where}: {ROW} is each row's input row; keep it as it is or leave it out"
        )
    return table


def _generated(con, step: S.Generate, table: pa.Table, where: str) -> pa.Table:
    options = {"seed": step.seed, "filter": step.filter}
    if step.target is not None:
        drawn, _ = _drawn(con, step.generate, {**options, "target": step.target})
        return drawn.append_column(ROW, pa.nulls(drawn.num_rows, pa.int64()))
    sampler = generate.prepare(con, step.generate, GenerateOptions(seed=step.seed))
    known, _ = sampler.seedable()
    given = [c for c in table.column_names if c in known]
    if not given:
        raise SynthError(
            f"{where}: the rows hold none of model '{step.generate}''s columns "
            f"({', '.join(known)}); give the step a 'target' to draw rows without them"
        )
    seeds = f"duck_synth_seeds_{next(_names)}"
    con.register(seeds, table.select(given))
    try:
        drawn, units = _drawn(con, step.generate, {**options, "seed_rows": seeds})
    finally:
        con.unregister(seeds)
    # one unit (a row, or a session of several rows) per seed row, in the seed rows' order
    starts = np.r_[True, units[1:] != units[:-1]] if len(units) else np.zeros(0, bool)
    return drawn.append_column(ROW, table.column(ROW).take(pa.array(np.cumsum(starts) - 1)))


def _drawn(con, model: str, options: dict) -> tuple[pa.Table, np.ndarray]:
    """The rows drawn, and the unit (row or session) each belongs to."""
    given = json.dumps({k: v for k, v in options.items() if v is not None})
    rows = generate.Rows(con, model, given)
    parts = list(rows)
    drawn = pa.concat_tables(parts) if parts else rows.schema.empty_table()
    return drawn, rows.generator.unit_of_row(drawn)


def _scored(con, step: S.Score, table: pa.Table) -> pa.Table:
    from . import user_models  # torch.export, only where a pipeline scores

    scores = user_models.score_table(con, step.score, table)
    for name in scores.column_names:
        column = scores.column(name)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


def _validated(con, validations: list[S.Validation], table: pa.Table, spec: str):
    """Each row's failed validations (a check that is false; NULL passes, as in a CHECK
    constraint), and the validations whose share of failed rows passed their alert."""
    if not validations or table.num_rows == 0:
        return [[] for _ in range(table.num_rows)], []
    flags = [
        exp.alias_(
            exp.Is(
                this=exp.paren(
                    sqltext.predicate(con, v.check, f"pipeline '{spec}': {v.validation}")
                ),
                expression=exp.false(),
            ),
            f"f{i}",
        )
        for i, v in enumerate(validations)
    ]
    con.register(S.INPUT, table)
    select = exp.select(*flags).from_(S.INPUT).sql(DUCKDB)
    try:
        failed = con.execute(select).to_arrow_table()
    except duckdb.Error as error:
        raise SynthError(
            f"pipeline '{spec}': a validation failed to run: {sqltext.first_line(error)}"
        ) from None
    matrix = np.stack(
        [failed.column(i).to_numpy(zero_copy_only=False) for i in range(len(validations))], 1
    )
    names = [v.validation for v in validations]
    failures = [[names[j] for j in np.flatnonzero(row)] for row in matrix]
    shares = matrix.mean(axis=0)
    alerts = [
        v.validation
        for v, share in zip(validations, shares, strict=True)
        if v.alert is not None and share > v.alert
    ]
    return failures, alerts


def route(split: S.Split, rows: pa.Table, salt: str) -> list[tuple[str, pa.Table, bool]]:
    """(arm, its rows, shadow) for each arm the call's rows go to."""
    if isinstance(split, S.Shadow):
        return [(split.champion, rows, False)] + [(arm, rows, True) for arm in split.challengers]
    if isinstance(split, S.RandomSplit):
        chosen = _random_arms(split, rows, salt)
    else:
        chosen = _key_arms(split, rows)
    routes = []
    for arm in dict.fromkeys(chosen):
        indices = [i for i, a in enumerate(chosen) if a == arm]
        routes.append((arm, rows.take(pa.array(indices, pa.int64())), False))
    return routes


def _random_arms(split: S.RandomSplit, rows: pa.Table, salt: str) -> list[str]:
    """An arm per row by its weight: a row with a hash key value always gets the same arm;
    the others share one draw per call. The split's name salts the hash, so one key is not
    on the first arm of every split."""
    arms = list(split.random)
    bounds = np.cumsum([split.random[a] for a in arms]) / sum(split.random.values())
    draw = random.SystemRandom().random()
    if split.hash_key is None:
        points = [draw] * rows.num_rows
    else:
        if split.hash_key not in rows.column_names:
            raise SynthError(f"split: hash_key '{split.hash_key}' is not a column of the input")
        values = rows.column(split.hash_key).to_pylist()
        points = [draw if v is None else _unit(salt, v) for v in values]
    return [arms[min(int(np.searchsorted(bounds, p, side="right")), len(arms) - 1)] for p in points]


def _unit(salt: str, value: object) -> float:
    """A stable point in [0, 1) for a hash key's value (the same in every process)."""
    digest = hashlib.blake2b(_key_text(value).encode(), digest_size=8, key=salt.encode()[:64])
    return int.from_bytes(digest.digest(), "big") / 2**64


def _key_text(value: object) -> str:
    """A key's value as text, whatever its type: 7, 7.0 and '7' are one key."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _key_arms(split: S.KeySplit, rows: pa.Table) -> list[str]:
    if split.key not in rows.column_names:
        raise SynthError(f"split: key '{split.key}' is not a column of the input")
    chosen = []
    for value in rows.column(split.key).to_pylist():
        arm = split.arms.get(_key_text(value)) if value is not None else None
        if arm is None and split.default is None:
            raise SynthError(f"split: {split.key} = {value!r} has no arm and the split no default")
        chosen.append(arm or split.default)
    return chosen
