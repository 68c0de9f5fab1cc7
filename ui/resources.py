"""Cached, shared resources of the app: models, decoded images, raw predictions.

Everything here is keyed on content hashes and on the pipeline's specs, shared by all sessions (a
class of students on the default page hits one cache entry) and bounded, so memory cannot grow without
limit. Models are guarded by their own lock (Ultralytics models are not thread-safe).
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

import tiling
from tiling.imageio import IMAGE_SUFFIXES, MAX_PIXELS
from tiling.models.bundled import BundledAssets
from tiling.models.runtimes import Precision, Runtime
from tiling.models.vetting import MAX_MODEL_MB
from tiling.util import sha256_of
from tiling.worker import RemoteModel

from .visitor_models import remote_model

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
SAMPLES_DIR = ROOT / "samples"
BUNDLED = BundledAssets(MODELS_DIR, SAMPLES_DIR)  # the demo models' shipped 8-bit copies, and their samples
BUNDLED_MODELS = {
    "Demo detector (aerial)": MODELS_DIR / "synth-yolo11n-det.pt",
    "Demo segmenter (aerial)": MODELS_DIR / "synth-yolo11n-seg.pt",
}
OBB_DEMO = MODELS_DIR / "synth-yolo11n-obb.pt"  # oriented boxes; listed once it has been trained and added
if OBB_DEMO.is_file():
    BUNDLED_MODELS["Demo oriented boxes (aerial)"] = OBB_DEMO
UPLOAD_MODEL = "Upload my own model"
IMAGE_TYPES = [s.lstrip(".") for s in IMAGE_SUFFIXES]
MAX_TILES = int(os.environ.get("PATCHWISE_MAX_TILES", 2_000))
# All of one visitor's uploaded images together: each is decoded once to check it, and the one shown is kept.
SESSION_PIXELS = int(os.environ.get("PATCHWISE_SESSION_PIXELS", 150_000_000))
Choice = tuple[Runtime, Precision]  # what the Speed radio asks load_model for
FULL_PRECISION: Choice = (Runtime.AUTO, Precision.FP32)
RUNTIME_CHOICES: dict[str, Choice] = {
    "Fast: 8-bit numbers": (Runtime.AUTO, Precision.INT8), "Full precision": FULL_PRECISION,
    "Faster, bf16 (boxes may move 1-2 px)": (Runtime.AUTO, Precision.BF16),
    "Plain PyTorch": (Runtime.TORCH, Precision.FP32)}
FAST, FULL = "Fast: 8-bit numbers", "Full precision"  # the bundled models' default, and everyone else's
OPTIMIZING = "Loading the model and optimizing it for this CPU (once per model, for everyone)…"
QUANTIZING = ("Making an 8-bit copy of the model, checked against full precision (about half a minute, once per "
              "model and calibration image, for everyone)…")
# 8-bit copies of visitors' models (uploaded or official) are made here only up to this many parameters
# (YOLO11s: 9.4 M; YOLO11m: 20 M): NNCF on a larger one holds a core for minutes.
INT8_MAX_PARAMS = int(os.environ.get("PATCHWISE_INT8_MAX_PARAMS", 15_000_000))
_CALIBRATION = "int8_calibration"  # session state: model key -> the image item its 8-bit copy calibrates on
_QUANTIZING = "int8_quantizing"  # session state: a lock, so a session makes one 8-bit copy at a time


@dataclass
class ImageItem:
    """One image the visitor can look at: a safe unique name, content key, size, pixels and optional labels.

    ``pixels`` decodes on first use through the shared cache, so a rerun decodes only the image shown.
    """

    name: str
    key: str
    size: tuple[int, int]  # (width, height), from the file's header
    data: bytes
    labels: tiling.Detections | None = None
    sample: bool = False  # a bundled sample: its results are cached apart from uploads' (see RESULT_CACHES)
    label_source: str = ""  # the file the labels came from, as messages name it
    scored_classes: tuple[int, ...] | None = None  # the model's classes its labels can judge (None: all)

    @property
    def image(self) -> np.ndarray:
        return _decode(self.key, self.data, self.name)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size[1], self.size[0], 3)

    def scored(self, detections: tiling.Detections) -> tiling.Detections:
        """The detections its labels can judge: a class the labels do not know is not counted as wrong."""
        if self.scored_classes is None:
            return detections
        return detections.filter(classes=self.scored_classes)


def _runtime_args(choice: Choice, calibration: tuple = ()) -> dict:
    """A RUNTIME_CHOICES value as ``load_model`` keyword arguments; an 8-bit copy is calibrated on
    ``calibration`` (image items, or sample files), or is the shipped one when that is empty."""
    runtime, precision = choice
    args = {"runtime": runtime, "precision": precision}
    if precision is Precision.INT8 and calibration:
        args["calibration"] = [c if isinstance(c, Path) else c.image for c in calibration]
    return args


def _calibration_for(model_key: str, items, task: str) -> tuple[str, tuple]:
    """(cache key, calibration) for a visitor's model's 8-bit copy: one image, chosen once per model in
    a session, so that new uploads never make a new copy: the visitor's first image, or the bundled
    samples of the model's kind (``BUNDLED.samples_for``) when the page shows those."""
    chosen = st.session_state.setdefault(_CALIBRATION, {})
    if model_key not in chosen:
        first = next(iter(items or ()), None)
        chosen[model_key] = first if first is not None and not first.sample else None
    item = chosen[model_key]
    if item is not None:
        return item.key, (item,)
    return f"samples-{task}", tuple(BUNDLED.samples_for(task))


def _param_count(model: tiling.UltralyticsModel) -> int | None:
    """Parameters of a checkpoint's network; None for an export (it runs as it was exported)."""
    if isinstance(model, RemoteModel):
        return model.params
    net = getattr(model.yolo, "model", None)
    return None if net is None else sum(p.numel() for p in net.parameters())


def _with_int8(full, eight, model_key: str, items) -> tuple[tiling.UltralyticsModel, str | None]:
    """(model, note): ``eight(key, calibration)``, the 8-bit model, when this page makes its copy; else
    ``full()``, the full-precision one, with a one-line note saying why (too large, calibration images
    unusable, or this session already making a copy)."""
    from tiling.models.calibration import CalibrationError

    fp32 = full()
    params = _param_count(fp32)
    if params is None:
        return eight("", ()), None
    if params > INT8_MAX_PARAMS:
        return fp32, (f"this model has {params / 1e6:.1f} M parameters; this page makes 8-bit copies of models of up "
                      f"to {INT8_MAX_PARAMS / 1e6:.0f} M, so it runs in full precision (the command line, "
                      "python -m tiling predict --precision int8, quantizes any size)")
    key, calibration = _calibration_for(model_key, items, fp32.task)
    lock = st.session_state.setdefault(_QUANTIZING, threading.Lock())
    if not lock.acquire(blocking=False):
        return fp32, "an 8-bit copy is being made for this page already; full precision runs meanwhile"
    try:
        with st.spinner(QUANTIZING):
            return eight(key, calibration), None
    except CalibrationError as exc:
        return fp32, f"{exc}; so the model runs in full precision"
    finally:
        lock.release()


@st.cache_resource(max_entries=4, show_spinner=OPTIMIZING)
def _model_from_bytes(digest: str, choice: Choice, _data: bytes, label: str, calib_key: str = "",
                      _calibration: tuple = ()) -> tiling.UltralyticsModel:
    return tiling.load_model(_data, name=label, bundled=BUNDLED, **_runtime_args(choice, _calibration))


@st.cache_resource(max_entries=2, show_spinner="Fetching the official checkpoint…")
def _official_model(name: str, choice: Choice, calib_key: str = "", _calibration: tuple = ()) -> tiling.UltralyticsModel:
    return tiling.load_model(name, bundled=BUNDLED, **_runtime_args(choice, _calibration))


def _check_model_size(data: bytes, label: str) -> None:
    if len(data) > MAX_MODEL_MB * 1024 * 1024:
        raise tiling.ModelError(f"{label} is {len(data) / 1e6:.0f} MB; the limit here is {MAX_MODEL_MB} MB")


def load_model_bytes(data: bytes, label: str, choice: Choice = FULL_PRECISION,
                     calibration=None) -> tuple[tiling.UltralyticsModel, str | None]:
    """(model, note): a visitor's model given as bytes, loaded in its worker process once per distinct file,
    runtime and calibration image for every session. At 8 bits (see :func:`_with_int8`) ``calibration``,
    the page's image items, gives the one image it calibrates on; the note says why full precision runs instead."""
    _check_model_size(data, label)
    digest = sha256_of(data)
    if choice[1] is not Precision.INT8:
        return remote_model(digest, choice, data, label, OPTIMIZING), None
    return _with_int8(lambda: remote_model(digest, FULL_PRECISION, data, label, OPTIMIZING),
                      lambda key, calib: remote_model(digest, choice, data, label, OPTIMIZING, key, calib), digest,
                      calibration)


def load_bundled(path: Path, choice: Choice = FULL_PRECISION) -> tiling.UltralyticsModel:
    """A bundled model; its 8-bit copy ships beside it in ``models/``, so it needs no calibration here."""
    if not path.exists():
        raise tiling.ModelError(f"the bundled model {path.name} is missing from this installation")
    data = path.read_bytes()
    _check_model_size(data, path.name)
    return _model_from_bytes(sha256_of(data), choice, data, path.name)


def load_official(name: str, choice: Choice = FULL_PRECISION, calibration=None) -> tuple[tiling.UltralyticsModel, str | None]:
    """(model, note) for an official checkpoint, as :func:`load_model_bytes` for its 8-bit copy."""
    usable, why = official_availability(name)
    if not usable:
        raise tiling.ModelError(f"{name} is {why}")
    if choice[1] is not Precision.INT8:
        return _official_model(name, choice), None
    return _with_int8(lambda: _official_model(name, FULL_PRECISION),
                      lambda key, calib: _official_model(name, choice, key, calib), f"official:{name}", calibration)


def official_availability(name: str) -> tuple[bool, str]:
    """(usable here, why) for an official name: pre-fetched on this host, downloadable, or neither."""
    from tiling.models.official import availability

    return availability(name)


@st.cache_resource(max_entries=8, show_spinner=False)
def _decode(digest: str, _data: bytes, label: str) -> np.ndarray:
    try:
        return tiling.read_image(_data, max_pixels=MAX_PIXELS)
    except tiling.ImageError as exc:
        raise tiling.ImageError(str(exc).replace("the uploaded image", label)) from None


def image_item(data: bytes, name: str, digest: str | None = None) -> ImageItem:
    """An upload as an item, its size read from the header; ``tiling.ImageError`` if it cannot be used."""
    digest = digest or sha256_of(data)
    try:
        width, height = tiling.imageio.image_size(data)
    except tiling.ImageError as exc:
        raise tiling.ImageError(str(exc).replace("the uploaded image", name)) from None
    return ImageItem(name, digest, (width, height), data)


SAMPLE_CLASSES = {0: "car", 1: "truck", 2: "plane"}  # the generated scenes' classes (scripts/scenes.py)


def sample_paths() -> list[Path]:
    """The bundled samples, the lesson sample (objects at several sizes: scripts/make_samples.py) first."""
    return sorted((p for p in SAMPLES_DIR.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: (not p.name.startswith("lesson-"), p.name))


def load_sample(path: Path) -> ImageItem:
    """A fresh item (sessions may attach their own labels to it) over bytes and labels read once."""
    stat = path.stat()
    data, key, size, labels = _read_sample(str(path), stat.st_mtime_ns, stat.st_size)
    return ImageItem(path.name, key, size, data, labels, sample=True, label_source="the sample's labels")


@st.cache_resource(max_entries=16, show_spinner=False)
def _read_sample(path: str, mtime_ns: int, size: int):
    """Every rerun lists the samples: their bytes, hash and labels are read once per file version."""
    file = Path(path)
    data = file.read_bytes()
    width, height = tiling.imageio.image_size(data)
    labels_path = file.with_suffix(".txt")
    labels = (tiling.load_yolo_labels(labels_path, (height, width), names=SAMPLE_CLASSES) if labels_path.exists()
              else None)
    return data, sha256_of(data), (width, height), labels


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


# Every new visitor first sees a bundled sample, so the samples' results are kept apart from uploads':
# a class uploading many images at once cannot evict them and make the next visitor's page run again.
RESULT_CACHES = {sample: {"tiled": SharedCache(max_entries=16, ttl=3600), "full": SharedCache(max_entries=16, ttl=3600)}
                 for sample in (False, True)}


def tiled_prediction(item: ImageItem, model, model_key: str, tiles: tiling.TileSpec, infer: tiling.InferSpec,
                     merge: tiling.MergeSpec, progress=None) -> tiling.TiledPrediction:
    """The expensive part: the model over every tile, cached on (image, model, tiles, infer). A cached
    result is re-merged for ``merge`` without the model; a fresh one is merged once, with ``merge``."""
    pred = RESULT_CACHES[item.sample]["tiled"].get(
        (item.key, model_key, tiles, infer),
        lambda: tiling.predict_tiled(item.image, model, tiles, infer, merge, progress=progress))
    return pred.remerge(merge)


def full_prediction(item: ImageItem, model, model_key: str, infer: tiling.InferSpec) -> tiling.Detections:
    spec = infer.full_pass
    return RESULT_CACHES[item.sample]["full"].get((item.key, model_key, spec),
                                                  lambda: tiling.predict_full(item.image, model, spec))


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Stitching the dense class map over tiles…")
def dense_map(image_key: str, model_key: str, tile_size: int, conf: float, _image: np.ndarray, _model) -> np.ndarray:
    return tiling.dense_class_map(_image, _model, tile_size=tile_size, overlap=0.5, pad=32, conf=conf)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner="Looking for a good tile size…")
def suggestion(image_key: str, model_key: str, _image: np.ndarray, _model) -> tiling.TileSuggestion:
    return tiling.suggest_tile_size(_image, _model, base=tiling.TileSpec(max_tiles=MAX_TILES))
