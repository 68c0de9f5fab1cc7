"""What ``patchwise predict`` and ``patchwise evaluate`` do, once their options are parsed and checked."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from .checks import SettingError
from .cli_common import CliError, find_images, flag_of, load, runtime_options
from .cli_raster import band_spec, check_single, is_streamed, predict_raster_entry
from .cli_specs import settings
from .cli_video import evaluate_video, is_video, predict_videos, video_flags
from .distributed import ClusterError, ClusterSpec, predict_folder
from .evaluate import score_table
from .imageio import ImageError, read_image
from .labels import LabelError, find_names_file, load_class_names, load_coco_labels, load_yolo_labels, relabel_all
from .models import ModelError
from .models.bundled import BundledAssets
from .inputs import entries, run_key
from .names import display_name
from .outputs import OutputFolder
from .pipeline import predict_full, predict_tiled
from .uris import is_uri, read_input


def _prepare_out(out: Path, with_images: bool, key: str = "") -> OutputFolder:
    folder = OutputFolder(out, with_images, key)
    try:
        folder.prepare()
    except OSError as exc:
        raise CliError(f"cannot write to {display_name(str(out))}: {exc.strerror}") from None
    return folder


def predict_command(args) -> int:
    if is_video(args.source):  # a clip, or a folder of clips only
        return predict_videos(args)
    _refuse_video_options(args)
    tiles, infer, merge = settings(args)
    cluster = cluster_spec(args)  # a bad or misplaced cluster option is reported before anything else happens
    runtime_options(args.runtime, args.precision)  # so is a runtime that cannot run --precision
    root, images = find_images(args.source)
    # Images done by an earlier run with these settings and this model are skipped; others are done again.
    key = run_key(tiles, infer, merge, args.model, getattr(args, "precision", "fp32"), band_spec(args), args.wgs84,
                  getattr(args, "calibration", None))
    folder = _prepare_out(Path(args.out), not args.no_images, key)  # a bad --out is reported before the model loads
    run = entries(root, images)
    streamed = {e.path for e in run if is_streamed(e.path, args)}  # rasters read window by window
    if len(run) == 1 and streamed:  # a lone bad raster is reported before the model loads
        check_single(run[0].path, args)
    if getattr(args, "engine", "local") == "ray":
        return _predict_on_ray(args, cluster, folder, run, tiles, infer, merge)
    todo = [e for e in run if not folder.is_done(e)]  # a rerun skips the images an earlier run finished
    model = load(args.model, args.precision, args.calibration, [e.path for e in run],
                 streamed=lambda path: path in streamed, bands=band_spec(args), runtime=args.runtime)
    failures = 0
    for entry in tqdm(todo, desc="images", unit="img", file=sys.stderr):
        try:
            if entry.path in streamed:
                predict_raster_entry(entry, model, tiles, infer, merge, args, folder)
                continue
            image = read_input(entry.path, max_pixels=args.max_pixels)
            det = predict_tiled(image, model, tiles, infer, merge).detections
        except (ImageError, ValueError) as exc:
            tqdm.write(f"skipped {entry.shown}: {display_name(str(exc))}", file=sys.stderr)
            failures += 1
            continue
        folder.write(entry, det, image.shape, image)
    n_images, n_objects = folder.assemble(run, model.names)
    return _summary(len(run), len(run) - len(todo), failures, n_objects, folder.out)


def _summary(n_run: int, n_before: int, failures: int, n_objects: int, out: Path) -> int:
    """The closing line; exit code 1 when no image of the run has outputs."""
    notes = [f"{n_before} done before" if n_before else "", f"{failures} skipped" if failures else ""]
    notes = [n for n in notes if n]
    print(f"{n_run - failures} images, {n_objects} objects -> {display_name(str(out))}"
          + (f" ({', '.join(notes)})" if notes else ""))
    return 1 if failures == n_run else 0


_CLUSTER_FLAGS = {"ray_address": "address", "actors": "actors", "cpus_per_actor": "cpus_per_actor",
                  "gpus_per_actor": "gpus_per_actor", "io_actors": "io_actors"}


def cluster_spec(args):
    """The ``ClusterSpec`` of ``--engine ray``'s options (None for a local run, which refuses them: they
    would be silently ignored there)."""
    given = {flag: getattr(args, flag, None) for flag in _CLUSTER_FLAGS if getattr(args, flag, None) is not None}
    if getattr(args, "engine", "local") != "ray":
        if given:
            shown = ", ".join(flag_of(flag) for flag in given)
            raise CliError(f"{shown} {'is' if len(given) == 1 else 'are'} for --engine ray; add --engine ray, "
                           "or leave them out to run in this process")
        return None
    try:
        return ClusterSpec(**{_CLUSTER_FLAGS[flag]: value for flag, value in given.items()})
    except SettingError as exc:
        raise CliError.of_setting(exc, {field: flag_of(flag) for flag, field in _CLUSTER_FLAGS.items()}) from None


def _predict_on_ray(args, cluster, folder, run, tiles, infer, merge) -> int:
    """The same run on a Ray cluster (``--engine ray``): same files, written by the cluster's workers."""
    bars = []  # the bar appears when the pipeline starts, after the cluster and the model are ready

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="images", unit="img", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        result = predict_folder([e.path for e in run], args.model, folder.out, tiles, infer, merge, cluster=cluster,
                                with_images=folder.with_images, max_pixels=args.max_pixels, bands=band_spec(args),
                                wgs84=args.wgs84, allow_vrt=args.allow_vrt, runtime=args.runtime,
                                precision=getattr(args, "precision", "fp32"),
                                calibration=getattr(args, "calibration", None),
                                bundled=BundledAssets.beside(args.model), inputs=run,
                                progress=progress, log=lambda line: tqdm.write(line, file=sys.stderr))
    except (ModelError, ClusterError) as exc:
        raise CliError(str(exc)) from None
    finally:
        for bar in bars:
            bar.close()
    return _summary(len(run), result.done_before, len(result.failed), result.objects, folder.out)


def label_lookup(labels: str, root: Path) -> Callable[[Path, tuple], object]:
    """A function (image path, image shape) -> ground truth ``Detections`` or None; checked before any model loads."""
    path = Path(labels)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            by_name = load_coco_labels(path)
        except LabelError as exc:
            raise CliError(display_name(str(exc))) from None
        return lambda p, shape: by_name.get(p.relative_to(root).as_posix(), by_name.get(p.name))
    if path.is_dir():
        names_file = find_names_file(path)
        try:
            names = load_class_names(names_file) if names_file else None
        except LabelError as exc:
            raise CliError(display_name(str(exc))) from None

        def yolo(p: Path, shape: tuple):
            for cand in (path / p.relative_to(root).with_suffix(".txt"), path / f"{p.stem}.txt"):
                if cand.exists() and cand != names_file:
                    return load_yolo_labels(cand, shape, names=names)
            return None
        return yolo
    raise CliError(f"{display_name(labels)}: expected a folder of YOLO .txt files or a COCO .json file")


def _refuse_video_options(args) -> None:
    """Tracking options given to an image run are refused, not silently ignored."""
    if given := video_flags(args):
        raise CliError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for video clips; leave "
                       f"{'it' if len(given) == 1 else 'them'} out for images")


def evaluate_command(args) -> int:
    if is_video(args.source):  # one clip, scored against its MOT ground truth
        return evaluate_video(args)
    _refuse_video_options(args)
    tiles, infer, merge = settings(args)
    runtime_options(args.runtime, args.precision)
    if is_uri(args.source):
        raise CliError("evaluate reads images and labels from this machine's disk; copy them here first "
                       "(predict takes URIs)")
    root, images = find_images(args.source)
    lookup = label_lookup(args.labels, root)
    model = load(args.model, args.precision, args.calibration, images, runtime=args.runtime)
    # The model runs to conf 0.001, for the whole precision-recall curve (AP); precision and recall are at --conf.
    curve_infer, curve_merge = replace(infer, conf=0.001), replace(merge, conf=0.001)
    full_preds, tiled_preds, gts = [], [], []
    for path in tqdm(images, desc="images", unit="img", file=sys.stderr):
        shown = display_name(path.name)
        try:
            image = read_image(path, max_pixels=args.max_pixels)
            gt = lookup(path, image.shape)
        except (ImageError, LabelError) as exc:
            tqdm.write(f"skipped {shown}: {display_name(str(exc))}", file=sys.stderr)
            continue
        if gt is None:
            tqdm.write(f"skipped {shown}: no labels found for it", file=sys.stderr)
            continue
        full_preds.append(predict_full(image, model, curve_infer))
        tiled_preds.append(predict_tiled(image, model, tiles, curve_infer, curve_merge).detections)
        gts.append(gt)
    if not gts:
        raise CliError("no image had labels: check that label files are named like the images")
    gts, match = relabel_all(gts, model.names)  # the labels' classes matched to the model's by name
    note = match.message(display_name(Path(args.labels).name))
    if note:
        print(note, file=sys.stderr)
    if not match.assumed:  # a class the labels do not know is not scored, either way
        full_preds = [p.filter(classes=match.scored_model_classes) for p in full_preds]
        tiled_preds = [p.filter(classes=match.scored_model_classes) for p in tiled_preds]
    print(f"{len(gts)} images, {sum(len(g) for g in gts)} labelled objects; precision/recall of the boxes at conf "
          f">= {merge.conf}; AP50 and AP50-95 rank every box down to conf {curve_infer.conf} (the page's Scores "
          f"tab ranks down to the model's floor there, 0.05, so its AP can be slightly lower)")
    print(score_table(full_preds, tiled_preds, gts, merge.conf).to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
