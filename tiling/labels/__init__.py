"""Ground-truth labels from files (paths) or uploads (content): YOLO txt and COCO JSON, read defensively."""
from .base import MAX_LABEL_BYTES, MAX_LABEL_ITEMS, LabelError
from .coco import load_coco_labels, parse_coco_labels
from .yolo import is_oriented_label_file, load_yolo_labels, parse_yolo_labels

__all__ = ["MAX_LABEL_BYTES", "MAX_LABEL_ITEMS", "LabelError", "is_oriented_label_file",
           "load_coco_labels", "load_yolo_labels", "parse_coco_labels", "parse_yolo_labels"]
