"""How many threads a training runs on: the cores free when it starts.

torch's default is every core; when other processes already use them, its threads wait on one
another (OpenMP spins for the thread that is not running) and each step takes several times
longer: diamonds took 28.4 s an epoch on 2 threads beside one busy process, 2.9 s on 1. So a
training measures how busy the cores are (``/proc/stat`` over a tenth of a second) and runs on
the ones left, at least 1. ``threads =>`` or ``DUCK_SYNTH_TRAIN_THREADS`` fixes the number:
weights are bit-identical between runs on the same number of threads, not across numbers (the
reductions split differently), so the summary and ``models()`` say how many were used.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

VARIABLE = "DUCK_SYNTH_TRAIN_THREADS"
SAMPLE_S = 0.1


def training_threads(given: int | None) -> int:
    """The option's number, else the process's setting, else the cores free now."""
    if given is not None:
        return given
    fixed = os.environ.get(VARIABLE, "")
    if fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    return free_cores()


def free_cores(sample_s: float = SAMPLE_S) -> int:
    """The cores other processes leave idle, at least 1, at most torch's default threads (where
    /proc/stat cannot be read: torch's default)."""
    most = torch.get_num_threads()
    first = _cpu_times()
    if first is None:
        return most
    time.sleep(sample_s)
    second = _cpu_times()
    total, idle = second[0] - first[0], second[1] - first[1]
    cores = os.cpu_count() or 1
    if total <= 0:
        return most
    return max(1, min(most, round(cores * idle / total)))


def _cpu_times() -> tuple[int, int] | None:
    """(all, idle) jiffies of the machine so far."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block on ``count`` intra-op threads (the caller's setting restored after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
