"""Label classes matched to a model's classes by name, so labels made for other classes are never scored
as if they were the model's.

A COCO file names its categories; YOLO labels give class numbers only, named by a ``data.yaml`` (its
``names``) or a names list (``classes.txt``, ``obj.names``: one name a line) uploaded beside them. When
no names are given, the numbers are taken as the model's own, and :meth:`ClassMatch.message` says so.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import yaml

from ..detections import Detections
from .base import MAX_CLASS_NAME_BYTES, LabelError, _check_name, _read_label_file, _text, _too_many

NAMES_SUFFIXES = (".yaml", ".yml", ".names")  # a names file by its suffix; and classes.txt by its name
NAMES_STEMS = ("classes", "names", "obj")  # YOLO tools' names lists saved as .txt: classes.txt, names.txt
MAX_NAMES_FILE_BYTES = 1 << 20  # a data.yaml or names list: names of 10,000 classes fit many times
_SHOWN = 8  # class names listed in a message before "…"


def is_names_file(name: str) -> bool:
    """True for a file that names classes (``data.yaml``, ``classes.txt``, ``obj.names``), not labels."""
    lower = name.lower()
    stem = lower.rsplit(".", 1)[0]
    return lower.endswith(NAMES_SUFFIXES) or (lower.endswith(".txt") and stem in NAMES_STEMS)


def _checked_names(names: Mapping[int, object], name: str) -> dict[int, str]:
    out = {}
    for cid, value in names.items():
        if type(cid) is not int or cid < 0 or not isinstance(value, str) or not value.strip():
            raise LabelError(f"{name}: class {str(cid)[:20]!s} must be a number from 0 with a name, got "
                             f"{str(value)[:40]!r}")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_CLASS_NAME_BYTES:
            raise LabelError(f"{name}: class {cid}'s name is longer than {MAX_CLASS_NAME_BYTES} bytes")
        out[cid] = value.strip()
    _too_many(len(out), "class names", name)
    return out


def _yaml_names(text: str, name: str) -> dict[int, str]:
    """``names`` of a YOLO data.yaml: a list, or a mapping from class number to name. A safe load: no tag
    runs, and an alias is one shared object, so a small file cannot grow into a large one."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise LabelError(f"{name}: not valid YAML ({str(exc).splitlines()[0][:80]})") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, list):
        return _checked_names(dict(enumerate(names)), name)
    if isinstance(names, dict):
        return _checked_names(names, name)
    raise LabelError(f"{name}: no 'names' list; a YOLO data.yaml names its classes as names: [car, truck, ...]")


def parse_class_names(data: bytes | str, name: str = "data.yaml") -> dict[int, str]:
    """Class number -> name from a YOLO ``data.yaml`` (its ``names``) or a names list (one name a line,
    the first line class 0). ``data`` is content, never a path; anything malformed is a LabelError."""
    name = _check_name(name)
    if len(data) > MAX_NAMES_FILE_BYTES:
        raise LabelError(f"{name}: {len(data):,} bytes is too large for a list of class names "
                         f"(at most {MAX_NAMES_FILE_BYTES >> 20} MB)")
    text = _text(data, name, "parse_class_names")
    if name.lower().endswith((".yaml", ".yml")):
        return _yaml_names(text, name)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise LabelError(f"{name}: empty; a names list has one class name a line, class 0 first")
    return _checked_names(dict(enumerate(lines)), name)


# Names that datasets spell differently for one class (COCO's spelling on the right).
SYNONYMS = {"plane": "airplane", "aeroplane": "airplane", "motorbike": "motorcycle", "pedestrian": "person",
            "tvmonitor": "tv", "sofa": "couch"}


def _key(name: str) -> str:
    """Names compared without case, spaces, '-' or '_' ("Traffic light" is "traffic_light"), and with the
    usual other spellings of a COCO class (:data:`SYNONYMS`: "plane" is "airplane")."""
    key = re.sub(r"[\s_\-]+", "", name.casefold())
    return SYNONYMS.get(key, key)


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


@dataclass(frozen=True)
class ClassMatch:
    """How the classes of some labels map onto a model's: ``to_model`` (label class -> model class) for
    the classes that are scored; ``unscored`` the label classes the model does not know (by name, or by
    number when ``assumed``: the labels named no classes, so their numbers were taken as the model's)."""

    to_model: dict[int, int]
    unscored: tuple[str, ...]
    assumed: bool
    label_classes: tuple[str, ...]  # the classes the labels use, as shown in messages
    model_names: dict[int, str]

    @property
    def scored_model_classes(self) -> tuple[int, ...]:
        """The model's classes that the labels can judge: predictions of other classes are not scored."""
        return tuple(sorted(set(self.to_model.values())))

    def message(self, source: str = "labels") -> str | None:
        """One line, starting with ``source`` (the file's name), naming what is scored and what is not and
        what to do; None when every class matched by name."""
        model = _listed(self.model_names[k] for k in sorted(self.model_names))
        scored = [self.model_names[m] for m in self.scored_model_classes]
        if self.assumed:
            given = ", ".join(f"{c} = {self.model_names[m]}" for c, m in sorted(self.to_model.items())[:_SHOWN])
            line = (f"{source}: the labels give class numbers only, so they are taken as the model's classes"
                    + (f" ({given})" if given else ""))
            if self.unscored:
                one = len(self.unscored) == 1
                line += (f"; class{'' if one else 'es'} {_listed(self.unscored)} {'is' if one else 'are'} not in "
                         "this model and not scored")
            return line + ". Add a data.yaml or classes.txt beside them to match the classes by name."
        if not self.unscored:
            return None
        what = (f"{_listed(repr(s) for s in scored)} {'is' if len(scored) == 1 else 'are'} scored" if scored
                else "none is scored")
        coco = " (a COCO model knows 80 everyday classes)" if len(self.model_names) < 80 else ""
        return (f"{source}: the labels use classes {_listed(self.label_classes)}; the model knows {model}: {what}, "
                f"{_listed(repr(u) for u in self.unscored)} {'is' if len(self.unscored) == 1 else 'are'} not. "
                f"Choose a model that knows {_listed(self.unscored)}{coco}, or use labels for {model}.")


def match_classes(label_ids: Iterable[int], label_names: Mapping[int, str] | None,
                  model_names: Mapping[int, str]) -> ClassMatch:
    """Match the classes ``label_ids`` (the numbers the labels use) onto ``model_names`` by name, through
    ``label_names``; with no names (None or empty), each number is taken as the model's own."""
    ids = sorted({int(c) for c in label_ids})
    model_names = {int(k): str(v) for k, v in model_names.items()}
    if not label_names:
        known = [c for c in ids if c in model_names]
        return ClassMatch({c: c for c in known}, tuple(str(c) for c in ids if c not in model_names), True,
                          tuple(str(c) for c in ids), model_names)
    by_key = {}
    for k in sorted(model_names):
        by_key.setdefault(_key(model_names[k]), k)
    shown = [label_names.get(c, str(c)) for c in ids]
    to_model = {c: by_key[_key(s)] for c, s in zip(ids, shown) if _key(s) in by_key}
    unscored = tuple(s for c, s in zip(ids, shown) if c not in to_model)
    return ClassMatch(to_model, unscored, False, tuple(shown), model_names)


def relabel(labels: Detections, match: ClassMatch) -> Detections:
    """The labels in the model's class numbers and names; labels of classes the model does not know are
    left out (:meth:`ClassMatch.message` names them)."""
    keep = np.isin(labels.class_id, list(match.to_model))
    out = labels[keep]
    out.class_id = np.array([match.to_model[int(c)] for c in out.class_id], np.int64)
    out.names = dict(match.model_names)
    return out


def relabel_all(labels: Sequence[Detections], model_names: Mapping[int, str]) -> tuple[list[Detections], ClassMatch]:
    """Many images' labels (one dataset: their classes matched together) in the model's classes, and the match."""
    used = np.concatenate([d.class_id for d in labels]) if labels else np.zeros(0, np.int64)
    names = {k: v for d in labels for k, v in d.names.items()}
    match = match_classes(used, names, model_names)
    return [relabel(d, match) for d in labels], match


def find_names_file(folder: str | os.PathLike) -> Path | None:
    """The file naming a YOLO labels folder's classes: ``data.yaml`` (or ``classes.txt``, ``obj.names``...)
    in the folder or the one above it, as YOLO datasets keep them; None when there is none."""
    for where in (Path(folder), Path(folder).parent):
        for name in ("data.yaml", "data.yml", *(f"{stem}.txt" for stem in NAMES_STEMS), "obj.names"):
            if (where / name).is_file():
                return where / name
    return None


def load_class_names(path: str | os.PathLike) -> dict[int, str]:
    """Class names from a ``data.yaml`` or names list on disk (see :func:`parse_class_names`)."""
    data, name = _read_label_file(path, "parse_class_names")
    return parse_class_names(data, name)
