"""Folder runs on a Ray cluster with Ray Data: the files of ``patchwise predict``, written by many machines.

One Ray Data pipeline, streaming with backpressure, so only a few images are held anywhere at a time,
however many the run has:

1. cut (tasks): read an image and plan its tiles. An image of up to ``piece_tiles`` tiles is one work
   item; a larger one is cut into bands of whole tile rows, one item each, so that its tiles spread
   over the actors.
2. detect (an actor pool): each actor loads the model once with ``tiling.load_model`` (the checkpoint
   is vetted on every worker, as anywhere) and runs ``predict_tiled`` on a whole image, merged as the
   single-process CLI merges it, or the model alone on a band's tiles.
3. write (tasks): a whole image's files (:mod:`tiling.outputs`) as soon as it is done.

A band's raw detections (boxes, no pixels) come back to the driver; when all bands of an image are in,
one task merges them in ``predict_tiled``'s order and writes that image's files. A failure belongs to
one image: its error is reported and the run goes on. Ray restarts actors that die and retries their
work; an image whose files exist is skipped, so a rerun finishes what an interrupted run left.
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # workers import this module first: nothing downloads there either

import pickle  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Callable, Iterator, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from . import checks  # noqa: E402
from .detections import Detections  # noqa: E402
from .grid import TileSpec, row_groups  # noqa: E402
from .merge import MergeSpec, merge as merge_detections, truncated_flags  # noqa: E402
from .models import InferSpec, ModelError  # noqa: E402
from .outputs import Entry, OutputFolder, display_name, entries, list_images, run_key  # noqa: E402

if TYPE_CHECKING:
    from .raster import BandSpec

Progress = Callable[[int, int], None]
_FORWARDED_ENV = ("YOLO_OFFLINE", "PATCHWISE_MAX_PIXELS", "PATCHWISE_MAX_MODEL_MB", "PATCHWISE_MAX_PARAMS",
                  "PATCHWISE_MAX_TILES")


class ClusterError(RuntimeError):
    """The cluster could not run the pipeline at all (not one image's problem): one line saying why."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where and how wide a Ray run goes.

    ``address``: a running cluster (``ray://host:10001`` or ``host:6379``); None joins ``RAY_ADDRESS``
    when set, else starts a local cluster on this machine. ``actors``: model copies (default: the
    cluster's CPUs over ``cpus_per_actor``), each holding ``cpus_per_actor`` CPUs and ``gpus_per_actor``
    GPUs; ``images_per_call`` work items per actor call. ``piece_tiles``: an image with more tiles is
    cut into bands spread over the actors. ``max_restarts`` / ``max_task_retries``: how often Ray
    restarts a dead actor and retries its work (-1: always).
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    images_per_call: int = 1
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
        object.__setattr__(self, "piece_tiles", checks.whole("piece_tiles", self.piece_tiles, 1, 10_000_000))
        object.__setattr__(self, "max_restarts", checks.whole("max_restarts", self.max_restarts, -1, 1_000_000))
        object.__setattr__(self, "max_task_retries",
                           checks.whole("max_task_retries", self.max_task_retries, -1, 1_000_000))


@dataclass
class FolderRun:
    """What a run did: ``images`` in its input list, ``done_before`` skipped as finished by an earlier
    run, ``written`` now, ``failed`` (name -> error, not written), ``objects`` in all written files."""

    images: int
    done_before: int
    written: int
    failed: dict[str, str]
    objects: int
    seconds: float


@dataclass
class _Item:
    """One work item flowing through the pipeline: a whole image, or band ``piece`` of ``pieces``."""

    entry: Entry
    piece: int = 0
    pieces: int = 1
    shape: tuple[int, int] = (0, 0)
    origin: tuple[int, int] = (0, 0)  # (x, y) of the band's top-left pixel in the image
    tiles: tuple[int, ...] = ()  # the band's tiles: their indices in the image's plan
    image: np.ndarray | None = None
    det: Detections | None = None  # merged for a whole image, raw (tile_index set) for a band
    objects: int = 0
    error: str = ""
    raster: bool = False  # read window by window (tiling.raster): always in bands, nodata left out
    valid: np.ndarray | None = None  # a raster band's valid (not nodata) pixels; None: all valid
    dropped: int = 0  # boxes lying mostly on nodata, left out


def _describe(exc: BaseException) -> str:
    """One line for a failed image: the library's own messages as they are, anything else with its type."""
    from .imageio import ImageError

    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, (ImageError, ModelError, ValueError)):
        return display_name(text)
    return display_name(f"{type(exc).__name__}: {text}"[:400])


# -- stage 1: cut -----------------------------------------------------------------------------------
def _cut(row: dict, tiles: TileSpec, infer: InferSpec, piece_tiles: int, max_pixels: int | None,
         bands: BandSpec | None, wgs84: bool = False) -> Iterator[dict]:
    """Read one image and cut it into work items (one, or bands of whole tile rows); a raster is read
    band by band, each band's window when its item is made, once it is known that its GeoJSON can be
    written (``wgs84``: it can be reprojected)."""
    entry: Entry = pickle.loads(row["item"])
    try:
        if _is_raster(entry.path, max_pixels):
            yield from _cut_raster(entry, tiles, infer, piece_tiles, max_pixels, bands, wgs84)
            return
        from .imageio import read_image

        image = read_image(entry.path, max_pixels=max_pixels)
        plan = tiles.plan(image.shape)
    except Exception as exc:  # reported for this image; the run goes on
        yield _row(_Item(entry, error=_describe(exc)))
        return
    h, w = image.shape[:2]
    if len(plan) <= piece_tiles or infer.include_full:  # the full-image pass needs the whole image in one place
        yield _row(_Item(entry, shape=(h, w), image=image))
        return
    spans = _bands(plan, piece_tiles)
    for k, (indices, y0, y1) in enumerate(spans):
        yield _row(_Item(entry, k, len(spans), (h, w), (0, y0), indices, np.ascontiguousarray(image[y0:y1])))


def _bands(plan: list, piece_tiles: int) -> list[tuple[tuple[int, ...], int, int]]:
    """(tile indices, y0, y1) of each band: whole rows of tiles (:func:`~tiling.grid.row_groups`, so an
    offset grid's rows go with the first grid's rows beside them), about ``piece_tiles`` tiles in all,
    and the rows of pixels they cover."""
    per_row = max((len(row) for row in row_groups(plan, 1)), default=1)
    return [(tuple(t.index for t in band), min(t.y0 for t in band), max(t.y1 for t in band))
            for band in row_groups(plan, max(1, piece_tiles // per_row))]


def _is_raster(path: Path, max_pixels: int | None) -> bool:
    """A file the raster reader streams (``tiling.raster.should_stream``)."""
    from .raster import should_stream

    return should_stream(path, max_pixels)


def _cut_raster(entry: Entry, tiles: TileSpec, infer: InferSpec, piece_tiles: int, max_pixels: int | None,
                bands: BandSpec | None, wgs84: bool = False) -> Iterator[dict]:
    """A raster's bands of tile rows, each read as its own window with its valid-pixel mask."""
    from .grid import Tile
    from .imageio import check_pixels
    from .raster import RasterSource

    if infer.include_full:
        raise ValueError("include_full is not available for a raster: a full-image pass would decode it whole")
    with RasterSource(entry.path, bands) as src:
        h, w = src.shape
        if max_pixels is not None:
            check_pixels(w, h, entry.shown, max_pixels)
        if wgs84:  # before any model runs on it, as the single-process run checks
            src.georef.check_wgs84(src.label)
        spans = _bands(tiles.plan((h, w)), piece_tiles)
        for k, (indices, y0, y1) in enumerate(spans):
            image, valid = src.read(Tile(0, y0, w, y1))
            yield _row(_Item(entry, k, len(spans), (h, w), (0, y0), indices, image, raster=True, valid=valid))


def _row(item: _Item) -> dict:
    """A Ray Data row: the item pickled whole (one bytes column, whatever its arrays' shapes)."""
    return {"name": item.entry.rel, "item": pickle.dumps(item, protocol=5)}


# -- stage 2: detect --------------------------------------------------------------------------------
class _Detect:
    """The actor: loads the model once, then detects on the items it is given."""

    def __init__(self, source, label: str, load_options: dict, cpus: float, tiles: TileSpec, infer: InferSpec,
                 merge: MergeSpec):
        self._cores = _claim_cores(cpus)
        self.model = _load(source, label, load_options)
        self.tiles, self.infer, self.merge = tiles, infer, merge

    def __call__(self, batch: dict) -> dict:
        out = [_row(self._one(pickle.loads(blob))) for blob in batch["item"]]
        return {"name": [r["name"] for r in out], "item": [r["item"] for r in out]}

    def _one(self, item: _Item) -> _Item:
        if item.error:
            return item
        try:
            if item.pieces == 1 and not item.raster:
                from .pipeline import predict_tiled

                item.det = predict_tiled(item.image, self.model, self.tiles, self.infer, self.merge).detections
            else:
                item.det = _band_detections(item, self.model, self.tiles, self.infer)
                item.image = item.valid = None
        except Exception as exc:
            item.error, item.image = _describe(exc), None
        return item


def _band_detections(item: _Item, model, tiles: TileSpec, infer: InferSpec) -> Detections:
    """The model on one band's tiles, in image coordinates with ``tile_index``: predict_tiled's raw
    detections for those tiles."""
    from .models.base import tile_scale
    from .pipeline import tile_batches
    from .streaming import in_raster

    full_plan = tiles.plan(item.shape)
    plan = [full_plan[i] for i in item.tiles]
    ox, oy = item.origin

    def window(array: np.ndarray, t) -> np.ndarray:
        return array[t.y0 - oy : t.y1 - oy, t.x0 - ox : t.x1 - ox]

    if item.valid is not None:  # a raster's tiles that are all nodata are not run
        plan = [t for t in plan if window(item.valid, t).any()]
    batches = tile_batches(plan, infer.batch_size)
    crops = ([window(item.image, t) for t in batch] for batch in batches)
    parts = []
    outputs = model.predict_batches(crops, infer, imgsz=None, scale=tile_scale(model, tiles.size_xy))
    try:
        for batch in batches:
            for t, det in zip(batch, next(outputs)):
                det, dropped = in_raster(det, t, None if item.valid is None else window(item.valid, t))
                item.dropped += dropped
                if len(det):
                    parts.append(det)
    finally:
        outputs.close()
    if parts:
        return Detections.concat(parts, names=model.names)
    raw = Detections.empty_for(model)
    raw.data["tile_index"] = np.zeros(0, np.int64)
    return raw


def _claim_cores(cpus: float) -> list:
    """Pin this worker to ``cpus`` cores of its machine that no other Patchwise worker holds, so that
    actors sharing a machine do not each start a thread per core. The claim is a file lock per core,
    released by the system when the process ends (a restarted actor claims afresh); no pinning when
    every core is taken or the actor may use them all."""
    import fcntl
    import tempfile

    from .util import usable_cpus

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


# -- stage 3: write ---------------------------------------------------------------------------------
def _write(batch: dict, folder: OutputFolder) -> dict:
    """Write whole images' files; bands pass on to the driver, their pixels dropped."""
    names, blobs = [], []
    for blob in batch["item"]:
        item: _Item = pickle.loads(blob)
        if item.pieces == 1 and not item.raster and not item.error:
            try:
                item.objects = folder.write(item.entry, item.det, item.shape, item.image)
            except Exception as exc:
                item.error = _describe(exc)
            item.det = None
        item.image = None
        names.append(item.entry.rel)
        blobs.append(pickle.dumps(item, protocol=5))
    return {"name": names, "item": blobs}


def _finish_bands(items: list[_Item], folder: OutputFolder, tiles: TileSpec, infer: InferSpec, merge: MergeSpec,
                  max_pixels: int | None, bands: BandSpec | None, wgs84: bool) -> _Item:
    """Merge one image's bands as predict_tiled merges its tiles (a raster's as predict_raster does), and
    write its files."""
    from .pipeline import batch_order

    first = items[0]
    result = _Item(first.entry, shape=first.shape)
    try:
        plan = tiles.plan(first.shape)
        raw = Detections.concat([i.det for i in sorted(items, key=lambda i: i.piece)])
        order = batch_order(plan, infer.batch_size)  # predict_tiled's order decides ties in confidence
        raw = raw[np.argsort(order[raw.data["tile_index"]], kind="stable")]
        raw.data["truncated"] = truncated_flags(raw.xyxy, raw.data["tile_index"], plan, first.shape)
        raw.data["source"] = np.full(len(raw), "tile")
        det = merge_detections(raw, merge)
        if first.raster:
            result.objects = _write_raster(first, det, folder, bands, wgs84)
        else:
            image = None
            if folder.with_images:
                from .imageio import read_image

                image = read_image(first.entry.path, max_pixels=max_pixels)
            result.objects = folder.write(first.entry, det, first.shape, image)
    except Exception as exc:
        result.error = _describe(exc)
    return result


def _write_raster(item: _Item, det: Detections, folder: OutputFolder, bands: BandSpec | None, wgs84: bool) -> int:
    """A raster's files, its detections most confident first as ``predict_raster`` gives them."""
    from .outputs import PREVIEW_SIDE
    from .raster import RasterSource

    det = det[np.argsort(-det.confidence, kind="stable")]
    with RasterSource(item.entry.path, bands) as src:
        preview = src.overview(PREVIEW_SIDE) if folder.with_images else None
        return folder.write_raster(item.entry, det, item.shape, src.georef, wgs84, preview)


# -- the driver -------------------------------------------------------------------------------------
def _model_source(model) -> tuple[object, str]:
    """What each worker loads: a model file's bytes or an OpenVINO folder zipped (the workers need no
    shared disk for it), an official name, or a callable shipped as is."""
    from .models import Model, UltralyticsModel
    from .models.vetting import read_bounded

    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the model"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir() or path.suffix.lower() == ".xml":
            return _zip_export(path.parent if path.suffix.lower() == ".xml" else path), path.name
        if path.is_file():
            return read_bounded(path, path.name), path.name
        return str(model), path.name
    if isinstance(model, UltralyticsModel):
        raise ModelError("a loaded Ultralytics model cannot be sent to the workers: pass its file instead, "
                         "and each worker loads it safely itself")
    if isinstance(model, Model) or callable(model):
        return model, getattr(model, "source", "") or type(model).__name__
    raise ModelError(f"expected a model file, its bytes or a callable model, got {type(model).__name__}")


def _zip_export(folder: Path) -> bytes:
    """An OpenVINO export folder's model files, zipped flat in memory as ``tiling.load_model`` takes them."""
    import io
    import zipfile

    from .models.archive import EXPORT_FILES
    from .models.vetting import read_bounded

    if not folder.is_dir():
        raise ModelError(f"{display_name(folder.name)}: no such model folder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in EXPORT_FILES:
                zf.writestr(path.name, read_bounded(path, folder.name))
    return buf.getvalue()


def _load(source, label: str, load_options: dict):
    from .models import as_model, load_model

    if isinstance(source, (bytes, str)):
        return load_model(source, name=label, **_resolved(load_options))
    return as_model(source)


def _by_reference(load_options: dict) -> dict:
    """The load options with the calibration tiles (up to ~100 MB) put in the object store once: the
    check task and every actor are given a reference, not a copy in their arguments each."""
    import ray

    from .models.quantize import Calibration

    if isinstance(load_options.get("calibration"), Calibration):
        return dict(load_options, calibration=ray.put(load_options["calibration"]))
    return load_options


def _resolved(load_options: dict) -> dict:
    """The load options as ``load_model`` takes them, the calibration fetched where it is a reference."""
    if "calibration" not in load_options:
        return load_options
    import ray

    if isinstance(load_options["calibration"], ray.ObjectRef):
        return dict(load_options, calibration=ray.get(load_options["calibration"]))
    return load_options


def _calibration(model, calibration, run: Sequence[Entry], max_pixels: int | None, bands: BandSpec | None):
    """The 8-bit copy's calibration as tiles cut here, once (no model, no torch in the driver), or None
    when none is needed. The worker that checks the model makes the copy from them; the actors find it
    in their machine's cache, keyed on the weights and the calibration's digest, or on another machine
    make the same one from the same tiles: no worker needs the images on its disk. The tiles are put in
    Ray's object store once (:func:`_by_reference`)."""
    from .models import quantize

    chosen = quantize.run_calibration(model, calibration, [e.path for e in run],
                                      lambda path: _is_raster(path, max_pixels), bands)
    return None if chosen is None else quantize.cut_calibration(chosen)


def _check_model(source, label: str, load_options: dict) -> dict[int, str] | str:
    """The model's class names, or the one-line reason it cannot be used."""
    try:
        return dict(_load(source, label, load_options).names)
    except ModelError as exc:
        return str(exc)


def _model_names(source, label: str, load_options: dict) -> dict[int, str]:
    """Load the model once on a worker, in a process that ends afterwards: a bad model is one
    ``ModelError`` before any image is read, the driver never holds a model, and the worker's
    machine has the export cached for the actors."""
    import ray

    names = ray.get(ray.remote(num_cpus=0, max_calls=1)(_check_model).remote(source, label, load_options))
    if isinstance(names, str):
        raise ModelError(names)
    return names


def _connect(address: str | None) -> bool:
    """Join the cluster (or start a local one); True when this call started Ray and must stop it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ClusterError('Ray Data is not installed here: pip install "patchwise[ray]"') from None

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    try:
        ray.init(address=address, include_dashboard=False, runtime_env={"env_vars": env}, logging_level="WARNING")
    except Exception as exc:  # a wrong address is a ConnectionError, a stale one a RuntimeError
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise ClusterError(f"cannot start or reach the Ray cluster ({display_name(where)}): "
                           f"{_describe(exc)}") from None
    return True


def _actors(cluster: ClusterSpec) -> int:
    import ray

    if cluster.actors is not None:
        return cluster.actors
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // cluster.cpus_per_actor) if cluster.cpus_per_actor else int(cpus))


def predict_folder(source, model, out, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                   merge: MergeSpec | None = None, *, cluster: ClusterSpec | None = None, with_images: bool = True,
                   max_pixels: int | None = None, bands: BandSpec | None = None, wgs84: bool = False,
                   runtime: str = "auto", precision: str = "fp32", calibration=None,
                   progress: Progress | None = None, log: Callable[[str], None] | None = None,
                   inputs: Sequence[Entry] | None = None, **changes) -> FolderRun:
    """Patch-based prediction over a folder, a glob or a list of images on a Ray cluster, writing the
    files the single-process ``patchwise predict`` writes (:mod:`tiling.outputs`) into ``out``.

    ``model``: a ``.pt``/``.onnx`` file, an OpenVINO folder or their bytes, sent from here to every
    actor, which loads it with ``tiling.load_model`` (``runtime``, ``precision``); or a picklable
    callable model. With ``precision="int8"`` the 8-bit copy is calibrated on ``calibration`` (as
    ``load_model`` takes it), else on the run's images (a raster's: a few windows), unless the model's
    copy ships; the tiles are cut here once and sent with the model (:func:`_calibration`). Spec
    fields and :class:`ClusterSpec` fields may be given by keyword
    (``predict_folder("shots/", "m.pt", "out/", tile_size=640, actors=4)``). Images whose files exist
    from a run with the same settings and model are skipped; one that fails is reported through
    ``log`` and in the result, and the run goes on.
    ``progress(done, total)`` is called when the pipeline starts (0) and as each image is finished.
    ``inputs``: the run's entries when the caller has listed them already (the CLI).

    Rasters (``tiling.raster``: GeoTIFF, COG, VRT...) are read window by window in bands of tile rows
    spread over the actors, never decoded whole: ``bands`` says how their bands become BGR, ``wgs84``
    writes their GeoJSON (``geojson/<stem>.geojson``) in EPSG:4326 instead of their own CRS.
    """
    from .pipeline import _SPECS, check_merge_conf, split_settings

    start = time.perf_counter()
    known = set().union(*(checks.field_names(cls) for cls in (*_SPECS, ClusterSpec)))
    if set(changes) - known:
        raise TypeError(f"unknown setting {', '.join(sorted(set(changes) - known))}; "
                        f"the settings are {', '.join(sorted(known))}")
    cluster_changes = {k: changes.pop(k) for k in list(changes) if k in checks.field_names(ClusterSpec)}
    cluster = checks.with_changes(cluster, ClusterSpec, cluster_changes)
    tiles, infer, merge = split_settings(tiles, infer, merge, **changes)
    check_merge_conf(infer, merge)
    run = list(inputs) if inputs is not None else entries(*list_images(source))
    folder = OutputFolder(out, with_images, run_key(tiles, infer, merge, model, precision, bands, wgs84,
                                                      calibration))
    folder.prepare()
    source_, label = _model_source(model)
    load_options = {"runtime": runtime, "precision": precision}
    if precision == "int8" and isinstance(source_, (bytes, str)):
        load_options["calibration"] = _calibration(model, calibration, run, max_pixels, bands)
    todo = [e for e in run if not folder.is_done(e)]
    failed: dict[str, str] = {}
    written = 0
    started = _connect(cluster.address)
    try:
        load_options = _by_reference(load_options)
        names = _model_names(source_, label, load_options)  # a bad model is one error here, before any image
        if todo:
            written = _run(todo, source_, label, load_options, folder, tiles, infer, merge, cluster,
                           dict(max_pixels=max_pixels, bands=bands, wgs84=wgs84), failed, progress, log)
    finally:
        if started:
            import ray

            ray.shutdown()
    _, objects = folder.assemble(run, names)
    return FolderRun(len(run), len(run) - len(todo), written, failed, objects, time.perf_counter() - start)


def _run(todo: list[Entry], source, label: str, load_options: dict, folder: OutputFolder, tiles: TileSpec,
         infer: InferSpec, merge: MergeSpec, cluster: ClusterSpec, reading: dict, failed: dict[str, str],
         progress: Progress | None, log: Callable[[str], None] | None) -> int:
    """The pipeline over the images still to do; returns how many were written. ``reading``: the
    ``max_pixels``, ``bands`` and ``wgs84`` of the run."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

    ctx = DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.verbose_stats_logs
    ctx.enable_progress_bars, ctx.verbose_stats_logs = False, False
    n_actors = _actors(cluster)
    # Ray Data restarts its actors and retries their calls without limit by default (-1); other limits are passed on.
    restarts = {k: getattr(cluster, k) for k in ("max_restarts", "max_task_retries") if getattr(cluster, k) != -1}
    ds = (
        ray.data.from_items([{"name": e.rel, "item": pickle.dumps(e)} for e in todo],
                            override_num_blocks=len(todo))  # a block per image: each streams alone
        .flat_map(_cut, fn_kwargs=dict(tiles=tiles, infer=infer, piece_tiles=cluster.piece_tiles,
                                       max_pixels=reading["max_pixels"], bands=reading["bands"],
                                       wgs84=reading["wgs84"]),
                  num_cpus=0, compute=TaskPoolStrategy(size=n_actors + 1))
        .map_batches(_Detect, batch_size=cluster.images_per_call,
                     fn_constructor_kwargs=dict(source=source, label=label, load_options=load_options,
                                                cpus=cluster.cpus_per_actor, tiles=tiles, infer=infer, merge=merge),
                     compute=ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=2),
                     num_cpus=cluster.cpus_per_actor, num_gpus=cluster.gpus_per_actor or None, **restarts)
        .map_batches(_write, batch_size=1, fn_kwargs=dict(folder=folder),
                     num_cpus=0, compute=TaskPoolStrategy(size=n_actors + 1))
    )
    finish = ray.remote(num_cpus=0, max_retries=3, scheduling_strategy="SPREAD")(_finish_bands)
    bands: dict[str, list[_Item]] = {}
    pending: list = []
    done = written = 0

    def settle(item: _Item) -> None:
        nonlocal done, written
        done += 1
        if item.error:
            failed[item.entry.rel] = item.error
            if log is not None:
                log(f"skipped {item.entry.shown}: {item.error}")
        else:
            written += 1
        if progress is not None:
            progress(done, len(todo))

    if progress is not None:
        progress(0, len(todo))
    try:
        for row in ds.iter_rows():
            item: _Item = pickle.loads(row["item"])
            if item.entry.rel in failed:  # a band of an image already reported (a later window failed to read)
                continue
            if item.pieces == 1 and not item.raster:
                bands.pop(item.entry.rel, None)  # its bands that came back before its reader failed
                settle(item)
                continue
            group = bands.setdefault(item.entry.rel, [])
            group.append(item)
            if len(group) < item.pieces:
                continue
            del bands[item.entry.rel]
            broken = next((i.error for i in group if i.error), "")
            if broken:
                settle(_Item(item.entry, error=broken))
                continue
            pending.append(finish.remote(group, folder, tiles, infer, merge, **reading))
            while len(pending) > 2 * n_actors:  # backpressure on the merges too
                ready, pending = ray.wait(pending, num_returns=1)
                settle(ray.get(ready[0]))
        for ref in pending:
            settle(ray.get(ref))
        for group in bands.values():  # cannot happen unless rows were lost: said, never passed over
            settle(_Item(group[0].entry, error=f"only {len(group)} of its {group[0].pieces} parts came back"))
    except Exception as exc:
        raise ClusterError(f"the Ray pipeline stopped: {_describe(exc)}") from exc
    finally:
        ctx.enable_progress_bars, ctx.verbose_stats_logs = saved
    return written
