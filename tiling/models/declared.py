"""What a visitor's model declares about itself, bounded before it is believed: class names measured as
spelled out, classes capped by one tile's output, metadata read with its YAML aliases bounded and its
ONNX values capped before they are parsed.

A checkpoint's pickle or an export's YAML can store one long string once and refer to it a thousand
times; every later step (the export, the legend, each drawn box) spells it out again, so names are
measured per reference. The head writes ``classes x anchors`` scores per tile, so a 10,000-class model
makes 336 MB of output for every 640 px tile before any box is kept.
"""
from __future__ import annotations

import ast
import math
import os
import re

import yaml

from .base import ModelError

MB = 1 << 20
MAX_CLASSES = 10_000
MAX_NAME_BYTES = 256  # one class name, UTF-8 ("traffic light": 13)
MAX_NAMES_BYTES = int(os.environ.get("PATCHWISE_MAX_NAMES_KB", 1024)) * 1024  # all names, spelled out
MAX_TILE_OUTPUT_MB = int(os.environ.get("PATCHWISE_MAX_TILE_OUTPUT_MB", 64))  # class scores, one 640 px tile
REFERENCE_TILE = 640
DEFAULT_STRIDES = (8, 16, 32)
MAX_YAML_NODES = 200_000  # values in metadata.yaml, aliases spelled out (10,000 names: 20,000)
MAX_METADATA_VALUE = 4096  # characters of one ONNX metadata value other than 'names'
MAX_NAMES_VALUE = MAX_NAMES_BYTES + 16 * MAX_CLASSES  # the 'names' value: names plus ids, quotes, separators
_INTS = re.compile(r"[\[(]\s*-?\d{1,6}\s*(?:,\s*-?\d{1,6}\s*){0,7},?\s*[\])]")  # [17, 3] or (17, 3)


def check_names(names: dict, label: str) -> None:
    """Each name and all of them together, measured in bytes as they would be written out."""
    total = 0
    for cid, name in names.items():
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > MAX_NAME_BYTES:
            raise ModelError(f"{label} was refused: class {cid}'s name is {size:,} bytes long; a class name may "
                             f"have at most {MAX_NAME_BYTES} bytes")
        total += size
        if total > MAX_NAMES_BYTES:
            raise ModelError(f"{label} was refused: its class names spell out to over {MAX_NAMES_BYTES // 1024:,} KB "
                             "(PATCHWISE_MAX_NAMES_KB)")


def anchors_per_tile(strides=DEFAULT_STRIDES, tile: int = REFERENCE_TILE) -> int:
    """Cells a YOLO head predicts on one square tile: one per stride step on each feature map."""
    return sum(math.ceil(tile / int(s)) ** 2 for s in strides)


def check_output_size(classes: int, label: str, anchors: int | None = None) -> None:
    """``classes x anchors x 4`` bytes of scores per reference tile, within ``PATCHWISE_MAX_TILE_OUTPUT_MB``."""
    anchors = anchors_per_tile() if anchors is None else anchors
    nbytes = classes * anchors * 4
    if nbytes > MAX_TILE_OUTPUT_MB * MB:
        most = MAX_TILE_OUTPUT_MB * MB // (anchors * 4)
        raise ModelError(f"{label} was refused: its {classes:,} classes make {nbytes / MB:.0f} MB of output for "
                         f"each {REFERENCE_TILE} px tile, over the {MAX_TILE_OUTPUT_MB} MB allowed here "
                         f"(PATCHWISE_MAX_TILE_OUTPUT_MB); at most {most:,} classes fit")


class _Expansion(yaml.YAMLError):
    """Aliases that would spell the document out past MAX_YAML_NODES."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, counting every node as if its aliases were spelled out: a few hundred bytes of
    nested aliases ("billion laughs") stand for billions of values, which every later step (``str()``,
    the export, the legend) would write out. An alias to a small node (an export's shared list) is fine."""

    def compose_document(self):
        self._spelled, self._sizes = 0, {}
        return super().compose_document()

    def compose_node(self, parent, index):
        alias = self.check_event(yaml.AliasEvent)
        node = super().compose_node(parent, index)
        self._spelled += self._size(node) if alias else 1
        if self._spelled > MAX_YAML_NODES:
            raise _Expansion(f"its aliases spell out over {MAX_YAML_NODES:,} values")
        return node

    def _size(self, node) -> int:
        """Values in ``node`` with every alias inside it spelled out (memoised: nodes are shared)."""
        if id(node) not in self._sizes:
            self._sizes[id(node)] = 0  # a node that contains itself counts once
            value = node.value if isinstance(node.value, list) else []
            children = [n for item in value for n in (item if isinstance(item, tuple) else (item,))]
            self._sizes[id(node)] = 1 + sum(self._size(child) for child in children)
        return self._sizes[id(node)]


def read_yaml(text: str, label: str) -> dict:
    """Metadata YAML as a dict (an empty one for anything else), no tag run and aliases bounded."""
    try:
        meta = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506  a SafeLoader subclass
    except _Expansion as exc:
        raise ModelError(f"{label}: metadata.yaml was refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{label}: metadata.yaml is not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ModelError(f"{label}: metadata.yaml is nested too deeply") from None
    return meta if isinstance(meta, dict) else {}


def onnx_value(key: str, value: str, label: str):
    """An ONNX metadata value as Ultralytics wrote it (``str()`` of a Python value), size-checked first:
    ``literal_eval`` is for 'names' alone; the other keys are a word, a number, a bool or a short int list."""
    limit = MAX_NAMES_VALUE if key == "names" else MAX_METADATA_VALUE
    if len(value) > limit:
        raise ModelError(f"{label}: its metadata '{key[:40]}' is {len(value):,} characters long, over the "
                         f"{limit:,} allowed")
    if key == "names":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return value
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    if _INTS.fullmatch(value):
        return [int(v) for v in value.strip("[]() ").split(",") if v.strip()]
    return value
