"""The Python behind the pipeline macros (see duck_synth/actions.py): each runs on its own
cursor of the database and returns the SQL that reads its result."""

from __future__ import annotations

import json

from .. import spool
from ..errors import SynthError
from ..options import DeployOptions, LoggedRowsOptions, LogsOptions, PipelineOptions, parse
from . import logs, versions
from .infer import infer


def synth_create_pipeline(cursor, name, options):
    given = parse(PipelineOptions, "create_pipeline", options)
    return spool.summary_sql("pipeline", versions.create(cursor, name, given.steps, given.split))


def _step(text: str) -> object:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        raise SynthError(f"a step is a struct like {{'sql': 'SELECT ..'}}, got {text!r}") from None


def _index(text: str, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise SynthError(f"{what}: the step's index is a whole number, got {text!r}") from None


def synth_add_pipeline_step(cursor, name, step):
    return spool.summary_sql(
        "pipeline", versions.change_steps(cursor, name, "add", None, _step(step))
    )


def synth_replace_pipeline_step(cursor, name, index, step):
    at = _index(index, "replace_pipeline_step()")
    return spool.summary_sql(
        "pipeline", versions.change_steps(cursor, name, "replace", at, _step(step))
    )


def synth_remove_pipeline_step(cursor, name, index):
    at = _index(index, "remove_pipeline_step()")
    return spool.summary_sql("pipeline", versions.change_steps(cursor, name, "remove", at, None))


def synth_clear_pipeline_steps(cursor, name):
    return spool.summary_sql("pipeline", versions.change_steps(cursor, name, "clear", None, None))


def synth_deploy(cursor, name, options):
    given = parse(DeployOptions, "deploy", options)
    summary = versions.deploy(cursor, name, vars(given))
    logs.trim(cursor, summary["pipeline"], vars(given))
    return spool.summary_sql("deploy", summary)


def synth_undeploy(cursor, name):
    return spool.summary_sql("deploy", versions.undeploy(cursor, name))


def synth_infer(cursor, name, options):
    return infer(cursor, name, options)


def synth_logs(cursor, name, options):
    if not versions.versions(cursor, name):
        raise SynthError(f"logs(): unknown pipeline '{name}' (see FROM pipelines())")
    return logs.read(cursor, name, parse(LogsOptions, "logs", options))


def synth_logged_rows(cursor, name, options):
    if not versions.versions(cursor, name):
        raise SynthError(f"logged_rows(): unknown pipeline '{name}' (see FROM pipelines())")
    return logs.rows(cursor, name, parse(LoggedRowsOptions, "logged_rows", options))


UDFS = {name: f for name, f in dict(globals()).items() if name.startswith("synth_")}
