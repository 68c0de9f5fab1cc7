"""Folder runs on a Ray cluster with Ray Data: the files of ``patchwise predict``, written by many machines.

One Ray Data pipeline, streaming with backpressure, so only a few images are held anywhere at a time,
however many the run has:

1. cut (reader actors, :mod:`.cut`): read an image and plan its tiles. An image of up to
   ``piece_tiles`` tiles is one work item; a larger one is cut into bands of whole tile rows, one item
   each, so that its tiles spread over the actors.
2. detect (the model actors, :mod:`.detect`): each loads the model once with ``tiling.load_model``
   (the checkpoint is vetted on every worker, as anywhere) and runs ``predict_tiled`` on a whole
   image, merged as the single-process CLI merges it, or the model alone on a band's tiles.
3. write (writer actors, :mod:`.write`): a whole image's files (:mod:`tiling.outputs`) as soon as it
   is done.

Readers and writers are long-lived actors that hold no CPU, one of each per two model actors, so the
run has a fixed set of processes however many images it has.
A band's raw detections (boxes, no pixels) come back to the driver; when all bands of an image are in,
one task merges them in ``predict_tiled``'s order and writes that image's files. A failure belongs to
one image: its error is reported and the run goes on. Ray restarts actors that die and retries their
work; an image whose files exist is skipped, so a rerun finishes what an interrupted run left.
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # workers import this package first: nothing downloads there either

from .cluster import ClusterError, ClusterSpec  # noqa: E402
from .folder import FolderRun, predict_folder  # noqa: E402

__all__ = ["ClusterError", "ClusterSpec", "FolderRun", "predict_folder"]
