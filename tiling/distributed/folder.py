"""``predict_folder``: the Ray Data pipeline over a folder, a glob or a list of images, with
backpressure, per-image failures reported, finished images skipped, and the files of the
single-process ``patchwise predict``."""
from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from .. import checks
from ..grid import TileSpec
from ..merge import MergeSpec
from ..models import InferSpec
from ..models.bundled import BundledAssets
from ..models.runtimes import Precision, Runtime
from ..settings import check_run, known_settings
from ..inputs import Entry, entries, list_images, run_key
from ..outputs import OutputFolder
from .cluster import ClusterError, ClusterSpec, actor_count, connect
from .cut import Cutter
from .detect import Detect
from .items import Item, describe
from .shipping import Shipment, calibration_for, model_names, ship, shipped_model
from .write import Writer, finish_bands

if TYPE_CHECKING:
    from ..bands import BandSpec

Progress = Callable[[int, int], None]


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


def predict_folder(source, model, out, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                   merge: MergeSpec | None = None, *, cluster: ClusterSpec | None = None, with_images: bool = True,
                   max_pixels: int | None = None, bands: BandSpec | None = None, wgs84: bool = False,
                   runtime: Runtime | str = Runtime.AUTO, precision: Precision | str = Precision.FP32, calibration=None,
                   bundled: BundledAssets | None = None,
                   progress: Progress | None = None, log: Callable[[str], None] | None = None,
                   inputs: Sequence[Entry] | None = None, **changes) -> FolderRun:
    """Patch-based prediction over a folder, a glob or a list of images on a Ray cluster, writing the
    files the single-process ``patchwise predict`` writes (:mod:`tiling.outputs`) into ``out``.

    ``model``: a ``.pt``/``.onnx`` file, an OpenVINO folder or their bytes, sent from here to every
    actor, which loads it with ``tiling.load_model`` (``runtime``, ``precision``); or a picklable
    callable model. With ``precision="int8"`` the 8-bit copy is calibrated on ``calibration`` (as
    ``load_model`` takes it), else on the run's images (a raster's: a few windows), unless the model's
    copy ships in ``bundled`` (``tiling.models.bundled.BundledAssets``, as ``load_model`` takes it); the
    tiles are cut here once and sent with the model (:func:`calibration_for`). Spec
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
    start = time.perf_counter()
    checks.refuse_unknown(changes, known_settings(ClusterSpec))
    cluster_changes = {k: changes.pop(k) for k in list(changes) if k in checks.field_names(ClusterSpec)}
    cluster = checks.with_changes(cluster, ClusterSpec, cluster_changes)
    tiles, infer, merge = check_run(tiles, infer, merge, **changes)
    run = list(inputs) if inputs is not None else entries(*list_images(source))
    folder = OutputFolder(out, with_images, run_key(tiles, infer, merge, model, precision, bands, wgs84,
                                                      calibration))
    folder.prepare()
    source_, label = shipped_model(model)
    load_options = {"runtime": runtime, "precision": precision, "bundled": bundled}
    if Precision.from_value(precision) is Precision.INT8 and isinstance(source_, (bytes, str)):
        load_options["calibration"] = calibration_for(model, calibration, run, max_pixels, bands, bundled)
    todo = [e for e in run if not folder.is_done(e)]
    failed: dict[str, str] = {}
    written = 0
    started = connect(cluster.address)
    try:
        shipment = ship(source_, label, load_options)
        names = model_names(shipment)  # a bad model is one error here, before any image
        if todo:
            written = _run(todo, shipment, folder, tiles, infer, merge, cluster,
                           dict(max_pixels=max_pixels, bands=bands, wgs84=wgs84), failed, progress, log)
    finally:
        if started:
            import ray

            ray.shutdown()
    _, objects = folder.assemble(run, names)
    return FolderRun(len(run), len(run) - len(todo), written, failed, objects, time.perf_counter() - start)


def _run(todo: list[Entry], shipment: Shipment, folder: OutputFolder, tiles: TileSpec,
         infer: InferSpec, merge: MergeSpec, cluster: ClusterSpec, reading: dict, failed: dict[str, str],
         progress: Progress | None, log: Callable[[str], None] | None) -> int:
    """The pipeline over the images still to do; returns how many were written. ``reading``: the
    ``max_pixels``, ``bands`` and ``wgs84`` of the run."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.verbose_stats_logs
    ctx.enable_progress_bars, ctx.verbose_stats_logs = False, False
    n_actors = actor_count(cluster)
    # Readers and writers hold no CPU: on a CPU, reading and cutting an image, or writing its files, takes
    # a tenth of what detecting on it does, so one of each per two model actors keeps them fed.
    n_io = cluster.io_actors or max(1, (n_actors + 1) // 2)
    # Ray Data restarts its actors and retries their calls without limit by default (-1); other limits are passed on.
    restarts = {k: getattr(cluster, k) for k in ("max_restarts", "max_task_retries") if getattr(cluster, k) != -1}
    ds = (
        ray.data.from_items([{"name": e.rel, "item": pickle.dumps(e)} for e in todo],
                            override_num_blocks=len(todo))  # a block per image: each streams alone
        .flat_map(Cutter, fn_constructor_kwargs=dict(tiles=tiles, infer=infer, piece_tiles=cluster.piece_tiles,
                                                     max_pixels=reading["max_pixels"], bands=reading["bands"],
                                                     wgs84=reading["wgs84"]),
                  num_cpus=0, compute=ActorPoolStrategy(size=n_io, max_tasks_in_flight_per_actor=2))
        .map_batches(Detect, batch_size=cluster.images_per_call,
                     fn_constructor_kwargs=dict(shipment=shipment,
                                                cpus=cluster.cpus_per_actor, tiles=tiles, infer=infer, merge=merge),
                     compute=ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=2),
                     num_cpus=cluster.cpus_per_actor, num_gpus=cluster.gpus_per_actor or None, **restarts)
        .map_batches(Writer, batch_size=1, fn_constructor_kwargs=dict(folder=folder),
                     num_cpus=0, compute=ActorPoolStrategy(size=n_io, max_tasks_in_flight_per_actor=2))
    )
    finish = ray.remote(num_cpus=0, max_retries=3, scheduling_strategy="SPREAD")(finish_bands)
    bands: dict[str, list[Item]] = {}
    pending: list = []
    done = written = 0

    def settle(item: Item) -> None:
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

    entry_of: dict = {}  # a merge task's image

    def finished(ref) -> Item:
        """A merge task's result; one that failed for good (its retries spent) fails its image only."""
        entry = entry_of.pop(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            return Item(entry, error=f"its parts could not be merged ({describe(exc)})")

    if progress is not None:
        progress(0, len(todo))
    quiet = _quiet_console()
    try:
        for row in ds.iter_rows():
            item: Item = pickle.loads(row["item"])
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
                settle(Item(item.entry, error=broken))
                continue
            ref = finish.remote(group, folder, tiles, infer, merge, **reading)
            entry_of[ref] = item.entry
            pending.append(ref)
            while len(pending) > 2 * n_actors:  # backpressure on the merges too
                ready, pending = ray.wait(pending, num_returns=1)
                settle(finished(ready[0]))
        for ref in pending:
            settle(finished(ref))
        for group in bands.values():  # cannot happen unless rows were lost: said, never passed over
            settle(Item(group[0].entry, error=f"only {len(group)} of its {group[0].pieces} parts came back"))
    except Exception as exc:
        raise ClusterError(f"the Ray pipeline stopped: {describe(exc)}") from exc
    finally:
        ctx.enable_progress_bars, ctx.verbose_stats_logs = saved
        quiet()
    return written


class _OnlyProblems(logging.Filter):
    """Ray Data's console lines that are news to the caller: warnings and errors, but not the one saying
    its progress bars are off (the caller shows its own progress)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and "Progress bars" not in record.getMessage()


def _quiet_console() -> Callable[[], None]:
    """Keep Ray Data's plan/start/finish lines off the console for this run (they stay in the session's
    ray-data.log); returns what undoes it."""
    consoles = [h for h in logging.getLogger("ray.data").handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    only = _OnlyProblems()
    for handler in consoles:
        handler.addFilter(only)

    def undo() -> None:
        for handler in consoles:
            handler.removeFilter(only)

    return undo
