"""What a model argument is, decided once: every stage that takes a model (loading, a run's key, shipping
it to a cluster's workers, choosing 8-bit calibration data) asks :meth:`ModelSource.of` instead of
testing suffixes and types itself, so that they all agree on what a given argument is.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path

from ..util import sha256_of, sha256_of_file
from .archive import EXPORT_FILES, MAX_ENTRIES
from .vetting import read_bounded


class SourceKind(Enum):
    """What a model argument holds."""

    CHECKPOINT = "checkpoint"  # an Ultralytics .pt file (or a file of another suffix, refused when loaded)
    EXPORT_FOLDER = "export folder"  # an OpenVINO export's folder (its files zipped, when given as bytes)
    OPENVINO_XML = "openvino xml"  # the .xml file of an OpenVINO export, its .bin beside it
    ONNX = "onnx"  # an ONNX file
    OFFICIAL = "official name"  # text that names no file here: an official checkpoint's name
    CALLABLE = "callable"  # a model object or a function, run as it is

    @property
    def is_export(self) -> bool:
        """An export runs as it was exported: it is not converted, nor made 8-bit."""
        return self in (SourceKind.EXPORT_FOLDER, SourceKind.OPENVINO_XML, SourceKind.ONNX)


@dataclass(frozen=True)
class ModelSource:
    """A model argument classified: its kind, and the file (``path``), content (``data``) or object
    (``value``) it came as. ``digest`` identifies its content (see :attr:`digest`)."""

    kind: SourceKind
    label: str  # how messages name it
    path: Path | None = None  # on disk
    data: bytes | None = None  # given as bytes
    value: object = None  # an official name, or a callable model

    @classmethod
    def of(cls, model, label: str | None = None) -> ModelSource:
        """Classify ``model``: bytes (a checkpoint, a zipped OpenVINO folder, or ONNX when ``label`` ends in
        ``.onnx``: ONNX has no magic number), a path (folder, ``.xml``, ``.onnx``, a zipped folder read here
        within the model size limit, other file, or a name that is no file), or anything else as a callable."""
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
            return cls(_kind_of_bytes(data, label or ""), label or "the uploaded model", data=data)
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            shown = label or path.name or str(model)
            suffix = path.suffix.lower()
            if path.is_dir():
                return cls(SourceKind.EXPORT_FOLDER, shown, path=path)
            if suffix == ".xml":
                return cls(SourceKind.OPENVINO_XML, shown, path=path)
            if suffix == ".onnx":
                return cls(SourceKind.ONNX, shown, path=path)
            if suffix == ".zip" and path.is_file():  # an OpenVINO folder zipped, as the page takes it
                return cls(SourceKind.EXPORT_FOLDER, shown, path=path, data=read_bounded(path, shown))
            if path.is_file():
                return cls(SourceKind.CHECKPOINT, shown, path=path)
            return cls(SourceKind.OFFICIAL, shown, value=str(model))
        return cls(SourceKind.CALLABLE, label or getattr(model, "source", "") or type(model).__name__, value=model)

    @property
    def folder(self) -> Path | None:
        """An OpenVINO export's folder on disk (given as the folder or as its ``.xml``); None otherwise."""
        if self.kind is SourceKind.EXPORT_FOLDER and self.path is not None and self.data is None:
            return self.path
        return self.path.parent if self.kind is SourceKind.OPENVINO_XML else None

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the content: of the bytes or the file; of an OpenVINO folder's model files (each
        name with its hash), so the ``.bin`` weights count whether the folder or its ``.xml`` is given.
        An official name is its own identity, and a callable its ``source`` or type name. Computed on
        first use: a file is read only by the stages that need its hash."""
        if self.data is not None:
            return sha256_of(self.data)
        if self.folder is not None and self.folder.is_dir():
            return sha256_of("".join(f"{p.name}:{sha256_of_file(p)}" for p in sorted(self.folder.iterdir())
                                     if p.is_file() and p.suffix.lower() in EXPORT_FILES).encode())
        if self.path is not None and self.path.is_file():
            return sha256_of_file(self.path)
        if self.kind is SourceKind.CALLABLE:
            return getattr(self.value, "source", "") or type(self.value).__name__
        return str(self.value if self.value is not None else self.path)


def _kind_of_bytes(data: bytes, label: str) -> SourceKind:
    """A torch checkpoint (a zip holding ``data.pkl``, or anything not a zip: its vetting says what is
    wrong with it), an OpenVINO folder zipped, or ONNX (named so)."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()[: MAX_ENTRIES + 1]
        except zipfile.BadZipFile:
            return SourceKind.CHECKPOINT
        return SourceKind.CHECKPOINT if any(n.endswith("data.pkl") for n in names) else SourceKind.EXPORT_FOLDER
    return SourceKind.ONNX if label.lower().endswith(".onnx") else SourceKind.CHECKPOINT
