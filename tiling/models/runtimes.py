"""Runtimes and precisions as types, and the registry of runtimes a model's forward pass can run on.

A checkpoint's forward pass may run on torch, or on an export of it run by OpenVINO or ONNX Runtime
(:mod:`.nets`): tiling, padding, Ultralytics' NMS and box-cropped mask decoding stay the same, so results
match torch. Each runtime is one :class:`Backend` in :data:`BACKENDS`: the package it needs, how a
checkpoint is exported for it (cached by :mod:`.export_cache`), how the export is opened and which
precisions it runs. Callers ask the registry (:func:`backend`) instead of comparing names; a new runtime is
one more entry here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..optional import installed
from .export_cache import export
from .nets import MIN_INT8_SIDE, ONNXNet, OpenVINONet

__all__ = ["BACKENDS", "MIN_INT8_SIDE", "Backend", "Precision", "Runtime", "available_runtimes", "backend",
           "requested", "resolve"]


class Runtime(StrEnum):
    """Where a model's forward pass runs. ``AUTO`` is a request only: the fastest one installed."""

    AUTO = "auto"
    TORCH = "torch"
    OPENVINO = "openvino"
    ONNX = "onnx"

    @classmethod
    def from_value(cls, value: object) -> Runtime:
        """``value`` (a Runtime or its name) as a Runtime, or a one-line ``ValueError`` listing the names."""
        return _member(cls, value, "runtime")


class Precision(StrEnum):
    """The numbers a model's forward pass computes with. ``INT8`` runs an 8-bit copy of the float
    network (:mod:`.quantize`); ``BF16`` lets OpenVINO use the CPU's bfloat16 units."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"

    @classmethod
    def from_value(cls, value: object) -> Precision:
        """``value`` (a Precision or its name) as a Precision, or a one-line ``ValueError`` listing the names."""
        return _member(cls, value, "precision")

    @property
    def exported(self) -> Precision:
        """What the exported float network runs at: an 8-bit copy is made from (and checked against) FP32."""
        return Precision.FP32 if self is Precision.INT8 else self


def _member(cls, value: object, what: str):
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        names = tuple(m.value for m in cls)
        raise ValueError(f"{what} must be one of {names}, got {value!r}") from None


@dataclass(frozen=True)
class Backend:
    """One runtime: the package it needs, how a checkpoint is exported for it and opened, what it runs at."""

    runtime: Runtime
    title: str  # its name in messages
    package: str | None  # the module that must be importable; None: always here
    precisions: frozenset[Precision]
    export_format: str | None = None  # Ultralytics' export format; None: runs the checkpoint itself
    artifact: str = ""  # the exported model file inside its cache folder (a glob)
    export_options: tuple[tuple[str, object], ...] = ()
    opener: Callable[[Path, Precision], object] | None = None

    def installed(self) -> bool:
        return self.package is None or installed(self.package)

    def supports(self, precision: Precision) -> bool:
        return precision in self.precisions

    def export(self, weights: bytes, digest: str) -> Path:
        """This runtime's export of the checkpoint ``weights`` (SHA-256 ``digest``), made once per cache."""
        if self.export_format is None:
            raise ValueError(f"runtime {self.runtime} runs checkpoints as they are; there is nothing to export")
        return export(weights, digest, self.export_format, self.artifact, **dict(self.export_options))

    def open(self, path: Path, precision: Precision = Precision.FP32):
        """The exported network at ``path``, run at ``precision`` (one of :attr:`precisions`)."""
        if self.opener is None:
            raise ValueError(f"runtime {self.runtime} opens no exported files")
        return self.opener(Path(path), precision)

    def exported_net(self, weights: bytes, digest: str, precision: Precision = Precision.FP32):
        """The checkpoint exported and opened. ``Precision.BF16`` (OpenVINO) trades exactness for speed: on a
        CPU with bf16 units it ran 1.6x faster here with the same AP50, 99% of boxes within 0.35 px and the
        worst within 2.2 px."""
        return self.open(self.export(weights, digest), precision)


BACKENDS: dict[Runtime, Backend] = {
    Runtime.OPENVINO: Backend(
        Runtime.OPENVINO, "OpenVINO", "openvino", frozenset(Precision), "openvino", "**/*.xml",
        opener=lambda path, precision: OpenVINONet(path, bf16=precision is Precision.BF16)),
    Runtime.ONNX: Backend(
        Runtime.ONNX, "ONNX Runtime", "onnxruntime", frozenset({Precision.FP32}), "onnx", "*.onnx", (("simplify", True),),
        opener=lambda path, precision: ONNXNet(path)),
    Runtime.TORCH: Backend(Runtime.TORCH, "PyTorch", None, frozenset({Precision.FP32})),
}


def backend(runtime: Runtime | str) -> Backend:
    """The registry's entry for a runtime (not ``AUTO``, which :func:`resolve` turns into runtimes)."""
    runtime = Runtime.from_value(runtime)
    if runtime is Runtime.AUTO:
        raise ValueError("runtime 'auto' is a request, not a runtime: resolve() it first")
    return BACKENDS[runtime]


def available_runtimes() -> list[Runtime]:
    """Runtimes usable here, fastest first on a CPU (the registry's order, torch last)."""
    return [r for r, b in BACKENDS.items() if b.installed() and r is not Runtime.TORCH] + [Runtime.TORCH]


def resolve(runtime: Runtime | str) -> list[Runtime]:
    """The runtimes to try, in order, for a requested ``runtime``; torch, always there, ends the list."""
    runtime = Runtime.from_value(runtime)
    if runtime is Runtime.AUTO:
        import torch

        return [Runtime.TORCH] if torch.cuda.is_available() else available_runtimes()
    return [runtime] if runtime is Runtime.TORCH else [runtime, Runtime.TORCH]


def requested(runtime: Runtime | str, precision: Precision | str) -> tuple[Runtime, Precision]:
    """A request as types, or a one-line ``ValueError``: a bad name, or a precision its runtime cannot run."""
    runtime, precision = Runtime.from_value(runtime), Precision.from_value(precision)
    if runtime is not Runtime.AUTO and not backend(runtime).supports(precision):
        able = [b for b in BACKENDS.values() if b.supports(precision)]
        raise ValueError(f"precision '{precision}' runs on {' or '.join(b.title for b in able)}; use runtime 'auto' "
                         f"or {' or '.join(repr(str(b.runtime)) for b in able)}, not {str(runtime)!r}")
    return runtime, precision
