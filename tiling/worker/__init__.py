"""Visitors' models in a jailed worker process: OS limits, an audit hook, a wall deadline per call, a
plain-array protocol, and a bounded pool; the server process never opens or runs their bytes."""
from .failures import WorkerError
from .limits import WorkerLimits
from .pool import WorkerPool, default_pool
from .remote_model import RemoteModel

__all__ = ["RemoteModel", "WorkerError", "WorkerLimits", "WorkerPool", "default_pool"]
