"""Slicing labelled datasets into tiles for fine-tuning, without leakage between splits
(:func:`slice_dataset`, ``patchwise slice-dataset``)."""
from .clip import Clipped, clip_object, clip_ring
from .objects import MIN_VISIBILITY, NEGATIVES, DatasetError, Kind, LabelledObject, SliceSpec
from .report import SliceReport
from .slice import slice_dataset, slice_raster
from .sources import open_source
from .splits import assign_splits, group_key

__all__ = ["MIN_VISIBILITY", "NEGATIVES", "Clipped", "DatasetError", "Kind", "LabelledObject", "SliceReport",
           "SliceSpec", "assign_splits", "clip_object", "clip_ring", "group_key", "open_source", "slice_dataset",
           "slice_raster"]
