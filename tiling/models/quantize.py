"""8-bit copies of a model's OpenVINO export: made with NNCF, used only when they agree with the float model.

Post-training quantization (``nncf.quantize``) turns the network's convolutions into 8-bit integer
ones, which OpenVINO runs on the CPU's integer dot-product units (AVX2, AVX-512 VNNI, AMX). The
detection head's own operations stay float, as in Ultralytics' INT8 export: box decoding, the DFL,
every Sigmoid and, for segmentation, the mask prototypes and coefficients: quantized too, they take the
bundled detector's AP50 from 0.90 to 0.14.

A copy is calibrated on tiles of images (:mod:`.calibration`), then checked against the float network on
held-out tiles (:mod:`.agreement`); below :data:`.agreement.AGREEMENT_BAR` it is not used.

Copies are cached like exports (:mod:`.export_cache`), keyed on the weights' SHA-256, the calibration
data's digest and the versions, with the agreement measured when they were made (``int8.json``). An
application's bundled models ship theirs (:mod:`.bundled`), found by the weights' SHA-256.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..optional import require
from ..util import Progress
from . import agreement
from .base import ModelError
from .bundled import RECORD, BundledAssets, read_record
from .calibration import SETTINGS, Calibration, CalibrationError, calibration_from, calibration_tiles
from .export_cache import cached, entry_path
from .exported import load_export
from .guard import sealed
from .runtimes import Precision, Runtime, backend

LOG = logging.getLogger(__name__)


def network_input(tile: np.ndarray) -> np.ndarray:
    """A BGR uint8 tile as the network takes it: 1 x 3 x H x W RGB float in [0, 1] (as ``_prepare`` makes it)."""
    return (tile[:, :, ::-1].transpose(2, 0, 1)[None] * np.float32(1 / 255.0)).astype(np.float32)


def float_scope(ov_model, task: str):
    """The head's operations NNCF must leave in float: box decoding, DFL and every Sigmoid, as Ultralytics'
    INT8 export does, plus the mask prototypes and coefficients of a segmentation head (the angle or
    keypoint branch, ``cv4``, of other heads)."""
    import nncf

    ops = ov_model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        raise ModelError("this network has no Sigmoid, so it is not an Ultralytics detection head; "
                         "it cannot be quantized safely")
    head = sigmoids[-1].split("/", 1)[0]  # e.g. "__module.model.23"
    prefixes = (f"{head}/", f"{head}.dfl") + ((f"{head}.proto", f"{head}.cv4") if task != "detect" else ())
    names = [op.get_friendly_name() for op in ops
             if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith(prefixes)]
    return nncf.IgnoredScope(names=names, validate=False)


def quantize_ir(fp32_xml: Path, task: str, tiles: Sequence[np.ndarray], out_dir: Path,
                progress: Progress | None = None) -> Path:
    """``nncf.quantize`` the IR at ``fp32_xml`` on ``tiles`` into ``out_dir/model.xml`` (with its metadata);
    ``progress(done, len(tiles))`` as the network is measured on each tile."""
    import nncf
    import openvino as ov

    seen = [0]

    def transform(tile: np.ndarray) -> np.ndarray:
        seen[0] += 1
        if progress is not None:
            progress(min(seen[0], len(tiles)), len(tiles))
        return network_input(tile)

    model = ov.Core().read_model(str(fp32_xml))
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's own progress bars; ``progress`` reports instead
        quantized = nncf.quantize(model, nncf.Dataset(list(tiles), transform),
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(tiles),
                                  ignored_scope=float_scope(model, task))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=False)
    shutil.copyfile(fp32_xml.parent / "metadata.yaml", out_dir / "metadata.yaml")
    return out_dir / "model.xml"



def versions() -> dict[str, str]:
    import nncf
    import openvino
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "openvino": openvino.__version__, "nncf": nncf.__version__}


def make_copy(model, fp32_xml: Path, calibration: Calibration, out_dir: Path,
              progress: Progress | None = None) -> dict:
    """Quantize ``model``'s float IR into ``out_dir`` and measure it on held-out tiles; returns the record
    written beside it as ``int8.json`` (``model.net`` must be the float network). ``progress(done, total)``:
    a step per calibration tile measured, and a last one once the copy has been checked."""
    say = progress or (lambda done, total: None)
    calib, held = calibration_tiles(calibration)
    steps = len(calib) + 1
    say(0, steps)
    xml = quantize_ir(fp32_xml, model.task, calib, out_dir, lambda done, _: say(done, steps))
    record = {"weights_sha256": model.digest, "calibration": calibration.described,
              "calibration_sha256": calibration.digest, "calibration_tiles": len(calib),
              **agreement.agreement(model, model.net, backend(Runtime.OPENVINO).open(xml), held), "settings": SETTINGS,
              "versions": versions()}
    (out_dir / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    say(steps, steps)
    return record


def cached_copy(model, weights: bytes, calibration: Calibration, progress: Progress | None = None) -> Path:
    """The 8-bit IR for ``model`` calibrated on ``calibration``, made once per cache (see :mod:`.export_cache`)."""
    nncf = require("nncf", "int8")
    import ultralytics

    fp32_xml = backend(Runtime.OPENVINO).export(weights, model.digest)  # made with the float runtime: found again
    name = (f"{model.digest[:32]}-{Runtime.OPENVINO}-{Precision.INT8}-{calibration.digest[:16]}-{ultralytics.__version__}-"
            f"nncf{nncf.__version__}-{SETTINGS}")
    return cached(entry_path(name), "*.xml", lambda entry: make_copy(model, fp32_xml, calibration, entry, progress))


def _vetted_net(folder: Path, model, label: str):
    """The network of an 8-bit folder, vetted as any export is and checked to be ``model``'s copy."""
    with sealed(label):
        copy = load_export(folder, label, model.digest)
    if copy.task != model.task or copy.names != model.names:
        raise ModelError(f"{label} is not a copy of this model (its task or class names differ)")
    return copy.net


def use_int8(model, weights: bytes, calibration=None, progress: Progress | None = None,
             bundled: BundledAssets | None = None) -> None:
    """Run ``model`` (on the float OpenVINO runtime) on its 8-bit copy when that agrees with it to at least
    :data:`.agreement.AGREEMENT_BAR`; otherwise it stays in float and ``model.runtime_note`` says why. Either way
    ``model.agreement`` holds the measured figure. ``calibration``: as :func:`calibration_from` takes;
    None for a model of ``bundled``: its shipped copy, or one calibrated on the samples of its kind."""
    if not backend(model.runtime).supports(Precision.INT8):
        why = model.runtime_note or f"runtime {model.runtime} was chosen"
        model.runtime_note = f"8-bit runs on OpenVINO only, so the model runs in full precision ({why})"
        return
    bundled = bundled or BundledAssets()
    shipped = bundled.copy_for(model.digest) if calibration is None else None
    chosen = None
    if shipped is None:
        if calibration is None and bundled.has_weights(model.digest):
            calibration = bundled.samples_for(model.task) or None
        chosen = calibration_from(calibration) if calibration is not None else None
        if chosen is None:
            raise CalibrationError(f"{model.source}: 8-bit needs calibration images (calibration=a folder or a list "
                                   "of images, ideally the ones to be processed)")
    try:
        folder = shipped or cached_copy(model, weights, chosen, progress).parent
        record = read_record(folder)
        model.agreement = float(record["agreement"])
        if model.agreement < agreement.AGREEMENT_BAR:
            model.runtime_note = (f"the 8-bit copy was not used: on {record.get('held_out_tiles', '?')} held-out tiles "
                                  f"it agreed with full precision at {model.agreement:.1%} (the bar is "
                                  f"{agreement.AGREEMENT_BAR:.0%}), so the model runs in full precision")
            LOG.warning("%s: %s", model.source, model.runtime_note)
            return
        model.run_on(_vetted_net(folder, model, f"the 8-bit copy of {model.source}"), model.runtime, Precision.INT8)
    except CalibrationError:
        raise
    except Exception as exc:  # a copy that cannot be made or opened leaves the float model running
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        model.runtime_note = f"the 8-bit copy could not be used ({type(exc).__name__}: {text}); full precision runs"
        LOG.warning("%s: %s", model.source, model.runtime_note)
        return
