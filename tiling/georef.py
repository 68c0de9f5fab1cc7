"""Where a raster's pixels lie on the map: its geotransform and coordinate reference system, or a note
that results stay in pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raster_open import RasterError, first_line


@dataclass(frozen=True)
class Georef:
    """Where the raster's pixels lie: ``transform`` maps (column, row) pixel corners to map
    coordinates in ``crs``. Without georeferencing ``transform`` is None and results stay in pixels;
    ``note`` then says so (and says when a transform has no CRS)."""

    transform: object | None = None  # affine.Affine
    crs: object | None = None  # rasterio.crs.CRS
    note: str = ""

    @property
    def crs_label(self) -> str:
        if self.crs is None:
            return "pixels" if self.transform is None else "unknown CRS"
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else (self.crs.to_string() or "a custom CRS")

    def check_wgs84(self, label: str) -> None:
        """Refuse, before any model runs, a raster whose coordinates cannot be reprojected to EPSG:4326."""
        if self.transform is None or self.crs is None:
            why = "it has no georeferencing" if self.transform is None else "its coordinate reference system is unknown"
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: {why}")
        from rasterio.warp import transform as warp

        try:
            xs, ys = warp(self.crs, "EPSG:4326", [self.transform.c], [self.transform.f])
        except Exception as exc:  # rasterio raises CRSError or a GDAL error for CRSs PROJ cannot use
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: its CRS ({self.crs_label}) "
                              f"cannot be transformed ({first_line(exc)})") from None
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: its CRS ({self.crs_label}) "
                              "gives no valid longitude/latitude")


def georef_of(ds, label: str) -> Georef:
    """The :class:`Georef` of an open rasterio dataset, with a note when its coordinates stay in pixels
    or its CRS is unknown."""
    if ds.transform.is_identity and ds.crs is None:
        if ds.gcps[0]:
            return Georef(note=f"{label} has ground control points but no geotransform; coordinates "
                               "are pixels (warp it first, e.g. with gdalwarp, for map coordinates)")
        return Georef(note=f"{label} has no georeferencing; coordinates are pixels "
                           "(x right, y down from the top-left corner)")
    if ds.crs is None:
        return Georef(ds.transform, None, f"{label} has a geotransform but no known coordinate reference "
                                          "system; coordinates are in its map units, CRS unknown")
    return Georef(ds.transform, ds.crs)
