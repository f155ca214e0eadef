"""Data-parallel training of the autoregressive method on Ray Train (``train(.., engine => 'ray',
workers => n)``).

The driver plans as shapes/table.py does, the rows in blocks (distributed/blocks.py): the
encoders are those a local training fits and the model's format in the catalog is a local one.
Only the network's fit goes to Ray: a ``TorchTrainer`` (Train V2, gloo on CPUs, NCCL when the
driver trains on CUDA) runs ``workers`` copies of the plan's model, each on its equal range of
the rows, with the gradients averaged every step (models/loop.py ``optimizer_step``: one
all-reduce of every gradient, no DDP wrapper: the model's loss is not its forward). Each worker
splits its rows into training and validation rows as a local fit does, seeded by
``seed + rank * stride``; the epoch losses, the share done (the learning rate) and max_time's
stop are agreed across workers (``Synchronizer``), so every worker takes the same steps, stops
together and holds the same weights. Rank 0 returns them (``Result.return_value``) with the
fit's metrics; the driver loads them into the plan's model, which is stored as a local fit is.

The rows reach the workers as blocks in the object store, not through Ray Data: the object
store crosses nodes without a shared filesystem, and equal ranges of rows are what keep the
workers' steps per epoch equal (a collective with one worker missing hangs), which Ray Data's
blocks do not promise. A continued training's rows (read in-process by continued.py) are split
by the seed into equal shares and put the same way. Each worker gets the single-process batch
divided by the workers, so the global batch, the steps per epoch and the learning-rate schedule
are a local fit's.

Progress: rank 0 sends each epoch's losses (and a step's, at most every STEP_EVENT_S) to a small
actor that the driver reads, so synth.runs and the bar follow the training; a cancel on the
driver is passed back and all workers stop at the same step. A continued training's text
columns' own models train in-process after it. Not done here: checkpoints and resume, DP-SGD,
sessions and methods other than autoregressive (refused by ``check_options``).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import threading
import time

import numpy as np
import torch

from ..errors import Cancelled, SynthError
from ..models.autoregressive import batch_size
from ..models.base import FitConfig, GenerativeModel, Progress, load_network
from ..options import TrainOptions
from .blocks import joined
from .cluster import ray_for, require_ray

WHAT = "train(engine => 'ray')"
RANK_SEED_STRIDE = 7919  # a worker's seed is seed + rank * this (seed + 1 seeds validation masks)
STEP_EVENT_S = 0.5  # rank 0 reports a step's progress at most this often (epochs always)
MIN_SHARD_ROWS = 50  # fewer rows a worker learn nothing alone and have no validation rows
POLL_S = 0.5  # how often the driver reads the progress events


def check_options(options: TrainOptions, method: str) -> None:
    """Refuse, before anything is recorded, what ``engine => 'ray'`` does not train."""
    if options.engine != "ray":
        return
    if method not in ("auto", "autoregressive"):
        raise SynthError(f"{WHAT}: only method 'autoregressive' trains on Ray, not '{method}'")
    if options.session_key is not None:
        raise SynthError(f"{WHAT}: sessions (session_key) train in-process; give engine => 'local'")
    if options.epsilon is not None:
        raise SynthError(
            f"{WHAT}: differential privacy (epsilon) trains in-process; give engine => 'local'"
        )
    if options.resume or options.resume_run is not None:
        raise SynthError(f"{WHAT}: a training on Ray keeps no checkpoints to resume from")
    require_ray(WHAT)


class RayFit:
    """A model's fit sent to Ray: ``fit`` has the model's signature (fitting.fit_recorded calls
    it as it calls the model's), and leaves the fitted weights in ``model``."""

    def __init__(self, model: GenerativeModel, workers: int | None):
        self.model, self.workers = model, workers

    def fit(self, tokens: np.ndarray, config: FitConfig, progress: Progress) -> dict:
        ray = ray_for(WHAT)
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        workers = self.workers or max(1, int(cpus))
        each = len(tokens) // workers
        if each < MIN_SHARD_ROWS:
            raise SynthError(
                f"{WHAT}: {len(tokens)} rows give {workers} workers {each} rows each; "
                f"give fewer workers (each needs {MIN_SHARD_ROWS})"
            )
        if isinstance(tokens, np.ndarray):  # a continued training's rows, read in-process
            shards = [[(ray.put(s), 0, len(s))] for s in split_rows(tokens, workers, config.seed)]
        else:  # in blocks in the object store already (distributed/blocks.py)
            shards = tokens.ranges(workers)
        gpu = config.device.startswith("cuda")
        events = ray.remote(num_cpus=0)(Events).remote()
        setup = {
            "model": ray.put(self.model),
            "shards": shards,
            "config": worker_config(config, len(tokens), workers),
            "events": events,
            "gpu": gpu,
            "sent": time.time(),
        }
        folder = tempfile.mkdtemp(prefix="dsr_train_")
        trainer = TorchTrainer(
            fit_worker,
            train_loop_config=setup,
            # a worker asks for one CPU, or its share of a smaller cluster (else it never starts)
            scaling_config=ScalingConfig(
                num_workers=workers,
                use_gpu=gpu,
                resources_per_worker={"CPU": min(1.0, cpus / workers)} if not gpu else None,
            ),
            torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
            run_config=RunConfig(name="duck_synth_train", storage_path=folder),
        )
        try:
            value = followed(trainer, events, progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            ray.kill(events)
        network = getattr(self.model, self.model.network_attribute)
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in value["tensors"].items()}
        load_network(network, tensors, self.model.network_prefix)
        return value["fitted"] | {"workers": workers}


def split_rows(tokens: np.ndarray, workers: int, seed: int) -> list[np.ndarray]:
    """``workers`` shards of equal rows, drawn by ``seed`` (the remainder left out)."""
    order = np.random.default_rng(seed).permutation(len(tokens))
    each = len(tokens) // workers
    return [tokens[np.sort(order[k * each : (k + 1) * each])] for k in range(workers)]


def worker_config(config: FitConfig, rows: int, workers: int) -> FitConfig:
    """A worker's FitConfig: the local fit's batch divided by the workers (the same global
    batch and steps per epoch), no checkpoints."""
    validation = int(rows * config.validation_share) if rows >= MIN_SHARD_ROWS else 0
    batch = max(1, batch_size(config, rows - validation) // workers)
    return dataclasses.replace(config, batch_size=batch, checkpoints=None)


def followed(trainer, events, progress: Progress) -> dict:
    """Run ``trainer`` while passing its progress events to ``progress``; rank 0's return value.
    A cancel (``progress`` raising) is sent to the workers, and raised once they stopped."""
    import ray

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001  raised in the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=run, name="duck_synth-ray-train", daemon=True)
    thread.start()
    stopping: BaseException | None = None
    while True:
        thread.join(POLL_S)
        try:
            for event in ray.get(events.take.remote()):
                if stopping is None:
                    progress(event)
        except BaseException as error:  # a cancel or Ctrl-C: stop the workers, then raise
            stopping = stopping or error
            ray.get(events.cancel.remote())
        if not thread.is_alive():
            break
    if stopping is not None:
        raise stopping
    result = outcome.get("result")
    error = outcome.get("error") or (result.error if result is not None else None)
    if error is not None or result.return_value is None:
        lines = str(error or "no result").strip().splitlines()
        raise SynthError(
            f"{WHAT}: the workers failed: {lines[-1] if lines else type(error).__name__}"
        )
    return result.return_value


class Events:
    """The actor between rank 0 and the driver: progress events one way, a cancel the other."""

    def __init__(self):
        self.events: list[dict] = []
        self.cancelled = False

    def put(self, event: dict) -> bool:
        self.events.append(event)
        return self.cancelled

    def take(self) -> list[dict]:
        taken, self.events = self.events, []
        return taken

    def cancel(self) -> None:
        self.cancelled = True


class GroupSync:
    """The ``Synchronizer`` of a worker in torch.distributed's process group (models/base.py)."""

    def __init__(self, rank: int, size: int, device: str):
        self.rank, self.size, self.device = rank, size, torch.device(device)

    def gradients(self, parameters) -> None:
        import torch.distributed as dist

        parameters = list(parameters)
        for p in parameters:  # a parameter without a gradient here may have one elsewhere
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in parameters])  # one collective per step
        dist.all_reduce(flat)
        flat /= self.size
        start = 0
        for p in parameters:
            p.grad.copy_(flat[start : start + p.numel()].view_as(p.grad))
            start += p.numel()

    def mean(self, value: float) -> float:
        import torch.distributed as dist

        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total[0]) / self.size

    def any(self, flag: bool) -> bool:
        import torch.distributed as dist

        count = torch.tensor([int(bool(flag))], dtype=torch.int64, device=self.device)
        dist.all_reduce(count)
        return bool(count[0] > 0)


class WorkerProgress:
    """A worker's progress callback: rank 0 sends events to the driver (an epoch's always, a
    step's every STEP_EVENT_S) and learns of a cancel; all workers then stop at the same step."""

    def __init__(self, events, sync: GroupSync):
        self.events, self.sync = events, sync
        self.last, self.cancelled = -math.inf, False

    def __call__(self, event: dict) -> None:
        import ray

        now = time.monotonic()
        if self.sync.rank == 0 and (event.get("epoch_done") or now - self.last >= STEP_EVENT_S):
            self.cancelled = ray.get(self.events.put.remote(event))
            self.last = now
        if self.sync.any(self.cancelled):
            raise Cancelled("cancelled")


def fit_worker(setup: dict) -> dict | None:
    """One Ray Train worker: fit the model on this rank's shard; rank 0 returns the weights."""
    import ray
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(1)  # one CPU each: more workers, not more threads, use more cores
    device = str(ray.train.torch.get_device()) if setup["gpu"] else "cpu"
    model = ray.get(setup["model"])
    tokens = joined(setup["shards"][rank], ray.get)  # this worker's rows, a writable copy
    sync = GroupSync(rank, size, device)
    config: FitConfig = setup["config"]
    # max_time counts from the driver's start: Ray's start-up is spent from it too
    left = max(config.max_time - max(time.time() - setup["sent"], 0.0), 1.0)
    config = dataclasses.replace(
        config,
        seed=config.seed + RANK_SEED_STRIDE * rank,
        device=device,
        max_time=left,
        sync=sync,
    )
    fitted = model.fit(tokens, config, WorkerProgress(setup["events"], sync))
    if rank != 0:
        return None
    _, tensors = model.state()  # as arrays: Ray Train refuses to return torch tensors
    return {"fitted": fitted, "tensors": {k: v.numpy() for k, v in tensors.items()}}
