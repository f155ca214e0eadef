"""Pipelines in the catalog: every change adds a version (``synth.pipelines``), any version
can be read and deployed (``synth.deployments``). A catalog row is untrusted data: it is parsed
again when it is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from .. import catalog
from ..errors import SynthError
from . import steps as S


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    steps: tuple[S.Step, ...]
    split: S.Split | None

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not catalog.MODEL_NAME.match(name) or "@" in name:
        raise SynthError(f"{what}: a pipeline's name is letters, digits, _ . - ; got {name!r}")
    return name


def versions(con: duckdb.DuckDBPyConnection, name: str) -> list[int]:
    rows = con.execute(
        "SELECT version FROM synth.pipelines WHERE name = ? ORDER BY version", [name]
    ).fetchall()
    return [r[0] for r in rows]


def load(con: duckdb.DuckDBPyConnection, spec: str) -> Version:
    """The pipeline version ``spec`` names ('p': the latest, 'p@2')."""
    name, version = catalog.parse_model_spec(spec)
    version = catalog.chosen_version("pipeline", name, version, versions(con, name), "pipelines()")
    steps_json, split_json = con.execute(
        "SELECT steps, split FROM synth.pipelines WHERE name = ? AND version = ?", [name, version]
    ).fetchone()
    where = f"pipeline '{name}@{version}'"
    try:
        steps = json.loads(steps_json)
        split = json.loads(split_json) if split_json is not None else None
    except ValueError:
        raise SynthError(f"{where}: its catalog row is not JSON") from None
    if not isinstance(steps, list):
        raise SynthError(f"{where}: its steps are not a list")
    parsed = tuple(S.parse_step(s, f"{where} step {i}") for i, s in enumerate(steps, 1))
    return Version(
        name, version, parsed, S.parse_split(split, where) if split is not None else None
    )


def _add(con, name: str, steps: list[S.Step], split: S.Split | None, change: str) -> dict:
    version = (versions(con, name) or [0])[-1] + 1
    con.execute(
        "INSERT INTO synth.pipelines VALUES (?, ?, ?, ?, ?, ?)",
        [
            name,
            version,
            json.dumps([S.stored(s) for s in steps]),
            json.dumps(S.stored(split)) if split is not None else None,
            change,
            catalog.utc_now(),
        ],
    )
    return {"pipeline": name, "version": version, "steps": len(steps), "change": change}


def create(con: duckdb.DuckDBPyConnection, name: str, steps: object, split: object) -> dict:
    """A new pipeline, or a new version of one (its steps or split replaced)."""
    what = "create_pipeline()"
    _check_name(name, what)
    if split is not None and steps:
        raise SynthError(f"{what}: a pipeline has steps or a split over other pipelines, not both")
    if split is not None:
        parsed = S.pinned_split(S.parse_split(split, what), lambda arm: _arm(con, arm, name, what))
        return _add(con, name, [], parsed, "created" if not versions(con, name) else "recreated")
    if steps is not None and not isinstance(steps, list):
        raise SynthError(f"{what}: steps is a list of steps, [{{'sql': '...'}}, ...]")
    checked = [S.checked_step(con, s, f"{what} step {i}") for i, s in enumerate(steps or [], 1)]
    return _add(con, name, checked, None, "created" if not versions(con, name) else "recreated")


def _arm(con, arm: object, split_name: str, what: str) -> str:
    if not isinstance(arm, str):
        raise SynthError(f"{what}: an arm is a pipeline's name, got {arm!r}")
    version = load(con, arm)
    if version.split is not None:
        raise SynthError(f"{what}: arm '{arm}' is itself a split; an arm runs steps")
    if version.name == split_name:
        raise SynthError(f"{what}: a split cannot route to itself ('{arm}')")
    return version.spec


def change_steps(
    con: duckdb.DuckDBPyConnection, name: str, action: str, index: int | None, step: object
) -> dict:
    """A new version with a step added (at the end), replaced or removed at ``index``
    (1-based, as SQL lists), or every step cleared."""
    what = f"{action}_pipeline_step{'s' if action == 'clear' else ''}()"
    current = load(con, name)
    if current.split is not None:
        raise SynthError(f"{what}: pipeline '{name}' is a split; create_pipeline() replaces it")
    steps = list(current.steps)
    if action in ("replace", "remove") and not (
        isinstance(index, int) and 1 <= index <= len(steps)
    ):
        has = f"steps 1-{len(steps)}" if steps else "no step"
        raise SynthError(f"{what}: pipeline '{name}' has {has}, no step {index!r}")
    if action == "add":
        steps.append(S.checked_step(con, step, what))
        change = f"step {len(steps)} added"
    elif action == "replace":
        steps[index - 1] = S.checked_step(con, step, what)
        change = f"step {index} replaced"
    elif action == "remove":
        del steps[index - 1]
        change = f"step {index} removed"
    else:
        steps, change = [], "steps cleared"
    return _add(con, name, steps, None, change)


def deploy(con: duckdb.DuckDBPyConnection, spec: str, options: dict) -> dict:
    """Make ``spec``'s version the one infer(name) runs."""
    version = load(con, spec)
    if not version.steps and version.split is None:
        raise SynthError(f"deploy(): pipeline '{version.spec}' has no step")
    with catalog.transaction(con):
        con.execute("DELETE FROM synth.deployments WHERE name = ?", [version.name])
        con.execute(
            "INSERT INTO synth.deployments VALUES (?, ?, ?, ?)",
            [version.name, version.version, json.dumps(options), catalog.utc_now()],
        )
    return {"pipeline": version.name, "version": version.version, "deployed": True, **options}


def undeploy(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    deleted = con.execute(
        "DELETE FROM synth.deployments WHERE name = ? RETURNING version", [name]
    ).fetchall()
    if not deleted:
        raise SynthError(f"undeploy(): pipeline '{name}' is not deployed")
    return {"pipeline": name, "version": deleted[0][0], "deployed": False}


def deployed(con: duckdb.DuckDBPyConnection, name: str) -> tuple[Version, dict]:
    """The version deployed under ``name`` and its log options; refused when none is."""
    if not isinstance(name, str) or "@" in name:
        raise SynthError(f"infer(): call a deployment by its pipeline's name, got {name!r}")
    row = con.execute(
        "SELECT version, options FROM synth.deployments WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        known = versions(con, name)
        hint = f"deploy('{name}') first" if known else "see FROM pipelines()"
        raise SynthError(f"infer(): pipeline '{name}' is not deployed ({hint})")
    try:
        options = json.loads(row[1])
    except ValueError:
        raise SynthError(f"deployment '{name}': its options are not JSON") from None
    return load(con, f"{name}@{row[0]}"), options
