"""The model on every worker: what the driver sends (a file's bytes, an export zipped, or a callable),
how a worker loads it (``tiling.load_model``, so the safe-loading rules apply there too), and the 8-bit
calibration tiles, cut once here and shared through the object store."""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..bands import BandSpec
from ..inputs import Entry
from ..models import Model, ModelError, UltralyticsModel, as_model, load_model
from ..models.archive import EXPORT_FILES
from ..models.bundled import BundledAssets
from ..models.calibration import Calibration, cut_calibration, run_calibration
from ..models.source import ModelSource, SourceKind
from ..models.vetting import read_bounded
from ..names import display_name
from .cut import is_raster


def shipped_model(model) -> tuple[object, str]:
    """(what each worker loads, its label): a model file's bytes or an OpenVINO folder zipped (the workers
    need no shared disk for it), an official name, or a callable shipped as is."""
    given = ModelSource.of(model)
    if given.data is not None:
        return given.data, "the model"
    if given.folder is not None:
        return zip_export(given.folder), given.label
    if given.kind in (SourceKind.CHECKPOINT, SourceKind.ONNX) and given.path.is_file():
        return read_bounded(given.path, given.label), given.label
    if given.kind is not SourceKind.CALLABLE:
        return given.value if given.value is not None else str(given.path), given.label
    if isinstance(model, UltralyticsModel):
        raise ModelError("a loaded Ultralytics model cannot be sent to the workers: pass its file instead, "
                         "and each worker loads it safely itself")
    if isinstance(model, Model) or callable(model):
        return model, given.label
    raise ModelError(f"expected a model file, its bytes or a callable model, got {type(model).__name__}")


def zip_export(folder: Path) -> bytes:
    """An OpenVINO export folder's model files, zipped flat in memory as ``tiling.load_model`` takes them."""
    if not folder.is_dir():
        raise ModelError(f"{display_name(folder.name)}: no such model folder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in EXPORT_FILES:
                zf.writestr(path.name, read_bounded(path, folder.name))
    return buf.getvalue()


@dataclass(frozen=True)
class Shipment:
    """What every worker is given to load the model. The model's bytes and the 8-bit calibration tiles
    (up to ~100 MB) are put in Ray's object store once by the driver and travel as references held
    inside this object (Ray only fetches references given as whole arguments): no actor's arguments
    carry a copy, and a restarted actor fetches them again from the store."""

    source: object  # an ObjectRef of the model's bytes or of a callable model, or an official name
    label: str
    options: dict  # load_model's keyword arguments; "calibration" may be an ObjectRef


def ship(source, label: str, load_options: dict) -> Shipment:
    """The model as the workers will load it (:class:`Shipment`); call once Ray is connected."""
    import ray

    if not isinstance(source, str):  # bytes or a callable; an official name is a few characters
        source = ray.put(source)
    if isinstance(load_options.get("calibration"), Calibration):
        load_options = dict(load_options, calibration=ray.put(load_options["calibration"]))
    return Shipment(source, label, load_options)


def fetched(shipment: Shipment) -> tuple[object, dict]:
    """The shipment's model source and load options, with what is in the object store fetched."""
    import ray

    source, options = shipment.source, shipment.options
    if isinstance(source, ray.ObjectRef):
        source = ray.get(source)
    if isinstance(options.get("calibration"), ray.ObjectRef):
        options = dict(options, calibration=ray.get(options["calibration"]))
    return source, options


def load(shipment: Shipment):
    """The model on this worker, through ``tiling.load_model``'s safe loading (a callable as it is)."""
    source, options = fetched(shipment)
    if isinstance(source, (bytes, str)):
        return load_model(source, name=shipment.label, **options)
    return as_model(source)


def calibration_for(model, calibration, run: Sequence[Entry], max_pixels: int | None, bands: BandSpec | None,
                    bundled: BundledAssets | None = None):
    """The 8-bit copy's calibration as tiles cut here, once (no model, no torch in the driver), or None
    when none is needed. The worker that checks the model makes the copy from them; the actors find it
    in their machine's cache, keyed on the weights and the calibration's digest, or on another machine
    make the same one from the same tiles: no worker needs the images on its disk. The tiles are put in
    Ray's object store once (:func:`ship`). ``bundled``: as ``tiling.load_model`` takes it."""
    chosen = run_calibration(model, calibration, [e.path for e in run], lambda path: is_raster(path, max_pixels),
                             bands, bundled)
    return None if chosen is None else cut_calibration(chosen)


def check_model(shipment: Shipment) -> dict[int, str] | str:
    """The model's class names, or the one-line reason it cannot be used."""
    try:
        return dict(load(shipment).names)
    except ModelError as exc:
        return str(exc)


def model_names(shipment: Shipment) -> dict[int, str]:
    """Load the model once on a worker, in a process that ends afterwards: a bad model is one
    ``ModelError`` before any image is read, the driver never holds a model, and the worker's
    machine has the export cached for the actors."""
    import ray

    names = ray.get(ray.remote(num_cpus=0, max_calls=1)(check_model).remote(shipment))
    if isinstance(names, str):
        raise ModelError(names)
    return names
