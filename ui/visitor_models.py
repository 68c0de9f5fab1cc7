"""Visitors' uploaded models on the page: opened and run in worker processes (:mod:`tiling.worker`),
held by the session that uploaded them, never loaded into the server."""
from __future__ import annotations

import contextlib
from pathlib import Path

import streamlit as st

import tiling
from tiling.models.runtimes import Precision, Runtime
from tiling.worker import RemoteModel, default_pool

_WORKER_OWNER = "worker_owner"  # session state: held while the session lives; its workers end with it


class _SessionOwner:
    """Kept in a session's state: when the session ends and it is collected, the pool ends the session's workers."""


def remote_model(digest: str, choice: tuple[Runtime, Precision], data: bytes, label: str, spinner: str,
                 calib_key: str = "", calibration: tuple = ()) -> RemoteModel:
    """A visitor's model in its worker, loaded once per file, runtime and calibration image for every session;
    ``spinner`` shows while it loads. An 8-bit copy calibrates on ``calibration`` (image items or files)."""
    runtime, precision = choice
    pool = default_pool()
    owner = st.session_state.setdefault(_WORKER_OWNER, _SessionOwner())
    images = [tiling.read_image(c) if isinstance(c, Path) else c.image for c in calibration]
    loaded = pool.is_loaded(digest, pool.variant(runtime, precision, calib_key))
    with contextlib.nullcontext() if loaded else st.spinner(spinner):
        return pool.load(data, label, runtime, precision, images, calib_key, owner, digest)


def warm_worker() -> None:
    """Start a worker process for a visitor's model before the file arrives (see ``WorkerPool.warm``)."""
    default_pool().warm()
