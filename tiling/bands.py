"""How a raster's bands become the H x W x 3 uint8 BGR a model sees, as a :class:`BandSpec` sets it.

Band rule (``BandSpec.bands`` None): 1 band is grey, 3 bands are R, G, B, 4 bands (RGBA or RGB+NIR)
use bands 1, 2, 3, and a grey band with an alpha band uses band 1; any other count must be chosen.
8-bit bands are used as they are. Deeper bands (16-bit, 32-bit, float) are scaled to 8 bits per
band by a percentile stretch: the ``percentiles`` (2 and 98 by default) of the band's valid
pixels in a decimated read of the whole raster (its overview when it has one, at most
:data:`STRETCH_SIDE` px on the long side) map to 0 and 255, values beyond them are clipped.
``stretch="none"`` clips the values to 0-255 unchanged instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from . import checks
from .raster_open import RasterError

STRETCH_SIDE = 2048  # px: long side of the decimated read the percentile stretch is computed from
Stretch = Literal["percentile", "none"]
STRETCHES: tuple[str, ...] = get_args(Stretch)


@dataclass(frozen=True)
class BandSpec:
    """Which bands of a raster the model sees and how deeper-than-8-bit values are scaled.

    ``bands``: 1-based band numbers, one (grey) or three (red, green, blue, in that order); None
    picks them by the rule in this module's docstring. ``stretch``: "percentile" (2-98 by default,
    ``percentiles``) or "none" (values clipped to 0-255). 8-bit bands are never stretched.
    """

    bands: tuple[int, ...] | None = None
    stretch: Stretch = "percentile"
    percentiles: tuple[float, float] = (2.0, 98.0)

    def __post_init__(self) -> None:
        if self.bands is not None:
            if isinstance(self.bands, (str, bytes)) or not hasattr(self.bands, "__iter__"):
                raise checks.SettingError("bands", f"must be one or three band numbers, got {self.bands!r}")
            bands = tuple(checks.whole("bands", b, 1, 100_000, name="band number") for b in self.bands)
            if len(bands) not in (1, 3):
                raise checks.SettingError("bands",
                                          f"must be one band (grey) or three (red, green, blue), got {len(bands)}")
            object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "stretch", checks.choice("stretch", self.stretch, STRETCHES))
        if isinstance(self.percentiles, (str, bytes)) or len(self.percentiles) != 2:
            raise checks.SettingError("percentiles", f"must be a pair (low, high), got {self.percentiles!r}")
        lo, hi = (checks.number("percentiles", p, 0.0, 100.0, name="stretch percentile") for p in self.percentiles)
        if lo >= hi:
            raise checks.SettingError("percentiles", f"must be below the high one, got {lo:g} and {hi:g}",
                                      name="the low stretch percentile")
        object.__setattr__(self, "percentiles", (lo, hi))


def choose_bands(spec: BandSpec, count: int, second_is_alpha: bool, label: str) -> tuple[int, ...]:
    """The 1-based bands the model sees, of a raster with ``count`` bands, by ``spec`` or the band rule."""
    if spec.bands is not None:
        bad = [b for b in spec.bands if b > count]
        if bad:
            raise RasterError(f"{label} has {count} band{'s' * (count != 1)}; band {bad[0]} does not exist")
        return spec.bands
    if count == 1 or (count == 2 and second_is_alpha):
        return (1,)
    if count in (3, 4):
        return (1, 2, 3)
    raise RasterError(f"{label} has {count} bands; choose one (grey) or three (red, green, blue) "
                      "with bands=, e.g. --bands 3,2,1")


def stretch_ranges(data: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """(B, 2) low and high values per band of (B, h, w) ``data``: its ``percentiles`` over the valid,
    finite pixels; a band with none, or with one value only, still gets a span of at least 1."""
    lo_p, hi_p = percentiles
    ranges = np.zeros((len(data), 2), np.float64)
    for k, band in enumerate(data):
        values = band[valid & np.isfinite(band)]
        if values.size == 0:
            ranges[k] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(values, [lo_p, hi_p])
        ranges[k] = (lo, hi if hi > lo else lo + 1.0)
    return ranges


def to_bgr(data: np.ndarray, valid: np.ndarray | None, ranges: np.ndarray | None) -> np.ndarray:
    """(B, h, w) band values as h x w x 3 uint8 BGR: stretched by ``ranges`` when given, else clipped to
    0-255 when not 8-bit; one band is grey; pixels outside ``valid`` are black."""
    if data.dtype != np.uint8:
        values = data.astype(np.float32)
        if ranges is not None:
            lo = ranges[:, 0].astype(np.float32)[:, None, None]
            span = (ranges[:, 1] - ranges[:, 0]).astype(np.float32)[:, None, None]
            values = (values - lo) * (255.0 / span)
        data = np.clip(np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
    if len(data) == 1:
        bgr = np.repeat(data[0][..., None], 3, axis=2)
    else:
        bgr = np.ascontiguousarray(np.moveaxis(data[::-1], 0, -1))  # R, G, B bands -> B, G, R channels
    if valid is not None:
        bgr[~valid] = 0
    return bgr
