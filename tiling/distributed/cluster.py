"""Where a Ray run goes and how wide: the cluster to join (or start), how many model actors, and the
cores each actor may use on a machine it shares with others."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import checks
from ..optional import MissingExtra, require
from ..names import display_name
from ..util import usable_cpus
from .items import describe

# Settings read from the environment that the workers must see as the driver does.
FORWARDED_ENV = ("YOLO_OFFLINE", "PATCHWISE_MAX_PIXELS", "PATCHWISE_MAX_MODEL_MB", "PATCHWISE_MAX_PARAMS",
                 "PATCHWISE_MAX_TILES")


class ClusterError(RuntimeError):
    """The cluster could not run the pipeline at all (not one image's problem): one line saying why."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where and how wide a Ray run goes.

    ``address``: a running cluster (``ray://host:10001`` or ``host:6379``); None joins ``RAY_ADDRESS``
    when set, else starts a local cluster on this machine. ``actors``: model copies (default: the
    cluster's CPUs over ``cpus_per_actor``), each holding ``cpus_per_actor`` CPUs and ``gpus_per_actor``
    GPUs; ``images_per_call`` work items per actor call. ``io_actors``: reader actors, and as many
    writer actors, holding no CPU (default: one per two model actors; more when a model actor detects on
    an image much faster than one reads it, as on a GPU). ``piece_tiles``: an image with more tiles is
    cut into bands spread over the actors. ``max_restarts`` / ``max_task_retries``: how often Ray
    restarts a dead actor and retries its work (-1: always).
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    images_per_call: int = 1
    io_actors: int | None = None
    piece_tiles: int = 256
    max_restarts: int = -1
    max_task_retries: int = -1

    def __post_init__(self) -> None:
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"address must be text such as host:6379, got {self.address!r}")
        if self.actors is not None:
            object.__setattr__(self, "actors", checks.whole("actors", self.actors, 1, 100_000))
        object.__setattr__(self, "cpus_per_actor", checks.number("cpus_per_actor", self.cpus_per_actor, 0.0, 1024.0))
        object.__setattr__(self, "gpus_per_actor", checks.number("gpus_per_actor", self.gpus_per_actor, 0.0, 64.0))
        object.__setattr__(self, "images_per_call", checks.whole("images_per_call", self.images_per_call, 1, 1024))
        if self.io_actors is not None:
            object.__setattr__(self, "io_actors", checks.whole("io_actors", self.io_actors, 1, 100_000))
        object.__setattr__(self, "piece_tiles", checks.whole("piece_tiles", self.piece_tiles, 1, 10_000_000))
        object.__setattr__(self, "max_restarts", checks.whole("max_restarts", self.max_restarts, -1, 1_000_000))
        object.__setattr__(self, "max_task_retries",
                           checks.whole("max_task_retries", self.max_task_retries, -1, 1_000_000))


def connect(address: str | None) -> bool:
    """Join the cluster (or start a local one); True when this call started Ray and must stop it."""
    try:
        ray = require("ray", "ray")
        require("ray.data", "ray")
    except MissingExtra as exc:
        raise ClusterError(str(exc)) from None

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    try:
        ray.init(address=address, include_dashboard=False, runtime_env={"env_vars": env}, logging_level="WARNING")
    except Exception as exc:  # a wrong address is a ConnectionError, a stale one a RuntimeError
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise ClusterError(f"cannot start or reach the Ray cluster ({display_name(where)}): "
                           f"{describe(exc)}") from None
    return True


def actor_count(cluster: ClusterSpec) -> int:
    import ray

    if cluster.actors is not None:
        return cluster.actors
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // cluster.cpus_per_actor) if cluster.cpus_per_actor else int(cpus))


def claim_cores(cpus: float) -> list:
    """Pin this worker to ``cpus`` cores of its machine that no other Patchwise worker holds, so that
    actors sharing a machine do not each start a thread per core. The claim is a file lock per core,
    released by the system when the process ends (a restarted actor claims afresh); no pinning when
    every core is taken or the actor may use them all."""
    import fcntl
    import tempfile

    want, cores = int(cpus), sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if want < 1 or want != cpus or want >= usable_cpus() or not cores:
        return []
    folder = Path(tempfile.gettempdir()) / f"patchwise-cores-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    held, mine = [], []
    for core in cores:
        lock = open(folder / f"{core}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        held.append(lock)
        mine.append(core)
        if len(mine) == want:
            os.sched_setaffinity(0, mine)
            return held
    for lock in held:
        lock.close()
    return []
