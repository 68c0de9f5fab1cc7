"""Ultralytics' official checkpoints by name: which names Patchwise knows, and where to find them."""
from __future__ import annotations

OFFICIAL_NAMES = (
    "yolo11n.pt", "yolo11s.pt", "yolo11n-seg.pt", "yolov8n.pt", "yolov8n-seg.pt", "yolov10n.pt",
    "yolo26n.pt", "rtdetr-l.pt", "FastSAM-s.pt",
)


def is_official(name: str) -> bool:
    return name in OFFICIAL_NAMES
