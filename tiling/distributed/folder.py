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
from ..util import Progress
from ..inputs import Entry, entries, list_images, run_key
from ..outputs import OutputFolder
from .cluster import ClusterError, ClusterSpec, actor_count, connect
from .cut import Cutter
from .detect import Detect
from .items import Item, Reading, describe
from .shipping import Shipment, calibration_for, model_names, ship, shipped_model
from .write import Writer, finish_bands

if TYPE_CHECKING:
    from ..bands import BandSpec



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
                   allow_vrt: bool = False,
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
    writes their GeoJSON (``geojson/<stem>.geojson``) in EPSG:4326 instead of their own CRS;
    ``allow_vrt`` lets them be VRT files or GDAL virtual paths (refused otherwise: they can name any file
    or URL).
    """
    start = time.perf_counter()
    checks.refuse_unknown(changes, known_settings(ClusterSpec))
    cluster_changes = {k: changes.pop(k) for k in list(changes) if k in checks.field_names(ClusterSpec)}
    cluster = checks.with_changes(cluster, ClusterSpec, cluster_changes)
    tiles, infer, merge = check_run(tiles, infer, merge, engine="a Ray run", **changes)
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
                           Reading(max_pixels, bands, wgs84, allow_vrt), failed, progress, log)
    finally:
        if started:
            import ray

            ray.shutdown()
    _, objects = folder.assemble(run, names)
    return FolderRun(len(run), len(run) - len(todo), written, failed, objects, time.perf_counter() - start)


def _run(todo: list[Entry], shipment: Shipment, folder: OutputFolder, tiles: TileSpec,
         infer: InferSpec, merge: MergeSpec, cluster: ClusterSpec, reading: Reading, failed: dict[str, str],
         progress: Progress | None, log: Callable[[str], None] | None) -> int:
    """The pipeline over the images still to do; returns how many were written."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.verbose_stats_logs
    ctx.enable_progress_bars, ctx.verbose_stats_logs = False, False
    n_actors = actor_count(cluster)
    ds = _pipeline(todo, shipment, folder, tiles, infer, merge, cluster, reading, n_actors)
    results = _Results(len(todo), failed, progress, log)
    bands = _Bands(folder, tiles, infer, merge, reading, results, backlog=2 * n_actors)
    results.report()
    quiet = _quiet_console()
    try:
        for row in ds.iter_rows():
            item: Item = pickle.loads(row["item"])
            if item.entry.rel in failed:  # a band of an image already reported (a later window failed to read)
                continue
            if item.pieces == 1 and not item.raster:
                bands.forget(item)  # its bands that came back before its reader failed
                results.settle(item)
            else:
                bands.add(item)
        bands.finish()
    except Exception as exc:
        raise ClusterError(f"the Ray pipeline stopped: {describe(exc)}") from exc
    finally:
        ctx.enable_progress_bars, ctx.verbose_stats_logs = saved
        quiet()
    return results.written


def _pipeline(todo: list[Entry], shipment: Shipment, folder: OutputFolder, tiles: TileSpec, infer: InferSpec,
              merge: MergeSpec, cluster: ClusterSpec, reading: Reading, n_actors: int):
    """The Ray Data dataset: read and cut (reader actors) -> detect (model actors) -> write (writer actors)."""
    import ray
    from ray.data import ActorPoolStrategy

    # Readers and writers hold no CPU: on a CPU, reading and cutting an image, or writing its files, takes
    # a tenth of what detecting on it does, so one of each per two model actors keeps them fed.
    n_io = cluster.io_actors or max(1, (n_actors + 1) // 2)
    # Ray Data restarts its actors and retries their calls without limit by default (-1); other limits are passed on.
    restarts = {k: getattr(cluster, k) for k in ("max_restarts", "max_task_retries") if getattr(cluster, k) != -1}
    return (
        ray.data.from_items([{"name": e.rel, "item": pickle.dumps(e)} for e in todo],
                            override_num_blocks=len(todo))  # a block per image: each streams alone
        .flat_map(Cutter, fn_constructor_kwargs=dict(tiles=tiles, infer=infer, piece_tiles=cluster.piece_tiles,
                                                     reading=reading),
                  num_cpus=0, compute=ActorPoolStrategy(size=n_io, max_tasks_in_flight_per_actor=2))
        .map_batches(Detect, batch_size=cluster.images_per_call,
                     fn_constructor_kwargs=dict(shipment=shipment,
                                                cpus=cluster.cpus_per_actor, tiles=tiles, infer=infer, merge=merge),
                     compute=ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=2),
                     num_cpus=cluster.cpus_per_actor, num_gpus=cluster.gpus_per_actor or None, **restarts)
        .map_batches(Writer, batch_size=1, fn_constructor_kwargs=dict(folder=folder),
                     num_cpus=0, compute=ActorPoolStrategy(size=n_io, max_tasks_in_flight_per_actor=2))
    )


class _Results:
    """The driver's count of finished images: written or failed (reported through ``log``), with progress."""

    def __init__(self, total: int, failed: dict[str, str], progress: Progress | None,
                 log: Callable[[str], None] | None):
        self.total, self.failed, self.progress, self.log = total, failed, progress, log
        self.done = self.written = 0

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)

    def settle(self, item: Item) -> None:
        self.done += 1
        if item.error:
            self.failed[item.entry.rel] = item.error
            if self.log is not None:
                self.log(f"skipped {item.entry.shown}: {item.error}")
        else:
            self.written += 1
        self.report()


class _Bands:
    """Images cut into bands: gathered as their bands come back, then merged and written in a Ray task
    each, at most ``backlog`` such tasks in flight."""

    def __init__(self, folder: OutputFolder, tiles: TileSpec, infer: InferSpec, merge: MergeSpec,
                 reading: Reading, results: _Results, backlog: int):
        import ray

        self.finish_task = ray.remote(num_cpus=0, max_retries=3, scheduling_strategy="SPREAD")(finish_bands)
        self.settings = (folder, tiles, infer, merge, reading)
        self.results, self.backlog = results, backlog
        self.groups: dict[str, list[Item]] = {}
        self.pending: list = []
        self.entry_of: dict = {}  # a merge task's image

    def forget(self, item: Item) -> None:
        self.groups.pop(item.entry.rel, None)

    def add(self, item: Item) -> None:
        import ray

        group = self.groups.setdefault(item.entry.rel, [])
        group.append(item)
        if len(group) < item.pieces:
            return
        del self.groups[item.entry.rel]
        broken = next((i.error for i in group if i.error), "")
        if broken:
            self.results.settle(Item(item.entry, error=broken))
            return
        ref = self.finish_task.remote(group, *self.settings)
        self.entry_of[ref] = item.entry
        self.pending.append(ref)
        while len(self.pending) > self.backlog:  # backpressure on the merges too
            ready, self.pending = ray.wait(self.pending, num_returns=1)
            self.results.settle(self._finished(ready[0]))

    def finish(self) -> None:
        for ref in self.pending:
            self.results.settle(self._finished(ref))
        for group in self.groups.values():  # cannot happen unless rows were lost: said, never passed over
            self.results.settle(Item(group[0].entry, error=f"only {len(group)} of its {group[0].pieces} parts came back"))

    def _finished(self, ref) -> Item:
        """A merge task's result; one that failed for good (its retries spent) fails its image only."""
        import ray

        entry = self.entry_of.pop(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            return Item(entry, error=f"its parts could not be merged ({describe(exc)})")


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
