"""Run one method once on one image in a fresh process; print JSON with time and peak memory.

    python -m bench.worker --method patchwise --image bench/data/x.jpg [--model ...] [--mem-limit-gb 12]

Run from the repository root. Used by bench.scaling so each measurement starts from a clean
process; the address-space limit turns a runaway allocation into a reported "out of memory"
instead of a frozen machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    from bench import peers

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True)
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--mem-limit-gb", type=float, default=12)
    peers.add_method_args(ap)
    p = ap.parse_args()

    methods = peers.build_methods(p.model, p)
    if p.method not in methods:
        print(json.dumps({"method": p.method, "error": f"unknown or not installed; have {sorted(methods)}"}))
        return
    base = rss_mb()
    limit = int(p.mem_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t = time.perf_counter()
    try:
        det = methods[p.method](p.image).detections
        out = {"method": p.method, "seconds": time.perf_counter() - t, "objects": len(det)}
    except MemoryError:
        out = {"method": p.method, "error": f"out of memory (over {p.mem_limit_gb:g} GB address space)"}
    except RuntimeError as exc:
        msg = str(exc)
        out = {"method": p.method, "error": "out of memory" if "alloc" in msg.lower() else msg[:200]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(peak_mb=round(peak), model_loaded_mb=round(base), growth_mb=round(peak - base))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
