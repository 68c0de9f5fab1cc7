"""A folder run on Ray (`--engine ray`) against the single-process CLI on the same images: images per second
with 1 and 2 actors, the overhead per image, and the driver's and workers' peak memory as the run grows.

    python -m bench.scale              # 50 scenes of 1600x1200 (1, 2 actors, local); then 50 vs 200 for memory
    python -m bench.scale --quick      # 6 small scenes, 6 vs 12 for memory: proves the script works

Run from the repository root. Every measurement is a fresh process (``python -m bench.scale --child``)
that starts its own local Ray cluster (its start is timed apart) and stops it; this process samples
the memory of that process and of every process under it: the driver (the child itself) and the Ray
workers (processes titled ``ray::...``: the model actors and the read/cut/write tasks). Images per
second are counted in steady state, from the first to the last image's files (their JSONs' times),
so the model loads and the cluster start are left out of it and reported on their own.
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
    print(json.dumps({"seconds": time.perf_counter() - t0, "cluster_start": start, "code": code}))


def steady_rate(out: Path) -> tuple[float, float]:
    """(images per second between the first and the last image finished, seconds to the first one)."""
    times = sorted(p.stat().st_mtime for p in (out / "json").glob("*.json"))
    if len(times) < 2:
        return float("nan"), float("nan")
    return (len(times) - 1) / max(times[-1] - times[0], 1e-9), times[0]


def measure(engine: str, images: Path, n: int, actors: int = 1) -> dict:
    """One fresh run, sampled every 0.2 s: peak RSS of the driver, of the largest worker and of all workers."""
    import psutil

    work = Path(tempfile.mkdtemp(prefix="patchwise-scale-"))
    src, out = work / "in", work / "out"
    src.mkdir()
    for path in sorted(images.glob("*.jpg"))[:n]:  # the first n scenes, the same for every run
        (src / path.name).symlink_to(path)
    cmd = [sys.executable, "-m", "bench.scale", "--child", "--engine", engine, "--images", str(src),
           "--actors", str(actors), "--out", str(out)]
    began = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"driver": 0, "worker": 0, "workers": 0, "worker_uss": 0, "workers_uss": 0}
    stop = threading.Event()

    def sample() -> None:
        me = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                rss = {}
                for p in procs:
                    try:
                        cmd = p.cmdline()[:1]
                        # RSS counts the pages of Ray's shared object store a worker has touched; USS is
                        # the worker's own memory (read from smaps, so only for Ray's workers).
                        ray_worker = bool(cmd) and cmd[0].startswith("ray::")
                        uss = p.memory_full_info().uss if ray_worker else 0
                        rss[p.pid] = (p.memory_info().rss, cmd, uss)
                    except psutil.Error:
                        continue
                peaks["driver"] = max(peaks["driver"], rss.get(proc.pid, (0,))[0])
                workers = [(r, u) for pid, (r, cmd, u) in rss.items() if cmd and cmd[0].startswith("ray::")]
                if workers:
                    peaks["worker"] = max(peaks["worker"], max(r for r, _ in workers))
                    peaks["workers"] = max(peaks["workers"], sum(r for r, _ in workers))
                    peaks["worker_uss"] = max(peaks["worker_uss"], max(u for _, u in workers))
                    peaks["workers_uss"] = max(peaks["workers_uss"], sum(u for _, u in workers))
            except psutil.Error:
                pass
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"{engine} run failed: {(stderr.strip().splitlines() or ['no output'])[-1]}")
    result = json.loads(lines[-1])
    rate, first = steady_rate(out)
    n_done = len(list((out / "json").glob("*.json")))
    shutil.rmtree(work, ignore_errors=True)
    return {"engine": engine if engine == "local" else f"ray x{actors}", "images": n, "done": n_done,
            "seconds": result["seconds"], "cluster_start": result["cluster_start"],
            "to_first": first - began, "img_s": rate,
            **{f"{k}_mb": v / 2**20 for k, v in peaks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 small scenes, 6 vs 12 for memory")
    parser.add_argument("--memory", action="store_true", help="only the memory rows: 2 actors over 50 and 200 images")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--actors", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    size, n_speed, n_small, n_large = ((640, 480), 6, 6, 12) if args.quick else ((1600, 1200), 50, 50, 200)
    images = make_images(ROOT / "bench" / "data" / f"scale-{size[0]}x{size[1]}", n_large, size)
    print(f"{size[0]}x{size[1]} scenes, bundled detector, 640 px tiles, overlap 0.25, "
          f"{os.cpu_count()} cores; Ray {__import__('ray').__version__}")
    rows = [measure("local", images, n_speed)]
    if not args.memory:
        rows += [measure("ray", images, n_speed, 1), measure("ray", images, n_speed, 2)]
    rows += [measure("ray", images, n, 2) for n in (n_small, n_large)]
    local = rows[0]
    header = (f"{'run':<9} {'images':>6} {'done':>5} {'img/s':>6} {'ms/img':>7} {'+ms/img':>8} {'wall s':>7} "
              f"{'start s':>7} {'driver MB':>9} {'worker MB':>9} {'workers MB':>10} {'worker USS':>10} {'workers USS':>11}")
    print(header)
    for r in rows:
        ms = 1000 / r["img_s"]
        print(f"{r['engine']:<9} {r['images']:>6} {r['done']:>5} {r['img_s']:>6.2f} {ms:>7.0f} "
              f"{ms - 1000 / local['img_s']:>8.0f} {r['seconds']:>7.1f} {r['cluster_start']:>7.1f} "
              f"{r['driver_mb']:>9.0f} {r['worker_mb']:>9.0f} {r['workers_mb']:>10.0f} {r['worker_uss_mb']:>10.0f} "
              f"{r['workers_uss_mb']:>11.0f}")
    print("img/s: steady state (first to last image finished); +ms/img: over the single-process CLI per image "
          "(for ray x2, per image of the pair's combined rate); start s: the local cluster's start; "
          "worker MB: the largest Ray worker's RSS; workers MB: all Ray workers' RSS together (peak of the sum); "
          "USS: the same without shared pages (RSS counts the pages of Ray's shared object store a worker touched).")


if __name__ == "__main__":
    main()
