"""Models: what the pipeline runs on tiles, and how checkpoints become one.

- :mod:`.base`: the :class:`Model` interface, :class:`InferSpec` (how a model runs), any callable as a model.
- :mod:`.ultralytics_model` and :mod:`.masks`: Ultralytics checkpoints on the lean batch path.
- :mod:`.loading`, :mod:`.vetting`, :mod:`.official`: opening checkpoints safely, by path, bytes or name.
- :mod:`.runtimes` and :mod:`.export_cache`: the same network exported to OpenVINO / ONNX Runtime.
"""
from .base import CallableModel, InferSpec, Model, ModelError
from .loading import as_model, load_model
from .official import OFFICIAL_NAMES
from .ultralytics_model import UltralyticsModel

__all__ = ["CallableModel", "InferSpec", "Model", "ModelError", "OFFICIAL_NAMES", "UltralyticsModel", "as_model",
           "load_model"]
