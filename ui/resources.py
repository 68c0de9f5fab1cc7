"""Cached, shared resources of the app: models, decoded images, raw predictions.

Everything here is keyed on content hashes, shared by all sessions (a class of students on the
default page hits one cache entry) and bounded with ``max_entries`` so memory cannot grow without
limit. Models are guarded by their own lock (Ultralytics models are not thread-safe).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

import tiling

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
SAMPLES_DIR = ROOT / "samples"
BUNDLED_MODELS = {
    "Demo detector (bundled: car, truck, plane)": MODELS_DIR / "synth-yolo11n-det.pt",
    "Demo segmenter (bundled: car, truck, plane)": MODELS_DIR / "synth-yolo11n-seg.pt",
}
OFFICIAL_MODELS = ("yolo11n.pt", "yolo11n-seg.pt", "yolov8n.pt", "yolov8n-seg.pt", "rtdetr-l.pt", "FastSAM-s.pt")
UPLOAD_MODEL = "Upload my own .pt"
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
MAX_PIXELS = int(os.environ.get("PATCHWISE_MAX_PIXELS", 60_000_000))
MAX_TILES = int(os.environ.get("PATCHWISE_MAX_TILES", 2_000))
MAX_MODEL_MB = int(os.environ.get("PATCHWISE_MAX_MODEL_MB", 200))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ImageItem:
    """One image the visitor can look at: its name, pixels, content key and optional labels."""

    name: str
    key: str
    image: np.ndarray
    labels: tiling.Detections | None = None
    sample: bool = False  # a bundled sample: its results are cached apart from uploads' (see RESULT_CACHES)


RUNTIME_CHOICES = {"Fastest for this CPU (auto)": "auto", "Faster, bf16 (boxes may move 1-2 px)": "auto:bf16",
                   "Plain PyTorch": "torch"}
OPTIMIZING = "Loading the model and optimizing it for this CPU (once per model, for everyone)…"


def _runtime_args(choice: str) -> dict:
    """A RUNTIME_CHOICES value ("auto", "auto:bf16", ...) as ``load_model`` keyword arguments."""
    runtime, _, precision = choice.partition(":")
    return {"runtime": runtime, "precision": precision or "fp32"}


@st.cache_resource(max_entries=4, show_spinner=OPTIMIZING)
def _model_from_bytes(digest: str, runtime: str, _data: bytes, label: str) -> tiling.UltralyticsModel:
    return tiling.load_model(_data, name=label, **_runtime_args(runtime))


@st.cache_resource(max_entries=2, show_spinner="Fetching the official checkpoint…")
def _official_model(name: str, runtime: str) -> tiling.UltralyticsModel:
    return tiling.load_model(name, **_runtime_args(runtime))


def load_model_bytes(data: bytes, label: str, runtime: str = "auto") -> tiling.UltralyticsModel:
    """Load (once per distinct file and runtime, for every session) a checkpoint given as bytes."""
    if len(data) > MAX_MODEL_MB * 1024 * 1024:
        raise tiling.ModelError(f"{label} is {len(data) / 1e6:.0f} MB; the limit here is {MAX_MODEL_MB} MB")
    return _model_from_bytes(sha256(data), runtime, data, label)


def load_bundled(path: Path, runtime: str = "auto") -> tiling.UltralyticsModel:
    if not path.exists():
        raise tiling.ModelError(f"the bundled model {path.name} is missing from this installation")
    return load_model_bytes(path.read_bytes(), path.name, runtime)


def load_official(name: str, runtime: str = "auto") -> tiling.UltralyticsModel:
    return _official_model(name, runtime)


@st.cache_resource(max_entries=12, show_spinner=False)
def _decode(digest: str, _data: bytes, label: str) -> np.ndarray:
    return tiling.read_image(_data, max_pixels=MAX_PIXELS)


def decode_image(data: bytes, label: str) -> tuple[str, np.ndarray]:
    """(content key, BGR pixels); raises ``tiling.ImageError`` with the file's name in the message."""
    digest = sha256(data)
    try:
        return digest, _decode(digest, data, label)
    except tiling.ImageError as exc:
        raise tiling.ImageError(str(exc).replace("the uploaded image", label)) from None


def sample_paths() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.glob("*") if p.suffix.lower().lstrip(".") in IMAGE_TYPES)


def load_sample(path: Path) -> ImageItem:
    """A fresh item (sessions may attach their own labels to it) over pixels and labels read once."""
    stat = path.stat()
    key, image, labels = _read_sample(str(path), stat.st_mtime_ns, stat.st_size)
    return ImageItem(path.name, key, image, labels, sample=True)


@st.cache_resource(max_entries=16, show_spinner=False)
def _read_sample(path: str, mtime_ns: int, size: int) -> tuple[str, np.ndarray, tiling.Detections | None]:
    """Every rerun lists the samples; reading, hashing and parsing their labels each time cost ~80 ms."""
    file = Path(path)
    key, image = decode_image(file.read_bytes(), file.name)
    labels_path = file.with_suffix(".txt")
    labels = tiling.load_yolo_labels(labels_path, image.shape) if labels_path.exists() else None
    return key, image, labels


class SharedCache:
    """A bounded LRU shared by all sessions, computing each key once even when sessions ask together.

    Used where ``st.cache_resource`` cannot be: the computation reports progress to the page of
    the session that runs it, and Streamlit's caches would replay that element on later hits.
    """

    def __init__(self, max_entries: int, ttl: float):
        self.max_entries, self.ttl = max_entries, ttl
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict = {}

    def get(self, key, compute):
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None and time.monotonic() - hit[0] < self.ttl:
                    self._items.move_to_end(key)
                    return hit[1]
            value = compute()
            with self._lock:
                self._items[key] = (time.monotonic(), value)
                self._items.move_to_end(key)
                while len(self._items) > self.max_entries:
                    old, _ = self._items.popitem(last=False)
                    self._key_locks.pop(old, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Every new visitor first sees a bundled sample, so the samples' results are kept apart from uploads':
# a class uploading 20 images at once used to evict them, and the next visitor's page then spent
# 5 CPU-s re-running the default sample.
RESULT_CACHES = {sample: {"tiled": SharedCache(max_entries=16, ttl=3600), "full": SharedCache(max_entries=16, ttl=3600)}
                 for sample in (False, True)}


def tiled_prediction(image_key: str, model_key: str, tile_size: int, overlap: float, iou: float, raw_conf: float,
                     batch_size: int, include_full: bool, full_imgsz: int, image: np.ndarray, model,
                     progress=None, sample: bool = False) -> tiling.TiledPrediction:
    """The expensive part: the model over every tile. Threshold and merge changes never reach here."""
    key = (image_key, model_key, tile_size, round(overlap, 4), round(iou, 4), round(raw_conf, 4), batch_size,
           include_full, full_imgsz if include_full else 0)
    return RESULT_CACHES[sample]["tiled"].get(key, lambda: tiling.predict_tiled(
        image, model, tile_size=tile_size, overlap=overlap, conf=raw_conf, iou=iou, raw_conf=raw_conf,
        batch_size=batch_size, include_full=include_full, full_imgsz=full_imgsz, progress=progress,
        max_tiles=MAX_TILES))


def full_prediction(image_key: str, model_key: str, imgsz: int, iou: float, raw_conf: float, image: np.ndarray,
                    model, sample: bool = False) -> tiling.Detections:
    key = (image_key, model_key, imgsz, round(iou, 4), round(raw_conf, 4))
    return RESULT_CACHES[sample]["full"].get(
        key, lambda: tiling.predict_full(image, model, imgsz=imgsz, conf=raw_conf, iou=iou))


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Stitching the dense class map over tiles…")
def dense_map(image_key: str, model_key: str, tile_size: int, conf: float, _image: np.ndarray, _model) -> np.ndarray:
    return tiling.dense_class_map(_image, _model, tile_size=tile_size, overlap=0.5, pad=32, conf=conf)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner="Looking for a good tile size…")
def suggestion(image_key: str, model_key: str, _image: np.ndarray, _model) -> tiling.TileSuggestion:
    return tiling.suggest_tile_size(_image, _model)
