"""Training checkpoints in the catalog: what ``train(..., resume => true)`` continues from.

A run keeps at most one row in synth.checkpoints, replaced at each save (at an epoch's end,
every ``checkpoint_every`` seconds): the plan's parts already fitted, and the training loop's
state of the part in progress (weights, optimizer, random generators, epochs, history:
models/loop.py). The epochs after it are those an uninterrupted run takes, so a resumed run
ends with the same weights. A row is written with torch.save and read back with
``weights_only``: a catalog row may come from elsewhere, so only tensors, numbers, strings,
lists and dicts load. Rows go when their run's model is added, with drop_checkpoints(), and
after ``catalog.CHECKPOINT_RETENTION``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field

import duckdb
import torch

from . import catalog
from .errors import SynthError
from .options import TrainOptions

FORMAT = 1
MAX_BYTES = 1 << 30  # a larger state is not saved (the summary says so)


@dataclass
class Resumed:
    """A checkpoint to continue: its run, the parts it had fitted, the loop state of the next."""

    run_id: int
    part: str
    finished: dict[str, dict]
    loop: dict | None


CHECKPOINT_OF_RUN = (
    "SELECT c.run_id, c.model, c.fingerprint, c.state, r.status FROM synth.checkpoints c "
    "LEFT JOIN synth.runs r USING (run_id) WHERE c.run_id = ?"
)
LATEST_OF_MODEL = (
    "SELECT c.run_id, c.model, c.fingerprint, c.state, r.status FROM synth.checkpoints c "
    "LEFT JOIN synth.runs r USING (run_id) WHERE c.model = ? ORDER BY c.run_id DESC LIMIT 1"
)


def to_resume(
    con: duckdb.DuckDBPyConnection, name: str, options: TrainOptions, fingerprint: str
) -> Resumed | None:
    """The checkpoint train() was asked to continue, checked before any run is recorded: the
    run's (resume_run) or the model's latest (resume; None when there is none)."""
    if not (options.resume or options.resume_run):
        return None
    if options.epsilon is not None:
        raise SynthError("train(): resume is not available with epsilon (no checkpoints: DP)")
    if options.resume_run:
        row = con.execute(CHECKPOINT_OF_RUN, [options.resume_run]).fetchone()
        if row is None:
            raise SynthError(
                f"train('{name}'): run {options.resume_run} has no checkpoint to resume "
                "(FROM checkpoints() lists them)"
            )
    else:
        row = con.execute(LATEST_OF_MODEL, [name]).fetchone()
        if row is None:
            return None  # nothing was interrupted: an ordinary training
    run_id, model, stored_fingerprint, blob, status = row
    if model != name:
        raise SynthError(f"train('{name}'): run {run_id} trained '{model}', not '{name}'")
    if status == "running":
        raise SynthError(f"train('{name}'): run {run_id} is still running")
    if stored_fingerprint != fingerprint:
        raise SynthError(
            f"train('{name}'): the checkpoint of run {run_id} was made from other data or "
            f"options (fingerprint {stored_fingerprint}, now {fingerprint}); train without "
            f"resume, or drop_checkpoints(model => '{name}')"
        )
    state = _read(blob, run_id)
    return Resumed(run_id, state["part"], state["finished"], state["loop"])


def _read(blob: bytes, run_id: int) -> dict:
    try:
        state = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        if state["format"] != FORMAT:
            raise ValueError(f"format {state['format']}")
        for part in state["finished"].values():
            part["fitted"], part["params"] = json.loads(part["fitted"]), json.loads(part["params"])
        return {k: state[k] for k in ("part", "finished", "loop")}
    except Exception as error:  # untrusted bytes: whatever fails, the row cannot be used
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SynthError(
            f"train(): the checkpoint of run {run_id} cannot be read ({first}); "
            "drop_checkpoints() removes it"
        ) from None


@dataclass
class RunCheckpoints:
    """One run's checkpoints: what it continues, and what the loop of each part saves to."""

    con: duckdb.DuckDBPyConnection
    run_id: int
    model: str
    fingerprint: str
    every: float  # seconds between saves (0: every epoch)
    resumed: Resumed | None = None
    finished: dict[str, dict] = field(default_factory=dict)
    skipped: str | None = None  # why saving stopped (too large)

    def __post_init__(self) -> None:
        if self.resumed is not None:
            self.finished = dict(self.resumed.finished)

    def fitted(self, part: str) -> tuple[dict, dict, dict] | None:
        """(metrics, parameters, tensors) of a part fitted before the interruption."""
        done = self.finished.get(part)
        return None if done is None else (done["fitted"], done["params"], done["tensors"])

    def for_part(self, part: str) -> PartCheckpoints:
        resumed = self.resumed
        loop = resumed.loop if resumed is not None and resumed.part == part else None
        return PartCheckpoints(self, part, loop)

    def part_done(self, part: str, fitted: dict, params: dict, tensors: dict) -> None:
        self.finished[part] = {"fitted": fitted, "params": params, "tensors": tensors}
        self.save(part, None, fitted.get("epochs", 0))

    def save(self, part: str, loop: dict | None, epochs: int) -> None:
        if self.skipped:
            return
        finished = {
            name: {
                "fitted": json.dumps(done["fitted"], default=float),
                "params": json.dumps(done["params"], default=float),
                "tensors": done["tensors"],
            }
            for name, done in self.finished.items()
        }
        buffer = io.BytesIO()
        state = {"format": FORMAT, "part": part, "finished": finished, "loop": loop}
        torch.save(state, buffer)
        blob = buffer.getvalue()
        if len(blob) > MAX_BYTES:
            self.skipped = f"checkpoint of {len(blob) >> 20} MiB not saved (limit 1 GiB)"
            return
        self.con.execute(
            "INSERT OR REPLACE INTO synth.checkpoints "
            "(run_id, model, fingerprint, part, epochs, bytes, state, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, timezone('UTC', now()))",
            [self.run_id, self.model, self.fingerprint, part, epochs, len(blob), blob],
        )

    def remove(self) -> None:
        """Once the model is added: this run's checkpoint and the one it continued."""
        runs = [self.run_id] + ([self.resumed.run_id] if self.resumed else [])
        self.con.execute("DELETE FROM synth.checkpoints WHERE list_contains(?, run_id)", [runs])


@dataclass
class PartCheckpoints:
    """What one part's training loop saves to (models.base.Checkpoints)."""

    run: RunCheckpoints
    part: str
    resume: dict | None
    last: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.run.every

    def save(self, state: dict) -> None:
        self.run.save(self.part, state, state["epoch"])
        self.last = time.monotonic()


def drop(con: duckdb.DuckDBPyConnection, model: str | None) -> list[dict]:
    """drop_checkpoints(): the rows removed (all, or one model's)."""
    with catalog.transaction(con):
        rows = con.execute(
            "DELETE FROM synth.checkpoints WHERE ? IS NULL OR model = ? "
            "RETURNING run_id, model, part, epochs, bytes",
            [model, model],
        ).fetchall()
    keys = ("run_id", "model", "part", "epochs", "bytes")
    return sorted((dict(zip(keys, row, strict=True)) for row in rows), key=lambda r: r["run_id"])
