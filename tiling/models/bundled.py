"""Models an application ships with itself, their 8-bit copies made beforehand, and the sample images those
copies were calibrated on. The library never looks for them: the page and the CLI say where they are
(:class:`BundledAssets`), and without that every 8-bit copy is made from calibration images.

A shipped copy is an ``*_int8_openvino_model`` folder (``scripts/make_int8.py``) holding the 8-bit IR and
``int8.json``: the SHA-256 of the weights it was made from, of each of its files, and the agreement with
full precision measured when it was made. It is used only while every file still has its recorded SHA-256.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..imageio import IMAGE_SUFFIXES
from ..labels import is_oriented_label_file
from ..util import cached_sha256_of_file
from .base import ModelError

LOG = logging.getLogger(__name__)
RECORD = "int8.json"  # beside every 8-bit copy, shipped or cached


def read_record(folder: Path) -> dict:
    """An 8-bit copy's ``int8.json``, or a ``ModelError`` when it cannot be read or has no agreement figure."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder.name}: its {RECORD} cannot be read ({type(exc).__name__})") from None
    if not isinstance(record, dict) or not isinstance(record.get("agreement"), (int, float)):
        raise ModelError(f"{folder.name}: its {RECORD} has no agreement figure")
    return record


@dataclass(frozen=True)
class BundledAssets:
    """Where an application keeps its bundled models (``models_dir``: ``.pt`` weights and their shipped
    8-bit copies) and its sample images (``samples_dir``, each perhaps with a YOLO label file beside it)."""

    models_dir: Path | None = None
    samples_dir: Path | None = None

    @classmethod
    def beside(cls, weights) -> BundledAssets:
        """The 8-bit copies shipped in the folder of the checkpoint ``weights`` (the CLI's: no samples)."""
        return cls(models_dir=Path(weights).resolve().parent)

    def _records(self):
        """(folder, record) of every readable shipped copy."""
        if self.models_dir is None:
            return
        for record_path in sorted(Path(self.models_dir).glob(f"*_int8_openvino_model/{RECORD}")):
            try:
                yield record_path.parent, read_record(record_path.parent)
            except ModelError:
                continue

    def copy_for(self, digest: str) -> Path | None:
        """The shipped 8-bit folder made from the weights with SHA-256 ``digest``, when every file in it
        still has the SHA-256 recorded beside it; None otherwise."""
        for folder, record in self._records():
            if record.get("weights_sha256") != digest:
                continue
            files = record.get("files") or {}
            if files and all((folder / name).is_file() and cached_sha256_of_file(folder / name) == sha
                             for name, sha in files.items()):
                return folder
            LOG.warning("%s does not match the checksums recorded in its %s; not used", folder, RECORD)
        return None

    def has_weights(self, digest: str) -> bool:
        """True for a bundled model's weights (a ``.pt`` in ``models_dir``, or those a shipped copy was made
        from) when the samples are here too: such weights calibrate on them (:meth:`samples_for`)."""
        if self.models_dir is None or self.samples_dir is None or not Path(self.samples_dir).is_dir():
            return False
        if any(record.get("weights_sha256") == digest for _, record in self._records()):
            return True
        return any(cached_sha256_of_file(p) == digest for p in sorted(Path(self.models_dir).glob("*.pt")))

    def samples_for(self, task: str) -> list[Path]:
        """The sample images (sorted) that suit a model of ``task``, judged by the YOLO label file beside
        each: oriented-box labels for ``"obb"``, any other labels for every other task; an image without
        labels suits any. Samples of both kinds live in one folder."""
        if self.samples_dir is None or not Path(self.samples_dir).is_dir():
            return []
        images = sorted(p for p in Path(self.samples_dir).iterdir()
                        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return [p for p in images if not p.with_suffix(".txt").is_file()
                or is_oriented_label_file(p.with_suffix(".txt")) == (task == "obb")]
