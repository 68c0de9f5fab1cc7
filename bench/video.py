"""Video: tiled vs full-frame tracking, frames per second against predict_tiled and SAHI, memory over clip length.

    python -m bench.video            # the bundled clip and a second generated clip it does not ship (seed 7)
    python -m bench.video --quick    # 3 frames of the bundled clip, tiny clips for memory: the script works

Run from the repository root (issue #39's targets). Every part uses the bundled detector at its 8-bit
default (the OpenVINO INT8 copy in ``models/``), 640 px tiles at overlap 0.25, batches of 8, confidence
0.25, the full-image pass and the merge at their defaults (WBF over IoU 0.45; the full pass's guesses at
small objects are left to the tiles) and ByteTrack at its defaults:

* Tracking: ``predict_video`` with tiles and with ``full_frame=True`` (the ordinary one-pass prediction
  per frame), the same tracker, scored against the clip's MOT ground truth (``evaluate_tracks``: MOTA,
  IDF1 by py-motmetrics, HOTA). Target: tiled IDF1 and MOTA at least 0.3 above full frame on both clips.
* Speed on the bundled clip (1080p): frames/s of ``predict_video`` (decoding, tiles of consecutive frames
  in shared batches, merge, tracking), of the same plus the annotated H.264 video the CLI writes, of the
  same frames decoded beforehand and run through ``predict_tiled`` one by one (no decoding, no tracking), and
  of SAHI's ``get_sliced_prediction`` per frame on the same INT8 IR (slices of 640 at 0.25, no full pass,
  its full-image pass and postprocess at their defaults, batches of 8). One warm-up frame each, untimed. Targets: at least 5
  frames/s, predict_video within 1.2x of predict_tiled's time, at least 3x SAHI's frames/s.
* Memory: ``patchwise predict`` (all its files) on the clip and on the same scene 10x longer, each in its
  own process; its peak RSS from the kernel (``wait4``) and from psutil sampling every 20 ms. Target: the
  longer clip's peak within +10%.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import tiling
from bench.gigapixel import ROOT
from bench.real import cpu_line
from scripts.make_clip import BUNDLED, gt_path, write_clip
from tiling.models.bundled import BundledAssets
from tiling.video import AnnotatedVideoWriter, TrackSpec, evaluate_tracks, iter_frames, predict_video

WEIGHTS = ROOT / "models" / "synth-yolo11n-det.pt"
INT8_IR = ROOT / "models" / "synth-yolo11n-det_int8_openvino_model"
CLIP = ROOT / "samples" / "clips" / "roads-1920x1080.mp4"
SECOND_SEED = 7
TILE, OVERLAP, BATCH, CONF = 640, 0.25, 8, 0.25
TILES = tiling.TileSpec(tile_size=TILE, overlap=OVERLAP)
INFER = tiling.InferSpec(conf=CONF, batch_size=BATCH)  # the full-image pass on, as by default (and SAHI's)
MERGE = tiling.MergeSpec(conf=CONF)  # the default merge
TRACK = TrackSpec()


def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def first(run, n: int | None) -> list:
    """The first ``n`` results of a run (all with None); the run stops there."""
    out = []
    for result in run:
        out.append(result)
        if n is not None and len(out) >= n:
            break
    return out


def tracking(model, clips: list[Path], frames: int | None) -> None:
    print("\n## Tracking: tiles vs full frame, same model and tracker (ByteTrack)\n")
    print("| clip | mode | MOTA | IDF1 | HOTA | ID switches | tracks (truth) |")
    print("|---|---|---|---|---|---|---|")
    for clip in clips:
        scores = {}
        for mode, full in (("full frame", True), ("tiles", False)):
            results = first(predict_video(clip, model, TILES, INFER, MERGE, TRACK, full_frame=full), frames)
            s = scores[mode] = evaluate_tracks(gt_path(clip), results)
            print(f"| {clip.name} | {mode} | {s.mota:.3f} | {s.idf1:.3f} | {s.hota:.3f} | {s.switches} | "
                  f"{len({int(t) for r in results for t in r.detections.data['track_id'] if t >= 0})} "
                  f"({s.gt_tracks}) |")
        full, tiled = scores["full frame"], scores["tiles"]
        print(f"\n- {clip.name}: IDF1 +{tiled.idf1 - full.idf1:.3f}, MOTA +{tiled.mota - full.mota:.3f}; "
              f"target +0.3 each: {mark(tiled.idf1 - full.idf1 >= 0.3 and tiled.mota - full.mota >= 0.3)}\n")


def timed_video(model, clip: Path, frames: int | None, encode: bool) -> tuple[int, float]:
    """(frames, seconds) of predict_video, with the annotated video written when ``encode``."""
    first(predict_video(clip, model, TILES, INFER, MERGE, TRACK), 1)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = predict_video(clip, model, TILES, INFER, MERGE, TRACK)
        n = 0
        if encode:
            with AnnotatedVideoWriter(Path(tmp) / "a.mp4", run.info.fps, run.info.size) as video:
                for result, frame in run.with_frames():
                    video.write(frame, result.detections)
                    n += 1
                    if frames is not None and n >= frames:
                        break
        else:
            n = len(first(run, frames))
        return n, time.perf_counter() - t0


def timed_tiled(model, clip: Path, frames: int | None) -> tuple[int, float]:
    """(frames, seconds) of predict_tiled on the clip's frames, decoded beforehand (not timed)."""
    images = [f for _, f in first(iter_frames(clip), frames)]
    tiling.predict_tiled(images[0], model, TILES, INFER, MERGE)  # warm-up
    t0 = time.perf_counter()
    for image in images:
        tiling.predict_tiled(image, model, TILES, INFER, MERGE)
    return len(images), time.perf_counter() - t0


def timed_sahi(clip: Path, frames: int | None) -> tuple[int, float]:
    """(frames, seconds) of SAHI's sliced prediction per frame on the same INT8 IR, frames decoded beforehand."""
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    logging.getLogger("sahi").setLevel(logging.ERROR)
    model = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=str(INT8_IR),
                                               confidence_threshold=CONF, device="cpu")
    images = [np.ascontiguousarray(f[..., ::-1]) for _, f in first(iter_frames(clip), frames)]  # SAHI reads RGB

    def sliced(image):
        return get_sliced_prediction(image, model, slice_height=TILE, slice_width=TILE, overlap_height_ratio=OVERLAP,
                                     overlap_width_ratio=OVERLAP, perform_standard_pred=True, batch_size=BATCH, verbose=0)

    sliced(images[0])  # warm-up
    t0 = time.perf_counter()
    for image in images:
        sliced(image)
    return len(images), time.perf_counter() - t0


def speed(model, clip: Path, frames: int | None) -> None:
    rows = {"predict_video": timed_video(model, clip, frames, encode=False),
            "predict_video + annotated H.264": timed_video(model, clip, frames, encode=True),
            "predict_tiled, frame by frame (decoded beforehand)": timed_tiled(model, clip, frames),
            "SAHI get_sliced_prediction per frame (decoded beforehand)": timed_sahi(clip, frames)}
    fps = {k: n / s for k, (n, s) in rows.items()}
    print(f"\n## Speed: {clip.name}, {TILE} px tiles at {OVERLAP}, batch {BATCH}, the 8-bit detector\n")
    print("| method | frames | seconds | frames/s |")
    print("|---|---|---|---|")
    for k, (n, s) in rows.items():
        print(f"| {k} | {n} | {s:.2f} | {fps[k]:.2f} |")
    ours, tiled, sahi = fps["predict_video"], fps["predict_tiled, frame by frame (decoded beforehand)"], \
        fps["SAHI get_sliced_prediction per frame (decoded beforehand)"]
    print(f"\n- predict_video {ours:.2f} frames/s; target 5: {mark(ours >= 5)}")
    print(f"- time vs predict_tiled one by one: {tiled / ours:.2f}x; target <= 1.2x: {mark(tiled / ours <= 1.2)}")
    print(f"- vs SAHI: {ours / sahi:.2f}x its frames/s; target >= 3x: {mark(ours / sahi >= 3)}")


def peak_rss(cmd: list[str]) -> tuple[int, float, float, float]:
    """(return code, kernel peak RSS GB, psutil-sampled peak RSS GB, seconds) of a command in its own process."""
    import psutil  # bench/requirements.txt

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampled = [0]
    stop = threading.Event()

    def sample() -> None:
        try:
            p = psutil.Process(proc.pid)
            while not stop.is_set():
                sampled[0] = max(sampled[0], p.memory_info().rss)
                time.sleep(0.02)
        except psutil.Error:
            pass

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    thread.join()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 2**20, sampled[0] / 2**30, time.perf_counter() - t0


def memory(quick: bool) -> None:
    size = dict(width=480, height=288) if quick else dict(width=BUNDLED["width"], height=BUNDLED["height"])
    seconds = 0.3 if quick else BUNDLED["seconds"]
    print(f"\n## Memory: `patchwise predict` on a {size['width']}x{size['height']} clip and the same scene 10x "
          "longer, each in its own process\n")
    print("| clip | frames | seconds | peak RSS GB (kernel) | peak RSS GB (psutil) |")
    print("|---|---|---|---|---|")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 10):
            clip = Path(tmp) / f"x{factor}.mp4"
            frames, _ = write_clip(clip, BUNDLED["seed"], size["width"], size["height"], seconds * factor,
                                   BUNDLED["fps"], BUNDLED["pan"])
            cmd = [sys.executable, "-m", "tiling", "predict", str(clip), "--model", str(WEIGHTS), "--precision",
                   "int8", "--out", str(Path(tmp) / f"out{factor}")]
            code, kernel, sampled, wall = peak_rss(cmd)
            if code != 0:
                print(f"(patchwise predict failed with exit code {code} on {clip.name})")
                return
            peaks.append(kernel)
            print(f"| {factor}x | {frames} | {wall:.1f} | {kernel:.3f} | {sampled:.3f} |")
    print(f"\n- 10x longer: peak {peaks[1] / peaks[0] - 1:+.1%}; target within +10%: {mark(peaks[1] <= 1.1 * peaks[0])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 frames of the bundled clip, tiny clips for memory")
    ap.add_argument("--skip", nargs="*", default=(), choices=("tracking", "speed", "memory"),
                    help="parts to leave out")
    p = ap.parse_args()
    frames = 3 if p.quick else None
    print(cpu_line())
    model = tiling.load_model(WEIGHTS, precision="int8", bundled=BundledAssets.beside(WEIGHTS))
    print(f"model: {model.runtime_label}; {'quick run: 3 frames' if p.quick else 'every frame'}")
    with tempfile.TemporaryDirectory() as tmp:
        clips = [CLIP]
        if not p.quick:
            second = Path(tmp) / f"roads-s{SECOND_SEED}.mp4"
            write_clip(second, SECOND_SEED, BUNDLED["width"], BUNDLED["height"], BUNDLED["seconds"], BUNDLED["fps"],
                       BUNDLED["pan"])
            clips.append(second)
        if "tracking" not in p.skip:
            tracking(model, clips, frames)
        if "speed" not in p.skip:
            speed(model, CLIP, frames)
    if "memory" not in p.skip:
        memory(p.quick)


if __name__ == "__main__":
    main()
