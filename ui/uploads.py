"""The visitor's uploads as items: safe unique names, a pixel budget per session, labels paired to images.

Each upload is checked once per session (decoded through the shared cache) and remembered by its content
hash, so moving a slider decodes nothing but the image shown, if even that has left the cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

import tiling
from tiling.names import stem_of, unique_names
from tiling.util import sha256_of

from . import resources as res

_CHECKED = "upload_checks"  # session state: content hash -> None (fine) or the message saying why not
_DIGESTS = "upload_digests"  # session state: (upload id, size) -> content hash


@dataclass
class Gathered:
    items: list[res.ImageItem]
    problems: list[str] = field(default_factory=list)  # one message per upload that could not be used


def _check_once(item: res.ImageItem) -> str | None:
    checked = st.session_state.setdefault(_CHECKED, {})
    if item.key not in checked:
        try:
            item.image  # noqa: B018  decoded once, here, so a damaged file is reported when it arrives
            checked[item.key] = None
        except tiling.ImageError as exc:
            checked[item.key] = str(exc)
    return checked[item.key]


def _digest(upload, data: bytes) -> str:
    """The upload's SHA-256 (``data``: its bytes), hashed once per session: a rerun of a page with 100 MB of
    uploads hashes nothing."""
    digests = st.session_state.setdefault(_DIGESTS, {})
    key = (upload.file_id, upload.size)
    if key not in digests:
        digests[key] = sha256_of(data)
    return digests[key]


def _raster_hint(message: str, data: bytes, name: str) -> str:
    """For a TIFF this page cannot decode (4 bands of 16 bits, a GDAL-only codec, too many pixels), where
    it can be used instead: the command line, which streams it window by window. Its size comes from the
    TIFF header, read in pure Python: no native parser runs on an upload this page refused."""
    from tiling.tiff_header import raster_size

    size = raster_size(data)
    if size is None:
        return message
    return (f"{name} is a {size[0]}x{size[1]} raster this page cannot decode; run the command line on your own "
            f"machine (python -m tiling predict {name} --model ...), which reads it window by window")


def _forget_removed(uploads) -> None:
    """What the session remembers of uploads (hashes, check results) shrinks to the files it still holds."""
    digests = st.session_state.setdefault(_DIGESTS, {})
    kept = {(up.file_id, up.size) for up in uploads}
    for key in [k for k in digests if k not in kept]:
        del digests[key]
    checked = st.session_state.setdefault(_CHECKED, {})
    for key in [k for k in checked if k not in set(digests.values())]:
        del checked[key]


def gather_uploads(uploads) -> Gathered:
    """Usable uploads in upload order, within the session's pixel budget; a message for every other one."""
    _forget_removed(uploads)
    out = Gathered([])
    names = unique_names([up.name for up in uploads], fallback="image")
    total = 0
    for up, name in zip(uploads, names):
        data = up.getvalue()  # one copy of the upload, shared by the item and the hint
        try:
            item = res.image_item(data, name, _digest(up, data))
        except tiling.ImageError as exc:
            out.problems.append(_raster_hint(str(exc), data, name))
            continue
        try:
            tiling.imageio.check_pixels(*item.size, name)
        except tiling.ImageError as exc:
            out.problems.append(f"{exc}; or run the command line (python -m tiling predict) on your own machine")
            continue
        pixels = item.size[0] * item.size[1]
        if total + pixels > res.SESSION_PIXELS:
            out.problems.append(f"{name} was not opened: your images together would pass {res.SESSION_PIXELS:,} "
                                "pixels, this page's limit per visitor; remove some uploads first")
            continue
        problem = _check_once(item)
        if problem:
            out.problems.append(problem)
            continue
        total += pixels
        out.items.append(item)
    return out


def _names_files(label_files, names: list[str]) -> tuple[dict[int, str] | None, list[str]]:
    """(class names, messages) from the uploaded names files (``data.yaml``, ``classes.txt``); the last one
    uploaded names the YOLO labels' classes."""
    found, messages = None, []
    for lf, name in zip(label_files, names):
        if tiling.labels.is_names_file(name):
            try:
                found = tiling.labels.parse_class_names(lf.getvalue(), name)
            except tiling.LabelError as exc:
                messages.append(f"{name}: these class names could not be read ({exc})")
    return found, messages


def attach_labels(items: list[res.ImageItem], label_files) -> list[str]:
    """Labels onto the items they name; returns messages for files that could not be read or matched nothing.

    YOLO files pair by name (``scene.txt`` with ``scene.png``); a single label file with a single image
    pairs whatever their names. A COCO file pairs by each image's ``file_name``. A ``data.yaml`` or names
    list uploaded beside YOLO files names their classes (:func:`match_labels` then matches them by name).
    """
    names = unique_names([lf.name for lf in label_files], fallback="labels")
    class_names, messages = _names_files(label_files, names)
    labels = [(lf, name) for lf, name in zip(label_files, names) if not tiling.labels.is_names_file(name)]
    for lf, name in labels:
        try:
            if name.lower().endswith(".json"):
                by_name = tiling.parse_coco_labels(lf.getvalue(), name=name)
                hits = [it for it in items if it.name in by_name]
                for item in hits:
                    item.labels = by_name[item.name]
            else:
                stem = stem_of(name)
                hits = [it for it in items if stem_of(it.name) == stem]
                if not hits and len(labels) == 1 and len(items) == 1:
                    hits = items
                for item in hits:
                    item.labels = tiling.parse_yolo_labels(lf.getvalue(), item.shape, name=name, names=class_names)
        except tiling.LabelError as exc:
            messages.append(f"{name}: these labels could not be read ({exc})")
            continue
        for item in hits:
            item.label_source = name
        if not hits:
            messages.append(f"{name} matched no image: name a YOLO .txt like its image ({', '.join(it.name for it in items[:3])}"
                            f"{'…' if len(items) > 3 else ''}), or use COCO file_name entries that match.")
    return messages


def match_labels(items: list[res.ImageItem], model_names: dict[int, str]) -> list[str]:
    """Each item's labels in the model's classes, matched by name (:func:`tiling.labels.match_classes`);
    one message per label file whose classes are not all the model's, saying what is and is not scored."""
    by_source: dict[str, list[res.ImageItem]] = {}
    for item in items:
        if item.labels is not None:
            by_source.setdefault(item.label_source, []).append(item)
    messages = []
    for source, group in by_source.items():
        used = np.unique(np.concatenate([it.labels.class_id for it in group]))
        names = {k: v for it in group for k, v in it.labels.names.items()}
        match = tiling.labels.match_classes(used, names, model_names)
        for item in group:
            item.labels = tiling.labels.relabel(item.labels, match)
            item.scored_classes = None if match.assumed else match.scored_model_classes
        message = match.message(source)
        if message:
            messages.append(message)
    return messages
