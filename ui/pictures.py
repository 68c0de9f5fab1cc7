"""Pictures for the page: detections drawn on a downscaled copy (made once per image), sent as one JPEG,
and the class colour legend."""
from __future__ import annotations

import html
import weakref
from collections import OrderedDict

import numpy as np

import tiling
from tiling.draw import downscale, draw_halo, line_width_for

LABELLED_AT_MOST = 100  # boxes: past this, class labels on every box turn the picture into a wall of text
PREVIEW_SIDE = 1400  # px: what the browser gets (Streamlit re-encodes anything over 1460); analysis is full-size


def annotate(image: np.ndarray, det: tiling.Detections, highlight: np.ndarray | None = None, tiles=None,
             max_side: int = PREVIEW_SIDE, extra: list[tuple[tiling.Detections, tuple, bool]] = ()) -> np.ndarray:
    """A downscaled picture of ``det`` on ``image``; ``highlight`` marks some detections with a halo."""
    preview, scale = preview_of(image, max_side)
    small = det.scaled(scale)
    if tiles is not None:
        preview = tiling.draw_tiles(preview, scale_tiles(tiles, scale), color=(255, 255, 255), alpha=0.5)
    lw = line_width_for(preview.shape)
    if highlight is not None and highlight.any():
        preview = draw_halo(preview, small[highlight], pad=lw + 2, line_width=max(1, lw // 2))
    preview = tiling.draw_detections(preview, small, labels=labelled(preview.shape, len(det)), line_width=lw)
    for other, colour, dashed in extra:
        preview = tiling.draw_detections(preview, other.scaled(scale), color=colour, dashed=dashed, labels=False,
                                         masks=False, line_width=lw + 1)
    return preview


def labelled(shape, n_boxes: int) -> bool:
    """Whether boxes get class labels: on a large enough picture, and not past LABELLED_AT_MOST boxes."""
    return max(shape[:2]) >= 1200 and n_boxes <= LABELLED_AT_MOST


def scale_tiles(tiles, scale: float) -> list[tiling.Tile]:
    """The tiles as they lie on a copy of the image resized by ``scale``."""
    return [tiling.Tile(int(t.x0 * scale), int(t.y0 * scale), int(t.x1 * scale), int(t.y1 * scale), t.index, t.row,
                        t.col) for t in tiles]


_PREVIEWS: OrderedDict = OrderedDict()


def preview_of(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The downscaled copy of a full-resolution image, made once per image (every tab draws on it)."""
    key = (id(image), max_side)
    hit = _PREVIEWS.get(key)
    if hit is not None and hit[0]() is image:
        _PREVIEWS.move_to_end(key)
        return hit[1], hit[2]
    preview, scale = downscale(image, max_side)
    if scale == 1.0:  # nothing was computed: keep no reference
        return preview, scale
    _PREVIEWS[key] = (weakref.ref(image), preview, scale)
    while len(_PREVIEWS) > 24:
        _PREVIEWS.popitem(last=False)
    return preview, scale


def show(target, image: np.ndarray, caption: str) -> None:
    """A BGR picture sent as one JPEG we encode ourselves.

    Given an array, Streamlit encodes a quality-100 JPEG, decodes it again and re-encodes it when it is
    wider than its content width: three codec passes per picture on every rerun. This is one.
    """
    target.image(tiling.formats.encode_jpeg(image, 85), caption=caption, width="stretch", output_format="JPEG")


def legend(names: dict[int, str]) -> str:
    """HTML chips, one per class, in the colours the pictures use."""
    chips = []
    for c, name in sorted(names.items()):
        b, g, r = tiling.class_color(c)
        chips.append(f'<span style="display:inline-block;margin:0 14px 4px 0"><span style="display:inline-block;'
                     f'width:14px;height:14px;border-radius:3px;vertical-align:-2px;margin-right:6px;'
                     f'background:rgb({r},{g},{b})"></span>{html.escape(name)}</span>')
    return "<div>" + ("".join(chips) or "No object of any class was found.") + "</div>"
