"""Optional packages, imported where a feature needs them: ``import tiling`` needs only the core set, and a
feature whose package is missing fails with one line that names the pip extra installing it."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Literal, get_args

Extra = Literal["openvino", "onnx", "int8", "geo", "ray", "video"]
EXTRAS: tuple[str, ...] = get_args(Extra)  # pyproject.toml's extras, less app and all

# What each optional top-level package is for, as the error line words it.
FEATURES: dict[str, str] = {
    "openvino": "the OpenVINO runtime",
    "onnxruntime": "ONNX Runtime",
    "onnx": "reading ONNX models",
    "nncf": "making 8-bit copies",
    "rasterio": "reading rasters (GeoTIFF, COG, JPEG 2000, VRT)",
    "affine": "writing GeoJSON",
    "ray": "the Ray engine",
    "pyarrow": "reading URIs",
    "av": "reading and writing video clips",
    "lap": "tracking objects over video frames",
    "motmetrics": "scoring tracks (MOTA, IDF1)",
}
# A package whose pip distribution is named otherwise.
_DISTRIBUTIONS = {"ray": "ray[data]"}


class MissingExtra(ImportError):
    """An optional package is not installed; the message is one line naming the extra that installs it."""

    def __init__(self, module: str, extra: str):
        top = module.split(".")[0]
        self.package = _DISTRIBUTIONS.get(top, top)
        self.extra = extra
        super().__init__(f"{FEATURES.get(top, top)} needs {self.package}: pip install 'patchwise[{extra}]'",
                         name=module)


def require(module: str, extra: Extra) -> ModuleType:
    """``module`` imported, or :class:`MissingExtra` when it (or its parent package) is not installed."""
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {EXTRAS}, got {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module, extra) from None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (a top-level package only)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: set to None in sys.modules, as tests do to hide one
        return False
