"""The model on every worker: what the driver sends (a file's bytes, an export zipped, or a callable),
how a worker loads it (``tiling.load_model``, so the safe-loading rules apply there too), and the 8-bit
calibration tiles, cut once here and shared through the object store."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..models import ModelError
from ..outputs import Entry, display_name
from .cut import is_raster

if TYPE_CHECKING:
    from ..bands import BandSpec


def model_source(model) -> tuple[object, str]:
    """What each worker loads: a model file's bytes or an OpenVINO folder zipped (the workers need no
    shared disk for it), an official name, or a callable shipped as is."""
    from ..models import Model, UltralyticsModel
    from ..models.vetting import read_bounded

    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the model"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir() or path.suffix.lower() == ".xml":
            return zip_export(path.parent if path.suffix.lower() == ".xml" else path), path.name
        if path.is_file():
            return read_bounded(path, path.name), path.name
        return str(model), path.name
    if isinstance(model, UltralyticsModel):
        raise ModelError("a loaded Ultralytics model cannot be sent to the workers: pass its file instead, "
                         "and each worker loads it safely itself")
    if isinstance(model, Model) or callable(model):
        return model, getattr(model, "source", "") or type(model).__name__
    raise ModelError(f"expected a model file, its bytes or a callable model, got {type(model).__name__}")


def zip_export(folder: Path) -> bytes:
    """An OpenVINO export folder's model files, zipped flat in memory as ``tiling.load_model`` takes them."""
    import io
    import zipfile

    from ..models.archive import EXPORT_FILES
    from ..models.vetting import read_bounded

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

    from ..models.calibration import Calibration

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
    from ..models import as_model, load_model

    source, options = fetched(shipment)
    if isinstance(source, (bytes, str)):
        return load_model(source, name=shipment.label, **options)
    return as_model(source)


def calibration_for(model, calibration, run: Sequence[Entry], max_pixels: int | None, bands: BandSpec | None):
    """The 8-bit copy's calibration as tiles cut here, once (no model, no torch in the driver), or None
    when none is needed. The worker that checks the model makes the copy from them; the actors find it
    in their machine's cache, keyed on the weights and the calibration's digest, or on another machine
    make the same one from the same tiles: no worker needs the images on its disk. The tiles are put in
    Ray's object store once (:func:`ship`)."""
    from ..models import calibration as calibrations

    chosen = calibrations.run_calibration(model, calibration, [e.path for e in run],
                                          lambda path: is_raster(path, max_pixels), bands)
    return None if chosen is None else calibrations.cut_calibration(chosen)


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
