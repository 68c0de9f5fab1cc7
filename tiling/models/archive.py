"""An uploaded ``.zip`` of an OpenVINO export folder, unpacked into a private folder within limits.

The archive is a stranger's: its entries may name absolute or ``..`` paths (a zip-slip), be many, or
inflate far beyond their size (a zip bomb). Only a flat set of model files is written, each read no
further than it declares, into a folder the caller owns and removes.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from .base import ModelError
from .vetting import MAX_ZIP_RATIO, MB, check_size

EXPORT_FILES = (".xml", ".bin", ".yaml", ".yml", ".onnx")
MAX_ENTRIES = 32  # an OpenVINO folder holds three files


def _open(data: bytes | Path, label: str) -> zipfile.ZipFile:
    """The archive of ``data`` (its bytes, or the path of a zip file: only its listing is read first)."""
    try:
        return zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
    except (zipfile.BadZipFile, OSError):
        raise ModelError(f"{label} is not a readable zip archive") from None


def _checked_entries(zf: zipfile.ZipFile, label: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """(entry, flat file name) of every file in the archive, each checked: count, sizes, paths and kinds."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ENTRIES:
        raise ModelError(f"{label} holds {len(infos)} files; an OpenVINO model folder holds 3 (.xml, .bin, "
                         "metadata.yaml)")
    check_size(sum(i.file_size for i in infos), label)
    names = [_entry_name(i, label) for i in infos]
    if len(set(names)) != len(names):
        raise ModelError(f"{label} holds two files of the same name in different folders; zip one model folder")
    return list(zip(infos, names))


def check_export_zip(data: bytes | Path, label: str) -> None:
    """Refuse an archive :func:`unpack_export_zip` would refuse for its listing, without writing anything:
    the command line checks a zipped model this way before it says it is loading it."""
    with _open(data, label) as zf:
        _checked_entries(zf, label)


def unpack_export_zip(data: bytes, dest: Path, label: str) -> Path:
    """Write the archive's model files into ``dest`` (flat) and return ``dest``."""
    with _open(data, label) as zf:
        for info, name in _checked_entries(zf, label):
            with zf.open(info) as src:
                content = src.read(info.file_size + 1)
            if len(content) != info.file_size:
                raise ModelError(f"{label}: {name} is not the size its archive entry declares")
            (dest / name).write_bytes(content)
    return dest


def _entry_name(info: zipfile.ZipInfo, label: str) -> str:
    """The entry's file name, once its path is known to stay inside the archive and its kind is a model file."""
    raw = info.filename
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if raw.startswith(("/", "\\")) or ".." in parts or ":" in raw or not parts:
        raise ModelError(f"{label}: refused an entry with an absolute or '..' path ({raw[:80]!r})")
    name = parts[-1]
    if PurePosixPath(name).suffix.lower() not in EXPORT_FILES or name.startswith("."):
        raise ModelError(f"{label} holds {name[:80]!r}; a model zip may hold only an OpenVINO folder (.xml, .bin, "
                         "metadata.yaml) or an .onnx file")
    if info.file_size > MB and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
        raise ModelError(f"{label}: {name} inflates {info.file_size // max(info.compress_size, 1)}x; refused as a "
                         "possible zip bomb")
    return name
