"""Ground-truth labels from files (paths) or uploads (content): YOLO txt and COCO JSON, read defensively,
and their classes matched to a model's by name (:mod:`.classes`)."""
from .base import MAX_LABEL_BYTES, MAX_LABEL_ITEMS, LabelError
from .classes import (ClassMatch, find_names_file, is_names_file, load_class_names, match_classes, parse_class_names,
                      relabel, relabel_all)
from .coco import load_coco_labels, parse_coco_labels
from .yolo import is_oriented_label_file, load_yolo_labels, parse_yolo_labels

__all__ = ["MAX_LABEL_BYTES", "MAX_LABEL_ITEMS", "ClassMatch", "LabelError", "find_names_file", "is_names_file",
           "is_oriented_label_file", "load_class_names", "load_coco_labels", "load_yolo_labels", "match_classes",
           "parse_class_names", "parse_coco_labels", "parse_yolo_labels", "relabel", "relabel_all"]
