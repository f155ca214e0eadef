"""generate_into(..., engine => 'ray'): batches drawn by Ray tasks, appended by this process.

The plan is the one the local engine follows (RowSampler.planned_units): batch i draws full
batches of batch_size rows (sessions: about batch_size rows of them) from the generators seeded
by (seed, i), the last one what is left when nothing is rejected; its key values start at
i x a full batch. So a batch's rows depend only on the seed, its number and batch_size, and a
task can draw any batch without the ones before it.

What each part does:
- a task (``draw_batch``) loads the model once per worker process from the record this
  process put in the object store (weights and JSON, as export_model writes them: never the
  training data; no worker opens the .duckdb file, which DuckDB locks), draws the batch and
  screens it (strings cut, the residual filter: the steps that read one batch alone);
- this process takes the batches in order and runs the steps that read the batches before:
  unique values (unique_columns, drop_unique_violation: a value seen in an earlier batch drops
  the row, as in-process), the target's cut, session keys numbered on; then appends each batch
  with its progress in one transaction (generate_into.py), so a stopped run resumes at the next
  batch on either engine;
- equalize / rebalance: the quotas a batch starts from are computed here without drawing when
  nothing is rejected (Quotas.planned); under a filter or unique values they depend on the
  rows drawn before, and are refused with engine => 'ray'.

A task whose worker dies is run again by Ray (``max_retries``): it draws the same rows, and
this process takes each batch once. ``workers`` tasks are in flight (default: the cluster's
CPUs); the one taken is replaced before its batch is appended, so the workers draw while this
process writes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

import pyarrow as pa

from .. import caller
from ..errors import SynthError
from ..generate import GenerationProgress, bundle, effort_rows
from ..models.base import SAMPLE_THREADS_VARIABLE
from ..shapes import Loaded
from .cluster import ray_for

TASK_RETRIES = 3  # a batch's task is run again this often when its worker dies
WAIT_STEP_S = 0.5  # how often a wait for a task checks for a cancel
MODELS_PER_WORKER = 4  # models a worker process keeps loaded (a server samples many)

_models: dict[tuple, Loaded] = {}  # per worker process: (name, version, created) -> model


def ray_draws(
    generator, target: int, progress: GenerationProgress, workers: int | None
) -> Iterator[tuple[int, pa.Table]]:
    """Each batch's units and screened rows, in batch order, drawn by Ray tasks from
    ``progress.batch`` on; closing the iterator cancels the tasks still running."""
    plan = generator.planned_batches(target, progress.batch)  # refuses before Ray starts
    ray = ray_for("generate_into(engine => 'ray')")
    record = generator.loaded.record
    key = (record.name, record.version, str(record.created))
    boxed = [ray.put(record)]  # in a list: a task fetches it only when its worker lacks it
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(draw_batch)
    width = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    effort = effort_rows(target)
    call = (key, boxed, generator.options, generator.compiled, generator.seed)
    pending: deque = deque()
    next_batch = [progress.batch, progress.drawn]  # the next batch to send, units sent by then

    def send() -> None:
        batch, drawn = next_batch
        while len(pending) < width and drawn < effort:
            n, state = next(plan, (0, None))
            if n == 0:
                break  # the plan's last batch is out
            pending.append((n, task.remote(call, target, batch, n, state)))
            batch, drawn = batch + 1, drawn + n
        next_batch[:] = [batch, drawn]

    try:
        send()
        while pending:
            n, ref = pending[0]
            rows = taken(ray, ref)
            pending.popleft()
            send()  # the workers draw on while this batch is appended
            generator.drawn_elsewhere(n)
            yield n, rows
        raise SynthError("generate_into(): the plan has no batch left to draw")
    finally:
        for _, ref in pending:
            ray.cancel(ref)


def taken(ray, ref) -> pa.Table:
    """A task's rows, waited for in short steps so that a cancel or the statement's timeout
    stops the wait (a task that cannot be scheduled never returns); a task that failed is one
    line naming the cause."""
    try:
        while not ray.wait([ref], timeout=WAIT_STEP_S)[0]:
            caller.check()
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause  # the task's own exception (str(error) is Ray's traceback)
        if isinstance(cause, SynthError):
            raise SynthError(_first_line(cause)) from None
        raise SynthError(f"generate_into(): a Ray task failed: {_first_line(cause)}") from None
    except ray.exceptions.RayError as error:
        raise SynthError(f"generate_into(): a Ray task failed: {_first_line(error)}") from None


def _first_line(error: BaseException | None) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def draw_batch(call: tuple, target: int, batch: int, n: int, state: dict) -> pa.Table:
    """Batch ``batch``'s ``n`` units, drawn and screened (runs as a Ray task)."""
    import torch

    key, boxed, options, compiled, seed = call
    cpus = max(1, int(float(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    os.environ[SAMPLE_THREADS_VARIABLE] = str(cpus)  # the task's CPUs, not the machine's
    torch.set_num_threads(cpus)
    loaded = _models.get(key)
    if loaded is None:
        import ray

        while len(_models) >= MODELS_PER_WORKER:  # the longest loaded goes first
            _models.pop(next(iter(_models)))
        loaded = _models[key] = bundle(ray.get(boxed[0]))
    sampler = loaded.shape.sampler(loaded, options, compiled, seed)
    sampler.set_target(target)
    sampler.restore(state)
    return sampler.screen(sampler.draw(n, batch))
