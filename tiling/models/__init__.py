"""Models: what the pipeline runs on tiles, and how a checkpoint or an export becomes one.

What a model is
- :mod:`.base`: the :class:`Model` interface, :class:`InferSpec` (how a model runs), any callable as a model.
- :mod:`.source`: what a model argument is (bytes, a checkpoint, an export, an official name), decided once.
- :mod:`.ultralytics_model`: Ultralytics checkpoints and exports on the lean batch path;
  :mod:`.decoding` and :mod:`.masks` turn network outputs into detections, masks decoded inside their boxes.

Opening one safely
- :mod:`.loading`: ``load_model`` and ``as_model``, the way in; :mod:`.official`: official checkpoints by name.
- :mod:`.vetting`: the checks in order; :mod:`.zip_layout`: the checkpoint's zip read alike by both readers;
  :mod:`.pickle_scan` and :mod:`.allowlist`: its pickle read without unpickling, and what it may name;
  :mod:`.guard`: no network, file writes or processes while it is opened; :mod:`.declared`: class names and
  metadata bounded before they are believed; :mod:`.archive`: an uploaded OpenVINO zip unpacked within limits.

Running it fast
- :mod:`.runtimes`: the runtimes (torch, OpenVINO, ONNX Runtime) and precisions as types;
  :mod:`.nets`: an export's forward pass on OpenVINO or ONNX Runtime; :mod:`.export_cache`: exports made
  once and kept on disk; :mod:`.exported`: exports as deployed (an ``.onnx`` file, an OpenVINO folder);
  :mod:`.telemetry`: OpenVINO's usage telemetry off, by its own consent file.
- :mod:`.quantize`: 8-bit copies; :mod:`.calibration`: their calibration tiles; :mod:`.agreement`: the
  accuracy guard on them; :mod:`.bundled`: the copies and samples an application ships and passes in.
"""
from . import telemetry
from .base import CallableModel, InferSpec, Model, ModelError
from .loading import as_model, load_model
from .official import OFFICIAL_NAMES
from .ultralytics_model import UltralyticsModel

telemetry.opt_out()  # OpenVINO and NNCF are imported lazily, so this runs before either (and any conversion)

__all__ = ["CallableModel", "InferSpec", "Model", "ModelError", "OFFICIAL_NAMES", "UltralyticsModel", "as_model",
           "load_model"]
