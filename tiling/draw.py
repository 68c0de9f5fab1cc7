"""Draw detections (boxes, oriented boxes, keypoints), masks and tile grids on BGR images, readable from
500 px to 8000 px wide."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .detections import Detections
from .grid import Tile

# Ultralytics' class palette (hex, RGB order), so colours match what Ultralytics users know, but for its
# third colour: near-white boxes and map pixels vanish on light ground (aerial scenes, the pale class
# map), so class 2 is orange.
_PALETTE_HEX = (
    "042AFF", "0BDBEB", "FF8C00", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
)
_PALETTE_BGR = [(int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_HEX]


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per class."""
    return _PALETTE_BGR[int(class_id) % len(_PALETTE_BGR)]


def line_width_for(shape: Sequence[int]) -> int:
    return max(1, int(round((shape[0] + shape[1]) / 2 * 0.0025)))


Segment = tuple[tuple[int, int], tuple[int, int]]


def _dash_starts(a: int, b: int, lo: int, hi: int, dash: int) -> range:
    """Starts of the dashes of the edge [a, b) that reach [lo, hi]; the pattern stays anchored at ``a``."""
    period = 2 * dash
    first = max(0, -((a - lo + dash) // period))  # ceil((lo - dash - a) / period)
    return range(a + first * period, min(b, hi + 1), period)


def dash_segments(p0: tuple[int, int], p1: tuple[int, int], shape: Sequence[int], lw: int,
                  dash: int) -> list[Segment]:
    """The dashes of the box p0-p1 that can show on an image of ``shape``.

    Only edges and dashes within a line width of the image are made, so the cost is bounded by the
    image size: a box 200,000 px wide (a hostile label) costs what a full-image box costs.
    """
    h, w = int(shape[0]), int(shape[1])
    (x0, y0), (x1, y1) = p0, p1
    out: list[Segment] = []
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        along, across = (w, h) if horizontal else (h, w)
        if not -lw <= fixed < across + lw:
            continue
        for s in _dash_starts(a, b, -lw, along - 1 + lw, dash):
            e = min(s + dash, b)
            out.append(((s, fixed), (e, fixed)) if horizontal else ((fixed, s), (fixed, e)))
    return out


def _dashed_polygon(img: np.ndarray, corners: np.ndarray, color, lw: int, dash: int) -> None:
    """A closed polygon in dashes; each edge is first clipped to the image, so a huge box costs what a
    full-image one does."""
    h, w = img.shape[:2]
    pts = np.round(corners).astype(np.int64)
    for k in range(len(pts)):
        p0, p1 = pts[k], pts[(k + 1) % len(pts)]
        length = float(np.hypot(*(p1 - p0)))
        if length < 1:
            continue
        ok, a, b = cv2.clipLine((-lw, -lw, w + 2 * lw, h + 2 * lw), tuple(int(v) for v in p0), tuple(int(v) for v in p1))
        if not ok:
            continue
        unit = (p1 - p0) / length
        t0 = float(np.dot(np.subtract(a, p0), unit))
        t1 = float(np.dot(np.subtract(b, p0), unit))
        start = np.floor(min(t0, t1) / (2 * dash)) * 2 * dash  # anchored at the corner, like the upright boxes
        for s in np.arange(start, max(t0, t1), 2 * dash):
            e = min(s + dash, length)
            q0, q1 = p0 + unit * max(s, 0), p0 + unit * e
            cv2.line(img, tuple(int(round(v)) for v in q0), tuple(int(round(v)) for v in q1), color, lw, cv2.LINE_AA)


def draw_keypoints(img: np.ndarray, keypoints: np.ndarray, color, lw: int, min_conf: float = 0.25) -> None:
    """Each keypoint whose visibility or confidence reaches ``min_conf`` as a dot ringed in black or white."""
    radius = max(2, lw + 1)
    h, w = img.shape[:2]
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ring = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    for x, y, c in keypoints:
        if c < min_conf or not (-radius <= x < w + radius and -radius <= y < h + radius):
            continue
        centre = (int(round(x)), int(round(y)))
        cv2.circle(img, centre, radius, color, -1, cv2.LINE_AA)
        cv2.circle(img, centre, radius, ring, max(1, lw // 2), cv2.LINE_AA)


def _dashed_rectangle(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], color, lw: int, dash: int) -> None:
    for start, end in dash_segments(p0, p1, img.shape, lw, dash):
        cv2.line(img, start, end, color, lw, cv2.LINE_AA)


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    line_width: int | None = None,
    labels: bool = True,
    confidence: bool = True,
    masks: bool = True,
    mask_alpha: float = 0.45,
    color: tuple[int, int, int] | None = None,
    dashed: bool = False,
    texts: Sequence[str] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with boxes (oriented ones as drawn rectangles at their angle), "class 0.87"
    labels, keypoints and translucent masks.

    ``color`` overrides the per-class colours (for example to mark missed objects); ``dashed``
    draws dashed boxes, a second style that stays distinct when colours are not. ``texts``, one per
    detection, replaces the labels (a video's "car #12" track labels).
    """
    out = image.copy()
    lw = line_width or line_width_for(out.shape)
    font_scale = max(0.35, lw / 3.0)
    font_th = max(1, lw // 2)
    h, w = out.shape[:2]
    if masks and detections.masks is not None:
        for k in np.argsort(detections.area)[::-1]:  # small masks on top
            x0, y0, x1, y1 = (int(v) for v in detections.mask_boxes[k])  # type: ignore[index]
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            m = detections.masks[k][cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            region = out[cy0:cy1, cx0:cx1]
            col = np.array(color or class_color(detections.class_id[k]), np.float32)
            region[m] = (region[m] * (1 - mask_alpha) + col * mask_alpha).astype(np.uint8)
    corners = detections.corners() if detections.obb is not None else None
    for k in range(len(detections)):
        x0, y0, x1, y1 = (int(round(v)) for v in detections.xyxy[k])
        col = color or class_color(detections.class_id[k])
        if corners is not None and dashed:
            _dashed_polygon(out, corners[k], col, lw, dash=max(3, 3 * lw))
        elif corners is not None:
            cv2.polylines(out, [np.round(corners[k]).astype(np.int32)], True, col, lw, cv2.LINE_AA)
        elif dashed:
            _dashed_rectangle(out, (x0, y0), (x1, y1), col, lw, dash=max(3, 3 * lw))
        else:
            cv2.rectangle(out, (x0, y0), (x1, y1), col, lw, cv2.LINE_AA)
        if detections.keypoints is not None:
            draw_keypoints(out, detections.keypoints[k], col, lw)
        if labels:
            text = detections.names.get(int(detections.class_id[k]), str(int(detections.class_id[k])))
            if confidence:
                text += f" {detections.confidence[k]:.2f}"
            if texts is not None:
                text = texts[k]
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_th)
            ty = y0 - 2 if y0 - th - base - 2 >= 0 else y1 + th + 2
            cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty + base // 2), col, -1)
            luminance = 0.114 * col[0] + 0.587 * col[1] + 0.299 * col[2]
            txt_col = (0, 0, 0) if luminance > 140 else (255, 255, 255)
            cv2.putText(out, text, (x0 + 1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, txt_col, font_th,
                        cv2.LINE_AA)
    return out


def draw_tiles(image: np.ndarray, tiles: Sequence[Tile], color=(255, 255, 255), line_width: int | None = None,
               numbers: bool = False, alpha: float = 0.8) -> np.ndarray:
    """A copy of ``image`` with the tile grid drawn over it (translucent, so the image stays readable)."""
    lw = line_width or max(1, line_width_for(image.shape) // 2)
    layer = image.copy()
    palette = [color, (0, 200, 255), (255, 120, 0), (120, 255, 120)]
    for t in tiles:
        col = palette[(t.row % 2) * 2 + (t.col % 2)] if color is None else color
        cv2.rectangle(layer, (t.x0, t.y0), (t.x1 - 1, t.y1 - 1), col, lw, cv2.LINE_AA)
        if numbers:
            scale = max(0.4, lw / 2)
            cv2.putText(layer, str(t.index), (t.x0 + 4 * lw, t.y0 + 12 * lw), cv2.FONT_HERSHEY_SIMPLEX, scale, col,
                        max(1, lw // 2), cv2.LINE_AA)
    return cv2.addWeighted(layer, alpha, image, 1 - alpha, 0)


def colorize_class_map(cmap: np.ndarray, background=(40, 40, 40), image: np.ndarray | None = None) -> np.ndarray:
    """BGR picture of a class map, in the same colours as the boxes. With ``image``, the classes are laid
    over a pale grey copy of it, so every class colour (dark blue included) stands out and the map reads
    against the scene it came from."""
    if image is None:
        out = np.empty((*cmap.shape, 3), np.uint8)
        out[:] = background
    else:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        out = cv2.cvtColor((grey // 3 + 160).astype(np.uint8), cv2.COLOR_GRAY2BGR)  # pale: 160-245
    for c in np.unique(cmap):
        if c >= 0:
            out[cmap == c] = class_color(int(c))
    return out


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A preview no larger than ``max_side`` and the scale applied (<= 1)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def draw_halo(image: np.ndarray, detections: Detections, pad: int, line_width: int | None = None) -> np.ndarray:
    """A copy of ``image`` with a dashed black-and-white outline ``pad`` px around each detection: a mark
    no class colour uses (the palette has no white or black), readable on light and dark ground."""
    lw = line_width or max(1, line_width_for(image.shape) // 2)
    grown = detections[np.arange(len(detections))]
    grown.xyxy = detections.xyxy + np.array([-pad, -pad, pad, pad], np.float32)
    if grown.obb is not None:  # a rotated box's halo is the same box, grown on every side
        grown.obb = grown.obb + np.array([0, 0, 2 * pad, 2 * pad, 0], np.float32)
    out = draw_detections(image, grown, color=(0, 0, 0), labels=False, masks=False, line_width=lw + 1)
    return draw_detections(out, grown, color=(255, 255, 255), dashed=True, labels=False, masks=False, line_width=lw)


def draw_numbers(image: np.ndarray, xyxy: np.ndarray, numbers: Sequence[int], colors: Sequence[tuple]) -> np.ndarray:
    """A copy of ``image`` with a number on a chip of its box's colour at each box's top left corner,
    so a table below the picture can name the boxes."""
    out = image.copy()
    lw = max(1, line_width_for(out.shape) // 2)
    scale = max(0.4, lw / 2.5)
    for (x0, y0, _, _), number, col in zip(np.round(xyxy).astype(int), numbers, colors):
        text = str(number)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, lw)
        ty = max(th + base, y0 - 2)
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty), col, -1)
        luminance = 0.114 * col[0] + 0.587 * col[1] + 0.299 * col[2]
        cv2.putText(out, text, (x0 + 1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0) if luminance > 140 else (255, 255, 255), lw, cv2.LINE_AA)
    return out


def network_input(image: np.ndarray, imgsz: int | None, stride: int = 32, pad_value: int = 114) -> tuple[np.ndarray, float]:
    """The picture a network is given, and the scale applied: the image resized to ``imgsz`` on its long side
    (None: kept at its own size, as tiles are), padded at the bottom and right with grey to a multiple of
    ``stride``, as the models here prepare their input."""
    h, w = image.shape[:2]
    scale = 1.0 if not imgsz else imgsz / max(h, w)
    nh, nw = (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))
    src = image if scale == 1.0 else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = -(-nh // stride) * stride, -(-nw // stride) * stride
    out = np.full((ph, pw, 3), pad_value, np.uint8)
    out[:nh, :nw] = src
    return out, scale
