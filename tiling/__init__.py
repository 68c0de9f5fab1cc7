"""Patchwise: patch-based (sliced, tiled) inference for detection and segmentation models.

    import tiling
    image = tiling.read_image("samples/aerial-4000x3000.jpg")
    model = tiling.load_model("models/synth-yolo11n-det.pt")
    pred = tiling.predict_tiled(image, model, tile_size=640, overlap=0.25)
    pred.detections.to_dataframe()
"""
from .detections import Detections
from .draw import class_color, draw_detections, draw_tiles
from .export import encode_png, to_coco, to_coco_json, to_csv, to_json, to_yolo_txt
from .grid import Tile, count_tiles, plan_tiles
from .imageio import ImageError, read_image
from .merge import merge
from .models import CallableModel, Model, ModelError, UltralyticsModel, as_model, load_model
from .pipeline import TiledPrediction, TileSuggestion, predict_full, predict_tiled, suggest_tile_size
from .evaluate import Evaluation, evaluate, load_coco_labels, load_yolo_labels, matched
from .stitch import dense_class_map, stitch_dense

__all__ = [
    "CallableModel", "Detections", "ImageError", "Model", "ModelError", "Tile", "TileSuggestion",
    "TiledPrediction", "UltralyticsModel", "as_model", "class_color", "count_tiles", "draw_detections",
    "draw_tiles", "encode_png", "load_model", "merge", "plan_tiles", "predict_full", "predict_tiled",
    "read_image", "stitch_dense", "suggest_tile_size", "to_coco", "to_coco_json", "to_csv", "to_json",
    "to_yolo_txt", "Evaluation", "evaluate", "load_coco_labels", "load_yolo_labels", "matched", "dense_class_map",
]
__version__ = "0.1.0"
