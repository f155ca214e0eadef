"""The Ray cluster this process sends work to (generate_into's and train()'s ``engine => 'ray'``).

Ray connects a process to one cluster, so the setting is the process's: ``connect(..., ray =>)``,
a profile's ``ray``, or ``duck-synth serve --ray`` name it, and the first call that needs Ray
connects. An address is ``'local'`` (a Ray started in this process, on 127.0.0.1, no dashboard),
``'auto'`` (the cluster ``ray start --head`` runs on this machine), ``'ray://host:10001'`` (a
remote cluster through Ray Client, ``pip install 'ray[client]'``) or a ``host:port`` of a head
node. A Ray the program started itself (``ray.init()`` before connecting) is used as it is.

Ray is optional (``pip install 'duck_synth[ray]'``): without it, asking for it is a one-line error.
A Ray cluster started without token authentication (``RAY_AUTH_MODE=token``) lets anyone who
reaches its ports run code on it: it must sit on a private network.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from types import ModuleType

from .. import caller
from ..errors import SynthError

LOCAL = "local"
# Ray needs a shared-memory object store of at least 75 MiB; containers often have a small
# /dev/shm, so a local Ray asks for little and spills to disk beyond it
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
MIN_OBJECT_STORE_BYTES = 78_643_200

_lock = threading.Lock()
_address: str | None = None
_started_here: str | None = None  # the temporary folder of a local Ray this process started


def prepare_environment() -> None:
    """What Ray reads when it is first imported: a local Ray binds 127.0.0.1 only and reports
    no usage. Ray's token authentication (on by default for a local Ray since Ray 2.59) is
    left as the cluster sets it."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def require_ray(what: str) -> ModuleType:
    """The ray module, or a one-line error saying how to install it."""
    prepare_environment()
    try:
        import ray
    except ImportError:
        raise SynthError(
            f"{what}: Ray is not installed; pip install 'duck_synth[ray]' (or give engine => "
            "'local')"
        ) from None
    return ray


def use(address: str | None) -> None:
    """Make ``address`` the cluster of this process (None: keep what is set)."""
    global _address
    if address is None:
        return
    if not isinstance(address, str) or not address.strip():
        raise SynthError(
            f"ray: give 'local', 'auto', 'ray://host:port' or host:port, not {address!r}"
        )
    with _lock:
        if _address not in (None, address) and _initialized():
            raise SynthError(
                f"ray: this process is connected to Ray at '{_address}'; one process uses one "
                f"cluster (asked for '{address}')"
            )
        _address = address.strip()


def address() -> str:
    """The cluster this process sends work to ('local' unless one was named)."""
    return _address or LOCAL


def ray_for(what: str) -> ModuleType:
    """The ray module, connected to this process's cluster (connecting on first use)."""
    if caller.rights().remote and _address is None:
        raise SynthError(
            f"{what}: this server sends no work to Ray; start it with duck-synth serve --ray"
        )
    ray = require_ray(what)
    with _lock:
        if ray.is_initialized():
            return ray
        target = address()
        try:
            if target == LOCAL:
                start_local(ray)
            else:
                ray.init(address=target, log_to_driver=False)
        except Exception as error:  # Ray's errors are many kinds; say which cluster failed
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise SynthError(f"{what}: cannot connect to Ray at '{target}': {first}") from None
    return ray


def start_local(ray: ModuleType, cpus: int | None = None, object_store_bytes: int | None = None):
    """A Ray on this machine only: 127.0.0.1, no dashboard, a short temporary folder (its
    sockets' paths must stay under 107 bytes) removed at exit."""
    global _started_here
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:  # read when ray was first imported
        raise SynthError(
            "ray: a local Ray would listen beyond this machine (ray was imported with "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER unset or 1); import duck_synth before ray, or "
            "start Ray yourself"
        )
    folder = tempfile.mkdtemp(prefix="dsr_", dir="/tmp")
    ray.init(
        num_cpus=cpus or os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=max(
            object_store_bytes or LOCAL_OBJECT_STORE_BYTES, MIN_OBJECT_STORE_BYTES
        ),
        _temp_dir=folder,
        log_to_driver=False,
    )
    _started_here = folder
    atexit.register(stop_local)


def local_folder() -> str | None:
    """The temporary folder of the local Ray this process started (None: it started none)."""
    return _started_here


def stop_local() -> None:
    """Shut down the local Ray this process started, and remove its folder."""
    global _started_here
    if _started_here is None:
        return
    import ray

    ray.shutdown()
    shutil.rmtree(_started_here, ignore_errors=True)
    _started_here = None


def _initialized() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()
