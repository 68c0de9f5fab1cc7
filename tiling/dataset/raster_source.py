"""A raster too large to decode whole (GeoTIFF, COG...: tiling.raster) with the objects on it, sliced
window by window: :func:`slice_raster`. Memory holds one tile's pixels and the objects' outlines.

The objects come as a GeoJSON FeatureCollection of (Multi)Polygons, in the CRS its ``crs`` member names,
else in longitude/latitude (RFC 7946), else, on a raster without georeferencing, in pixels; or as a COCO
json whose one image is the raster, in pixels. A polygon's holes are kept (joined to its outline by a
zero-width slit, as YOLO's one ring per object needs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..optional import require
from ..raster import RasterSource
from ..raster_open import RasterError
from .coco_source import check_inside, read_coco_objects, read_json
from .objects import DatasetError, Kind, LabelledObject, Source
from .writer import join_rings


def _class_of(props: dict, key: str, names: dict[str, int], where: str) -> int:
    value = (props or {}).get(key)
    if value is None:
        raise DatasetError(f"{where}: no '{key}' property to take the class from")
    if str(value) not in names:
        raise DatasetError(f"{where}: class {value!r} is not among the names ({', '.join(names)})")
    return names[str(value)]


def _to_pixels(geometry: dict, doc: dict, src: RasterSource) -> dict:
    """The geometry in the raster's pixel coordinates (column, row)."""
    georef = src.georef
    if georef.transform is None:
        return geometry
    crs = ((doc.get("crs") or {}).get("properties") or {}).get("name") or "EPSG:4326"
    if georef.crs is not None:
        warp = require("rasterio.warp", "geo")
        geometry = warp.transform_geom(crs, georef.crs, geometry)
    a, b, c, d, e, f = (~georef.transform)[:6]

    def move(coords):
        x, y = np.asarray(coords, np.float64)[:, :2].T
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    rings = geometry["coordinates"] if geometry["type"] == "Polygon" else [r for p in geometry["coordinates"] for r in p]
    shape = [len(p) for p in geometry["coordinates"]] if geometry["type"] == "MultiPolygon" else None
    moved = [move(r) for r in rings]
    if shape is None:
        return {"type": "Polygon", "coordinates": moved}
    parts, k = [], 0
    for n in shape:
        parts.append(moved[k : k + n])
        k += n
    return {"type": "MultiPolygon", "coordinates": parts}


def _polygon_object(geometry: dict, class_id: int, where: str) -> LabelledObject:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    rings = []
    for poly in polygons:
        loops = [np.asarray(r, np.float64)[:, :2] for r in poly]
        if any(len(r) < 4 for r in loops):
            raise DatasetError(f"{where}: a ring needs at least 4 positions (the first repeated last)")
        rings.append(join_rings([r[:-1] for r in loops]))
    return LabelledObject(class_id, Kind.POLYGON, rings)


def _load(path: Path) -> dict:
    doc = read_json(path, "read_geojson_objects")
    if not isinstance(doc, dict):
        raise DatasetError(f"{path.name}: neither a GeoJSON FeatureCollection nor a COCO json")
    return doc


def read_geojson_objects(doc: dict, shown: str, src: RasterSource, class_property: str = "class",
                         names: list[str] | None = None) -> tuple[list[LabelledObject], dict[int, str]]:
    """The polygons of a GeoJSON FeatureCollection in the raster's pixels, and the class names (the
    ``class_property`` values, sorted, unless ``names`` gives them in order)."""
    features = doc.get("features")
    if not isinstance(features, list):
        raise DatasetError(f"{shown}: not a GeoJSON FeatureCollection")
    values = names or sorted({str((f.get("properties") or {}).get(class_property)) for f in features
                              if (f.get("properties") or {}).get(class_property) is not None})
    index = {n: i for i, n in enumerate(values)}
    objects = []
    for k, feature in enumerate(features):
        where = f"{shown} feature {k}"
        geometry = feature.get("geometry") or {}
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise DatasetError(f"{where}: a {geometry.get('type')!r} geometry; objects must be Polygons or MultiPolygons")
        obj = _polygon_object(_to_pixels(geometry, doc, src), _class_of(feature.get("properties"), class_property,
                                                                         index, where), where)
        check_inside(obj, src.shape[1], src.shape[0], where, "raster")
        objects.append(obj)
    return objects, dict(enumerate(values))


def open_raster_objects(raster: Path, objects: Path, class_property: str = "class",
                        names: list[str] | None = None) -> tuple[RasterSource, list[LabelledObject], Source]:
    """The open raster, its objects in pixels and the Source (names) the writer needs."""
    try:
        src = RasterSource(raster)
    except (RasterError, ValueError) as exc:
        raise DatasetError(str(exc)) from None
    try:
        doc = _load(objects)
        if "images" in doc:
            found, source = read_coco_objects(doc, objects.name, src.shape)
        else:
            found, names_of = read_geojson_objects(doc, objects.name, src, class_property, names)
            source = Source([], names_of)
    except BaseException:
        src.close()
        raise
    return src, found, source
