"""Patchwise: patch-based (sliced, tiled) inference for detection, segmentation, oriented-box and pose models.

    import tiling
    image = tiling.read_image("samples/airfield-4000x3000.jpg")
    model = tiling.load_model("models/synth-yolo11n-det.pt")
    pred = tiling.predict_tiled(image, model, tile_size=640, overlap=0.25, conf=0.25)
    pred.detections.to_dataframe()

One settings object per stage: :class:`TileSpec` (grid), :class:`InferSpec` (model), :class:`MergeSpec`
(merge); keyword settings build them.
"""
from .detections import Detections
from .draw import class_color, draw_detections, draw_tiles
from .evaluate import Evaluation, evaluate, matched
from .labels import LabelError, load_coco_labels, load_yolo_labels, parse_coco_labels, parse_yolo_labels
from .formats import encode_png, to_coco, to_coco_json, to_csv, to_json, to_yolo_txt
from .grid import Tile, TileSpec, count_tiles, plan_tiles
from .imageio import ImageError, read_image
from .merge import MergeSpec, merge
from .models import CallableModel, InferSpec, Model, ModelError, UltralyticsModel, as_model, load_model
from .pipeline import TiledPrediction, predict_full, predict_tiled
from .geojson import feature_collection, write_geojson
from .bands import BandSpec
from .raster import RasterSource, open_raster
from .raster_open import RasterError
from .streaming import RasterPrediction, predict_raster
from .stitch import dense_class_map, stitch_dense
from .suggest import TileSuggestion, suggest_tile_size
from .dataset import DatasetError, SliceSpec, slice_dataset
from .sweep import sweep_tile_sizes
from .video import (AnnotatedVideoWriter, ClipInfo, ClipLimits, ClipSummary, FrameResult, TrackScores, TrackSpec,
                    Tracker, VideoError, VideoRun, evaluate_tracks, iter_frames, predict_video, probe_clip, read_mot,
                    retrack, write_detections_csv, write_mot, write_summary_json)

__all__ = [
    "CallableModel", "Detections", "Evaluation", "ImageError", "LabelError", "InferSpec", "MergeSpec", "Model", "ModelError",
    "Tile", "TileSpec", "TileSuggestion", "TiledPrediction", "UltralyticsModel", "as_model", "class_color",
    "count_tiles", "dense_class_map", "draw_detections", "draw_tiles", "encode_png", "evaluate", "load_coco_labels",
    "load_model", "load_yolo_labels", "matched", "merge", "parse_coco_labels", "parse_yolo_labels", "plan_tiles", "predict_full", "predict_tiled",
    "read_image", "stitch_dense", "suggest_tile_size", "sweep_tile_sizes", "to_coco", "to_coco_json", "to_csv", "to_json",
    "to_yolo_txt",
    "BandSpec", "RasterError", "RasterPrediction", "RasterSource", "feature_collection", "open_raster", "predict_raster",
    "write_geojson", "DatasetError", "SliceSpec", "slice_dataset",
    "AnnotatedVideoWriter", "ClipInfo", "ClipLimits", "ClipSummary", "FrameResult", "TrackScores", "TrackSpec",
    "Tracker", "VideoError", "VideoRun", "evaluate_tracks", "iter_frames", "predict_video", "probe_clip", "read_mot",
    "retrack", "write_detections_csv", "write_mot", "write_summary_json",
]
__version__ = "0.2.0"
