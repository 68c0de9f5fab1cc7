"""Slicing labelled datasets into tiles for fine-tuning, without leakage between splits
(:func:`slice_dataset`, :func:`slice_raster`, ``patchwise slice-dataset``). A module per stage, calls
only downwards:

* :mod:`.objects`: the value types (an object in pixels, a source image, :class:`SliceSpec`, the defaults);
* :mod:`.yolo_rows`, :mod:`.coco_source`, :mod:`.sources`: reading a YOLO ``data.yaml`` or a COCO json;
  :mod:`.raster_source`: a raster's objects from a GeoJSON or COCO json;
* :mod:`.clip`: exact clipping to a tile; :mod:`.index`: which objects may touch a tile;
* :mod:`.splits`: each image's split, drawn by image or group where the source has none;
* :mod:`.writer`: YOLO or COCO output; :mod:`.report`: counts and the contact sheet;
* :mod:`.slice`: the run.
"""
from .clip import Clipped, clip_object, clip_ring
from .objects import MIN_VISIBILITY, NEGATIVES, DatasetError, Kind, LabelledObject, SliceSpec
from .report import SliceReport
from .slice import slice_dataset, slice_raster
from .sources import open_source
from .splits import assign_splits, group_key

__all__ = ["MIN_VISIBILITY", "NEGATIVES", "Clipped", "DatasetError", "Kind", "LabelledObject", "SliceReport",
           "SliceSpec", "assign_splits", "clip_object", "clip_ring", "group_key", "open_source", "slice_dataset",
           "slice_raster"]
