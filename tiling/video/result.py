"""One processed frame of a clip: the value every later stage (tracking, summary, writers, scores) reads."""
from __future__ import annotations

from dataclasses import dataclass

from ..detections import Detections


@dataclass
class FrameResult:
    """Frame ``index`` (0-based, of the whole clip) at ``seconds`` into it.

    ``raw``: the tile detections (and the full-frame pass when it ran) before merging, kept so another
    merge spec or tracker reruns without the model (:func:`~tiling.video.run.retrack`). ``detections``:
    ``raw`` merged and tracked, sorted by confidence, with ``data["track_id"]`` (int64, -1 untracked).
    ``full_frame``: the frame ran as one ordinary pass (no tiles), whose ``raw`` is only filtered, not merged.
    """

    index: int
    seconds: float
    raw: Detections
    detections: Detections
    full_frame: bool = False
