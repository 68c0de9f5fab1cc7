"""A folder run on Ray (`--engine ray`) against the single-process CLI on the same images: images per second
with 1 and 2 actors, the overhead per image, and the driver's and workers' peak memory as the run grows.

    python -m bench.scale              # 50 scenes of 1600x1200 (1, 2 actors, local); then 50, 200, 600 for memory
    python -m bench.scale --memory     # only the memory rows (2 actors)
    python -m bench.scale --quick      # 6 small scenes; 6, 12, 24 for memory: proves the script works

Run from the repository root. Every measurement is a fresh process (``python -m bench.scale --child``)
that starts its own local Ray cluster (its start is timed apart) and stops it; this process samples
the memory of that process and of every process under it: the driver (the child itself) and the Ray
workers (processes titled ``ray::...``: the model actors and the read/cut/write tasks). A worker's own
memory is its anonymous pages; the pages of Ray's shared object store that it has mapped are counted
apart, once for the whole run (they are the store's, bounded by the work in flight). Images per
second are counted in steady state, over the middle 80% of the images by their JSONs' times, so the
model loads, the cluster start and the end of the run (when reading has stopped and the last images
come faster) are left out of it; the cluster start is reported on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "synth-yolo11n-det.pt"


def make_images(folder: Path, n: int, size: tuple[int, int]) -> Path:
    """``n`` generated aerial scenes (the bundled detector's kind of picture), made once per size."""
    from scripts.scenes import render_scene, write_scene

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        path = folder / f"scene-{k:04d}.jpg"
        if not path.exists():
            image, objects = render_scene(size[0], size[1], seed=1000 + k, n_objects=60, distractors=0.3)
            write_scene(path, image, objects, quality=90)
    return folder


def child(args) -> None:
    """One run in this process; prints one JSON line."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    t0 = time.perf_counter()
    if args.engine == "local":
        from tiling.cli import main

        code, start = main(["predict", args.images, "--model", str(MODEL), "--out", args.out]), 0.0
    else:
        import ray

        from tiling.distributed import ClusterSpec, predict_folder

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
        start = time.perf_counter() - t0
        run = predict_folder(args.images, MODEL, args.out, cluster=ClusterSpec(actors=args.actors))
        code = 1 if run.failed else 0
        ray.shutdown()
    cpu = os.times()
    print(json.dumps({"seconds": time.perf_counter() - t0, "cluster_start": start, "code": code,
                      "driver_cpu": cpu.user + cpu.system}))


def steady_rate(out: Path) -> tuple[float, float, float, float]:
    """(images per second in steady state, seconds to the first image, and the rate over the first and
    over the last third of the images: a run that slows down shows it). Steady state is the middle 80% of
    the images by finishing time: a Ray run's last images come faster once nothing is left to read, and
    would flatter a short run."""
    times = sorted(p.stat().st_mtime for p in (out / "json").glob("*.json"))
    if len(times) < 4:
        return float("nan"), float("nan"), float("nan"), float("nan")

    def rate(part: list[float]) -> float:
        return (len(part) - 1) / max(part[-1] - part[0], 1e-9)

    third, tenth = max(2, len(times) // 3), len(times) // 10
    return rate(times[tenth : len(times) - tenth]), times[0], rate(times[:third]), rate(times[-third:])


def _rollup(pid: int) -> dict[str, int]:
    """A process's memory from /proc/PID/smaps_rollup, in bytes: its own heap ("Anonymous") and its
    proportional share of shared-memory pages ("Pss_Shmem": for a Ray process, the object store's)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f.read().splitlines()[1:]:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) * 1024
    return fields


def measure(engine: str, images: Path, n: int, actors: int = 1) -> dict:
    """One fresh run: peak RSS of the driver (sampled every 0.5 s); peak own memory (anonymous pages: the
    heap, not the object store) of the largest Ray worker and of all workers together; peak object-store
    pages in memory (shared pages of every process in the run, driver included, counted once); these
    three from smaps_rollup every 2 s."""
    import psutil

    work = Path(tempfile.mkdtemp(prefix="patchwise-scale-"))
    src, out = work / "in", work / "out"
    src.mkdir()
    scenes = sorted(images.glob("*.jpg"))
    for k in range(n):  # the same scenes in the same order for every run; past the last one they repeat
        (src / f"image-{k:05d}.jpg").symlink_to(scenes[k % len(scenes)])
    cmd = [sys.executable, "-m", "bench.scale", "--child", "--engine", engine, "--images", str(src),
           "--actors", str(actors), "--out", str(out)]
    began, cpu_before = time.time(), os.times()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"driver": 0, "worker": 0, "workers": 0, "store": 0}
    live = [0]  # most Ray workers alive at once (actors, task workers, Ray's own)
    stop = threading.Event()

    def sample() -> None:
        me = psutil.Process(proc.pid)
        tick = 0
        while not stop.is_set():
            try:
                peaks["driver"] = max(peaks["driver"], me.memory_info().rss)
                # smaps_rollup walks every mapping: read every 2 s only, or the sampling itself slows the run
                procs = [me, *me.children(recursive=True)] if tick % 4 == 0 else []  # the driver maps the store too
            except psutil.Error:
                procs = []
            tick += 1
            own, store = [], 0
            for p in procs:
                try:
                    roll = _rollup(p.pid)
                    store += roll.get("Pss_Shmem", 0)
                    cmdline = p.cmdline()[:1]
                    if cmdline and cmdline[0].startswith("ray::"):  # Ray's workers: actors and tasks
                        own.append(roll.get("Anonymous", 0))
                except (psutil.Error, OSError):
                    continue
            if procs:
                peaks["store"] = max(peaks["store"], store)
            if own:
                live[0] = max(live[0], len(own))
                peaks["worker"] = max(peaks["worker"], max(own))
                peaks["workers"] = max(peaks["workers"], sum(own))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"{engine} run failed: {(stderr.strip().splitlines() or ['no output'])[-1]}")
    result = json.loads(lines[-1])
    cpu_after = os.times()  # this process: the sampler alone (the run's processes are its children)
    sampler_cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / (time.time() - began)
    rate, first, early, late = steady_rate(out)
    n_done = len(list((out / "json").glob("*.json")))
    shutil.rmtree(work, ignore_errors=True)
    return {"engine": engine if engine == "local" else f"ray x{actors}", "images": n, "done": n_done,
            "seconds": result["seconds"], "cluster_start": result["cluster_start"],
            "to_first": first - began, "img_s": rate, "early": early, "late": late, "live": live[0],
            "driver_cpu": result.get("driver_cpu", float("nan")), "sampler": sampler_cpu,
            **{f"{k}_mb": v / 2**20 for k, v in peaks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 small scenes; 6, 12 and 24 for memory")
    parser.add_argument("--memory", action="store_true",
                        help="only the memory rows: 2 actors over 50, 200 and 600 images")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--actors", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    size, n_speed, n_memory = ((640, 480), 6, (6, 12, 24)) if args.quick else ((1600, 1200), 50, (50, 200, 600))
    images = make_images(ROOT / "bench" / "data" / f"scale-{size[0]}x{size[1]}", n_memory[1], size)
    print(f"{size[0]}x{size[1]} scenes, bundled detector, 640 px tiles, overlap 0.25, "
          f"{os.cpu_count()} cores; Ray {__import__('ray').__version__}")
    rows = [measure("local", images, n_speed)]
    if not args.memory:
        rows += [measure("ray", images, n_speed, 1), measure("ray", images, n_speed, 2)]
    rows += [measure("ray", images, n, 2) for n in n_memory]
    local = rows[0]
    header = (f"{'run':<9} {'images':>6} {'done':>5} {'img/s':>6} {'ms/img':>7} {'+ms/img':>8} {'wall s':>7} "
              f"{'start s':>7} {'first/last':>9} {'drv ms/img':>10} {'driver MB':>9} {'worker MB':>9} {'workers MB':>10} "
              f"{'alive':>5} {'store MB':>8} {'sampler':>7}")
    print(header)
    for r in rows:
        ms = 1000 / r["img_s"]
        print(f"{r['engine']:<9} {r['images']:>6} {r['done']:>5} {r['img_s']:>6.2f} {ms:>7.0f} "
              f"{ms - 1000 / local['img_s']:>8.0f} {r['seconds']:>7.1f} {r['cluster_start']:>7.1f} "
              f"{r['early']:>4.1f}/{r['late']:<4.1f} {1000 * r['driver_cpu'] / r['images']:>10.0f} "
              f"{r['driver_mb']:>9.0f} {r['worker_mb']:>9.0f} {r['workers_mb']:>10.0f} {r['live']:>5} "
              f"{r['store_mb']:>8.0f} {r['sampler']:>7.1%}")
    print("img/s: steady state (the middle 80% of the images by finishing time); +ms/img: over the single-process CLI per image "
          "(for ray x2, per image of the pair's combined rate); start s: the local cluster's start; "
          "first/last: img/s over the first and the last third of the images; drv ms/img: the driver's CPU time "
          "per image (the CLI's: all its work); alive: most Ray workers at once; "
          "driver MB: its RSS; worker MB: the largest Ray worker's own memory (anonymous pages: its heap, not the "
          "object store); workers MB: all Ray workers' own memory together (peak of the sum); store MB: the shared "
          "object store's pages in memory (proportional shares of every process, summed). Peaks over the run; "
          f"past the {n_memory[1]} generated scenes the same scenes repeat under other names. sampler: this script's own CPU "
          "(one core = 100%), which the run shares its cores with.")


if __name__ == "__main__":
    main()
