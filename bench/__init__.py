"""Benchmarks. Run each from the repository root as a module, e.g. ``python -m bench.peers`` (bench/README.md)."""
