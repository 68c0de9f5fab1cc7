"""Detections as GeoJSON, where a GIS wants them: polygons in the raster's coordinate reference system.

Each detection is a Feature: its box as a polygon (an oriented box's own four corners), or for
segmentation the outline of its mask (pixel edges, holes kept, a MultiPolygon when the mask is in
pieces), with ``class``, ``class_id``, ``confidence`` and its upright box in raster pixels
(``pixel_box``). Pixel (column, row) corners go through the raster's affine geotransform, so a box
edge lies exactly on the pixel edge it was found at.

The collection is in the raster's CRS, named by the legacy GeoJSON ``crs`` member that GDAL and QGIS
read (the EPSG code, or the CRS's WKT when it has none), or reprojected to EPSG:4326 longitude and
latitude (RFC 7946's only CRS, so no ``crs`` member). Without georeferencing the coordinates are
pixels (x right, y down) and a top-level ``note`` says so.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .detections import Detections
from .optional import require
from .georef import Georef


def _digits(georef: Georef, to_wgs84: bool) -> int:
    """Decimal places that keep far below a millimetre (degrees, metres) or a thousandth of a pixel."""
    if to_wgs84 or (georef.crs is not None and georef.crs.is_geographic):
        return 9
    return 3 if georef.transform is None else 4


def _affine(georef: Georef):
    Affine = require("affine", "geo").Affine  # installed with rasterio (patchwise[geo])

    return georef.transform if georef.transform is not None else Affine.identity()


def _ccw(ring: np.ndarray, outer: bool) -> np.ndarray:
    """The ring counter-clockwise if ``outer`` (else clockwise), as RFC 7946 asks."""
    x, y = ring[:, 0], ring[:, 1]
    area = float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))
    return ring[::-1] if (area > 0) != outer else ring


def _box_rings(det: Detections, georef: Georef, to_wgs84: bool) -> np.ndarray:
    """(N, 5, 2) closed rings of the boxes in output coordinates, counter-clockwise: an oriented box's
    own four corners (``det.corners()``), never the upright box around it."""
    corners = det.corners().astype(np.float64)  # (N, 4, 2) pixel (column, row)
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    px, py = ring[..., 0], ring[..., 1]
    t = _affine(georef)
    mx, my = t.a * px + t.b * py + t.c, t.d * px + t.e * py + t.f
    if to_wgs84 and len(det):
        from rasterio.warp import transform as warp

        lon, lat = warp(georef.crs, "EPSG:4326", mx.ravel().tolist(), my.ravel().tolist())
        mx, my = np.asarray(lon).reshape(mx.shape), np.asarray(lat).reshape(my.shape)
    area = np.sum(mx[:, :-1] * my[:, 1:] - mx[:, 1:] * my[:, :-1], axis=1)  # twice the signed area, y up
    clockwise = area < 0
    mx[clockwise], my[clockwise] = mx[clockwise, ::-1], my[clockwise, ::-1]
    return np.stack([mx, my], axis=2)


def _mask_geometry(mask: np.ndarray, box, georef: Georef, to_wgs84: bool) -> dict | None:
    """The mask's outline (pixel edges) as a Polygon or MultiPolygon, or None for an empty mask."""
    from affine import Affine
    from rasterio.features import shapes

    if not mask.any():
        return None
    transform = _affine(georef) @ Affine.translation(int(box[0]), int(box[1]))
    polygons = [geom["coordinates"] for geom, value in
                shapes(mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform) if value]
    if to_wgs84:
        from rasterio.warp import transform_geom

        geoms = transform_geom(georef.crs, "EPSG:4326", [{"type": "Polygon", "coordinates": p} for p in polygons])
        polygons = [g["coordinates"] for g in geoms]
    polygons = [[_ccw(np.asarray(ring, np.float64), k == 0) for k, ring in enumerate(poly)] for poly in polygons]
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _rounded(value, digits: int):
    if isinstance(value, np.ndarray):
        return np.round(value, digits).tolist()
    return [_rounded(v, digits) for v in value]


def features(det: Detections, georef: Georef, to_wgs84: bool = False) -> list[dict]:
    """One GeoJSON Feature per detection (see the module docstring)."""
    if to_wgs84:
        georef.check_wgs84("this raster")
    digits = _digits(georef, to_wgs84)
    rings = _box_rings(det, georef, to_wgs84)
    names = det.class_names
    out = []
    for k in range(len(det)):
        geometry = None
        if det.masks is not None:
            geometry = _mask_geometry(det.masks[k], det.mask_boxes[k], georef, to_wgs84)  # type: ignore[index]
        if geometry is None:
            geometry = {"type": "Polygon", "coordinates": [rings[k]]}
        geometry["coordinates"] = _rounded(geometry["coordinates"], digits)
        out.append({"type": "Feature", "geometry": geometry, "properties": {
            "class": names[k], "class_id": int(det.class_id[k]), "confidence": round(float(det.confidence[k]), 4),
            "pixel_box": [round(float(v), 1) for v in det.xyxy[k]]}})
    return out


def header(georef: Georef, to_wgs84: bool = False, name: str = "") -> dict:
    """The collection's members other than its features: ``name``, ``crs``, and the ``note`` of a raster
    without (full) georeferencing."""
    head: dict = {"type": "FeatureCollection"}
    if name:
        head["name"] = name
    if not to_wgs84 and georef.crs is not None and georef.crs.to_epsg() != 4326:
        epsg = georef.crs.to_epsg()
        head["crs"] = {"type": "name", "properties": {
            "name": f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else georef.crs.to_wkt()}}
    if georef.note:
        head["note"] = georef.note
    return head


def feature_collection(det: Detections, georef: Georef, to_wgs84: bool = False, name: str = "") -> dict:
    """The detections as one GeoJSON FeatureCollection (a dict ready for ``json.dump``)."""
    return {**header(georef, to_wgs84, name), "features": features(det, georef, to_wgs84)}


class GeoJSONWriter:
    """A FeatureCollection written part by part as a run goes, under a temporary name that becomes
    ``path`` only when :meth:`close` completes it: a failed run leaves no half-written file and
    replaces nothing. As a context manager, an exception discards the partial file."""

    def __init__(self, path, georef: Georef, to_wgs84: bool = False, name: str = ""):
        if to_wgs84:
            georef.check_wgs84(name or Path(path).name)
        self.path = Path(path)
        self.georef, self.to_wgs84 = georef, to_wgs84
        self.partial = self.path.with_name(self.path.name + ".part")
        self.count = 0
        self.file = open(self.partial, "w", encoding="utf-8")
        self.file.write(json.dumps(header(georef, to_wgs84, name))[:-1] + ', "features": [')

    def write(self, det: Detections) -> None:
        for feature in features(det, self.georef, self.to_wgs84):
            self.file.write(("," if self.count else "") + "\n" + json.dumps(feature))
            self.count += 1

    def close(self) -> None:
        self.file.write("\n]}\n")
        self.file.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> GeoJSONWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_geojson(path, det: Detections, georef: Georef, to_wgs84: bool = False, name: str = "",
                  chunk: int = 4096) -> Path:
    """The detections as a GeoJSON file at ``path``; returns the path. Features are made ``chunk``
    detections at a time, so a raster's hundreds of thousands of objects never exist as dicts at once."""
    with GeoJSONWriter(path, georef, to_wgs84, name) as writer:
        for start in range(0, len(det), chunk):
            writer.write(det[start : start + chunk])
    return Path(path)
