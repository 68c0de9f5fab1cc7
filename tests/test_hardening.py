"""Review fixes: oriented boxes in GeoJSON, TIFF sizes without GDAL, one precision check, the 8-bit
copy's cache locking and calibration, and the app keeping an uploaded model when calibration fails."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from affine import Affine

import tiling
from tiling.geojson import feature_collection
from tiling.raster import Georef


def _signed_area(ring) -> float:
    x, y = np.asarray(ring, np.float64).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


@pytest.mark.parametrize("transform", [None, Affine(0.5, 0, 500_000, 0, -0.5, 4_000_000)])
def test_oriented_boxes_are_written_as_their_own_corners_counter_clockwise(transform):
    obb = np.array([[100, 80, 40, 10, math.pi / 6], [300, 200, 60, 20, -math.pi / 4]], np.float32)
    det = tiling.Detections.from_obb(obb, confidence=[0.9, 0.8], class_id=[0, 0], names={0: "plane"})
    fc = feature_collection(det, Georef(transform=transform))
    t = transform or Affine.identity()
    scale = abs(t.a * t.e - t.b * t.d)
    for feature, corners, (w, h) in zip(fc["features"], det.corners(), obb[:, 2:4]):
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert len(ring) == 5 and np.allclose(ring[0], ring[-1])
        assert _signed_area(ring) == pytest.approx(w * h * scale, rel=1e-4)  # not the larger upright box; CCW
        expected = np.array([t * tuple(map(float, c)) for c in corners])
        distance = np.linalg.norm(ring[:4, None] - expected[None], axis=2)
        assert distance.min(axis=0).max() < 1e-2 and distance.min(axis=1).max() < 1e-2  # the same four points
