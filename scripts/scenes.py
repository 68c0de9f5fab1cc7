"""Procedural aerial-looking scenes with small objects and exact labels.

Why procedural: the demo models, the sample images, the tests and the benchmarks all need large
images with hundreds of small objects whose ground truth is known exactly, offline and under a
licence we control. Every scene is a pure function of its size and seed.

What a scene holds
------------------
* Ground: smooth low-frequency colour fields (grass, soil, dry land), a few straight roads and
  rectangular fields of a different tint, fine sensor-like noise.
* Objects (the labelled classes), each drawn at a random angle, 8-40 px long, with a soft shadow:
    0 ``car``   - rounded rectangle 10-18 x 5-8 px in a random bright or dark paint, with a dark
                  windscreen band across its front third;
    1 ``truck`` - 22-40 x 8-12 px: a short cab and a longer light trailer separated by a gap line;
    2 ``plane`` - a cross: 18-36 px fuselage with swept wings and a small tail plane, light grey.
* Distractors (never labelled): bushes (clusters of dark green discs), rocks (grey blobs) and
  small square roofs, so that a model must learn shapes, not "anything that is not ground".

Labels are polygons traced from each object's rendered mask (clipped to the image, so objects cut
by the border get the visible part only); boxes are the polygons' bounds. Objects never overlap.
Each object also carries its exact oriented box, computed from the geometry it was drawn with rather
than from pixels: the rectangle at the object's heading that encloses all its parts, refitted to the
part inside the image for objects cut by the border. Planes carry four keypoints (nose, tail, left
and right wing tip). Pixel ``i`` spans ``[i, i + 1)`` in every label, as in the axis-aligned boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASS_NAMES = ("car", "truck", "plane")
KEYPOINT_NAMES = ("nose", "tail", "left_wing", "right_wing")  # planes only


@dataclass
class SceneObject:
    class_id: int
    polygon: np.ndarray  # (K, 2) float32, image pixels (x, y)
    rbox: tuple[float, float, float, float, float] | None = None  # cx, cy, length, width, heading (rad)
    keypoints: np.ndarray | None = None  # (4, 3) x, y, visible (planes: KEYPOINT_NAMES)

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.polygon.min(axis=0)
        x1, y1 = self.polygon.max(axis=0)
        return float(x0), float(y0), float(x1) + 1.0, float(y1) + 1.0

    @property
    def corners(self) -> np.ndarray:
        """The oriented box's four corners (4, 2), in order around the rectangle."""
        if self.rbox is None:
            raise ValueError("this object has no oriented box")
        cx, cy, length, width, angle = self.rbox
        return _rotated(_rect(length, width), angle, cx, cy)


def _ground(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    palettes = np.array(
        [[60, 110, 70], [70, 120, 95], [80, 125, 140], [95, 140, 150], [70, 95, 110], [110, 130, 125]],
        dtype=np.float32,
    )  # BGR: greens, olive, dry soil, grey-brown
    cells = (max(2, height // 220 + 2), max(2, width // 220 + 2))
    weights = rng.random((cells[0], cells[1], len(palettes))).astype(np.float32) ** 3
    weights /= weights.sum(axis=2, keepdims=True)
    coarse = weights @ palettes
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    # Rectangular fields of another tint.
    for _ in range(max(1, height * width // 1_500_000)):
        w, h = rng.integers(150, 900, size=2)
        x, y = rng.integers(-100, max(1, width - 50)), rng.integers(-100, max(1, height - 50))
        tint = rng.uniform(-25, 25, size=3).astype(np.float32)
        img[max(0, y) : y + h, max(0, x) : x + w] += tint
    # Roads.
    for _ in range(max(1, (height + width) // 1500)):
        p0 = (int(rng.integers(0, width)), 0) if rng.random() < 0.5 else (0, int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), height) if p0[1] == 0 else (width, int(rng.integers(0, height)))
        shade = float(rng.uniform(95, 140))
        cv2.line(img, p0, p1, (shade, shade, shade), int(rng.integers(10, 22)), cv2.LINE_AA)
    fine = cv2.GaussianBlur(rng.normal(0, 9, size=(height, width)).astype(np.float32), (0, 0), 1.2)
    img += (fine + rng.normal(0, 3, size=(height, width)).astype(np.float32))[..., None]
    return img


def _rotated(points: np.ndarray, angle: float, cx: float, cy: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]], dtype=np.float32)
    return points @ rot.T + np.array([cx, cy], dtype=np.float32)


def _rect(length: float, width: float, x_off: float = 0.0) -> np.ndarray:
    l2, w2 = length / 2, width / 2
    return np.array([[-l2 + x_off, -w2], [l2 + x_off, -w2], [l2 + x_off, w2], [-l2 + x_off, w2]], np.float32)


def _clip_polygon(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to the image rectangle ``[0, width] x [0, height]``.

    A concave polygon (a swept wing) may come back with edges along the border joining its pieces;
    its vertices still bound exactly the part inside, which is all the oriented box uses.
    """
    pts = [tuple(p) for p in poly.astype(np.float64)]
    for axis, limit, keep_below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False), (1, float(height), True)):
        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cur_in = cur[axis] <= limit if keep_below else cur[axis] >= limit
            prev_in = prev[axis] <= limit if keep_below else prev[axis] >= limit
            if cur_in != prev_in:
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        pts = out
        if not pts:
            break
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _oriented_box(
    parts: list[tuple[np.ndarray, tuple]], angle: float, cx: float, cy: float, width: int, height: int
) -> tuple[float, float, float, float, float] | None:
    """The rectangle at heading ``angle`` enclosing the drawn parts' pieces inside the image.

    Each part is clipped to the image and the rectangle fitted to what remains, so an object cut by
    the border gets a box around its visible part at its own heading. Drawing puts a vertex on a
    pixel's centre, so the geometry is shifted by half a pixel into the labels' ``[i, i + 1)`` convention.
    """
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    centre = np.array([cx + 0.5, cy + 0.5])
    pieces = [_clip_polygon(poly.astype(np.float64) @ rot.T + centre, width, height) for poly, _ in parts]
    visible = np.concatenate([p for p in pieces if len(p) >= 3] or [np.empty((0, 2))])
    if len(visible) < 3:
        return None
    local = (visible - centre) @ rot  # back to the object frame
    (x0, y0), (x1, y1) = local.min(axis=0), local.max(axis=0)
    if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
        return None
    mid = rot @ np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + centre
    return float(mid[0]), float(mid[1]), float(x1 - x0), float(y1 - y0), float(angle % (2 * math.pi))


def _plane_keypoints(
    parts: list[tuple[np.ndarray, tuple]], angle: float, cx: float, cy: float, width: int, height: int
) -> np.ndarray:
    """Nose, tail and wing tips of a plane in image pixels, with visibility (0 outside the image)."""
    fuselage, wing = parts[0][0], parts[1][0]
    nose, tail = fuselage[:, 0].max(), fuselage[:, 0].min()
    left, right = wing[np.argmin(wing[:, 1])], wing[np.argmax(wing[:, 1])]
    local = np.array([[nose, 0.0], [tail, 0.0], left, right], dtype=np.float32)
    pts = _rotated(local, angle, cx + 0.5, cy + 0.5)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return np.concatenate([pts, inside[:, None].astype(np.float32)], axis=1)


def _paint(rng: np.random.Generator) -> tuple[float, float, float]:
    if rng.random() < 0.3:
        v = float(rng.choice([25, 40, 220, 235]))
        return (v, v, v)
    return tuple(float(c) for c in rng.integers(20, 235, size=3))  # type: ignore[return-value]


def _object_parts(class_id: int, rng: np.random.Generator) -> tuple[list[tuple[np.ndarray, tuple]], float]:
    """Parts (polygon in object frame, BGR colour) and the object's radius."""
    if class_id == 0:  # car
        length, width = rng.uniform(10, 18), rng.uniform(5, 8)
        body = _paint(rng)
        screen = (30.0, 30.0, 35.0)
        parts = [(_rect(length, width), body), (_rect(length * 0.16, width * 0.8, length * 0.18), screen)]
        return parts, length / 2
    if class_id == 1:  # truck
        length, width = rng.uniform(22, 40), rng.uniform(8, 12)
        cab_len = length * 0.22
        trailer = tuple(float(v) for v in rng.integers(175, 245, size=3))
        parts = [
            (_rect(length - cab_len - 2, width, -(cab_len + 2) / 2), trailer),
            (_rect(cab_len, width * 0.9, length / 2 - cab_len / 2), _paint(rng)),
        ]
        return parts, length / 2
    # plane
    length = rng.uniform(18, 36)
    grey = float(rng.uniform(185, 240))
    colour = (grey, grey, grey + 5)
    fuselage = _rect(length, length * 0.14)
    span = length * rng.uniform(0.8, 1.0)
    chord = length * 0.18
    wing = np.array(
        [[chord * 0.6, -span / 2], [chord * 1.2, 0], [chord * 0.6, span / 2], [-chord * 0.2, span / 2],
         [chord * 0.1, 0], [-chord * 0.2, -span / 2]], np.float32)
    tail = np.array([[-length * 0.38, -span * 0.2], [-length * 0.3, 0], [-length * 0.38, span * 0.2],
                     [-length * 0.5, span * 0.2], [-length * 0.45, 0], [-length * 0.5, -span * 0.2]], np.float32)
    return [(fuselage, colour), (wing, colour), (tail, colour)], max(length, span) / 2


def _distractor(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float) -> None:
    kind = rng.integers(0, 3)
    if kind == 0:  # bush
        for _ in range(rng.integers(3, 8)):
            off = rng.normal(0, 4, size=2)
            g = float(rng.uniform(50, 90))
            cv2.circle(img, (int(cx + off[0]), int(cy + off[1])), int(rng.integers(3, 7)), (g * 0.5, g, g * 0.6), -1,
                       cv2.LINE_AA)
    elif kind == 1:  # rock
        pts = _rotated(rng.uniform(-6, 6, size=(7, 2)).astype(np.float32), 0.0, cx, cy)
        hull = cv2.convexHull(pts.astype(np.int32))
        g = float(rng.uniform(110, 170))
        cv2.fillPoly(img, [hull], (g, g, g + 5), cv2.LINE_AA)
    else:  # roof
        side = rng.uniform(14, 34)
        pts = _rotated(_rect(side, side), rng.uniform(0, math.pi), cx, cy)
        roof = (float(rng.uniform(40, 90)), float(rng.uniform(50, 90)), float(rng.uniform(120, 190)))
        cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], roof, cv2.LINE_AA, shift=4)


def render_scene(
    width: int,
    height: int,
    seed: int,
    n_objects: int | None = None,
    class_weights: tuple[float, float, float] = (0.5, 0.25, 0.25),
    distractors: float = 0.5,
    n_distractors: int | None = None,
    sizes: tuple[float, ...] = (1.0,),
) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw one scene. Returns a BGR uint8 image and its objects (polygons in image pixels).

    ``n_objects`` defaults to one object per ~25,000 px² (about 480 on 4000x3000).
    ``distractors`` is the number of unlabelled clutter items per object (``n_distractors``, when
    given, is an absolute count instead). ``sizes``: each object is drawn at one of these multiples
    of its class's usual size (several sizes make a scene where the scale the model sees matters).
    """
    rng = np.random.default_rng(seed)
    img = _ground(height, width, rng)
    if n_objects is None:
        n_objects = max(1, round(width * height / 25_000))
    occupied = np.zeros((height, width), dtype=bool)
    objects: list[SceneObject] = []
    probs = np.asarray(class_weights, dtype=float) / sum(class_weights)
    attempts = 0
    while len(objects) < n_objects and attempts < n_objects * 20:
        attempts += 1
        class_id = int(rng.choice(len(probs), p=probs))
        parts, radius = _object_parts(class_id, rng)
        if len(sizes) > 1 or sizes[0] != 1.0:  # one draw more only then: the one-size scenes stay as they were
            factor = float(rng.choice(sizes))
            parts, radius = [(poly * np.float32(factor), colour) for poly, colour in parts], radius * factor
        # Objects may stick out of the image by up to 60% of their size (cut objects are labelled).
        margin = -radius * 0.6
        cx = rng.uniform(margin, width - margin)
        cy = rng.uniform(margin, height - margin)
        r = int(math.ceil(radius)) + 3
        x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
        x1, y1 = min(width, int(cx) + r + 1), min(height, int(cy) + r + 1)
        if x1 - x0 < 3 or y1 - y0 < 3 or occupied[y0:y1, x0:x1].any():
            continue
        angle = rng.uniform(0, 2 * math.pi)
        local = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shadow_off = np.array([2.0, 2.0], np.float32)
        for poly, _ in parts:
            pts = _rotated(poly, angle, cx, cy)
            shade = np.round((pts + shadow_off) * 16).astype(np.int32)
            roi = img[y0:y1, x0:x1]
            sh = np.zeros(roi.shape[:2], np.uint8)
            cv2.fillPoly(sh, [shade - np.array([x0 * 16, y0 * 16])], 1, cv2.LINE_AA, shift=4)
            roi *= 1.0 - 0.35 * (sh[..., None] > 0)
        for poly, colour in parts:
            pts = _rotated(poly, angle, cx, cy)
            fixed = np.round(pts * 16).astype(np.int32)
            cv2.fillPoly(img, [fixed], colour, cv2.LINE_AA, shift=4)
            cv2.fillPoly(local, [fixed - np.array([x0 * 16, y0 * 16])], 1, cv2.LINE_8, shift=4)
        contours, _ = cv2.findContours(local, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        contour = max(contours, key=cv2.contourArea)
        if cv2.contourArea(contour) < 6:
            continue
        polygon = contour.reshape(-1, 2).astype(np.float32) + np.array([x0, y0], np.float32)
        occupied[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
        rbox = _oriented_box(parts, angle, cx, cy, width, height)
        keypoints = _plane_keypoints(parts, angle, cx, cy, width, height) if class_id == 2 else None
        objects.append(SceneObject(class_id, polygon, rbox, keypoints))
    if n_distractors is None:
        n_distractors = int(len(objects) * distractors)
    for _ in range(n_distractors):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if not occupied[max(0, int(cy) - 20) : int(cy) + 20, max(0, int(cx) - 20) : int(cx) + 20].any():
            _distractor(img, rng, cx, cy)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def yolo_lines(objects: list[SceneObject], width: int, height: int, segments: bool = True) -> list[str]:
    """YOLO label lines: polygons (``cls x y x y ...``) or boxes (``cls cx cy w h``), normalized."""
    lines = []
    for obj in objects:
        if segments:
            pts = obj.polygon / np.array([width, height], np.float32)
            pts = np.clip(pts, 0.0, 1.0)
            lines.append(f"{obj.class_id} " + " ".join(f"{v:.6f}" for v in pts.reshape(-1)))
        else:
            x0, y0, x1, y1 = obj.box
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
            lines.append(
                f"{obj.class_id} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
            )
    return lines


def obb_lines(objects: list[SceneObject], width: int, height: int) -> list[str]:
    """YOLO-OBB label lines, ``cls x1 y1 x2 y2 x3 y3 x4 y4`` normalized.

    The format requires corners inside the image, so a corner of a border-cut object's rectangle
    that sticks out is clamped to the edge (Ultralytics refits a rectangle to the four points).
    """
    lines = []
    for obj in objects:
        if obj.rbox is None:
            continue
        pts = np.clip(obj.corners / np.array([width, height], np.float32), 0.0, 1.0)
        lines.append(f"{obj.class_id} " + " ".join(f"{v:.6f}" for v in pts.reshape(-1)))
    return lines


def pose_lines(objects: list[SceneObject], width: int, height: int) -> list[str]:
    """YOLO pose label lines for the planes: ``0 cx cy w h`` then ``x y v`` per keypoint, normalized.

    Invisible keypoints (outside the image) are written as ``0 0 0``, as the format asks.
    """
    lines = []
    size = np.array([width, height], np.float32)
    for obj in objects:
        if obj.keypoints is None:
            continue
        x0, y0, x1, y1 = obj.box
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
        kpts = obj.keypoints.copy()
        kpts[:, :2] = np.clip(kpts[:, :2] / size, 0.0, 1.0) * kpts[:, 2:3]
        kpts[:, 2] *= 2.0  # YOLO visibility: 2 = visible
        lines.append(
            f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} "
            f"{(y1 - y0) / height:.6f} " + " ".join(f"{v:.6f}" for v in kpts.reshape(-1))
        )
    return lines


LABEL_WRITERS = {"segment": yolo_lines, "obb": obb_lines, "pose": pose_lines}


def write_scene(
    path: Path, image: np.ndarray, objects: list[SceneObject], quality: int = 90, labels: str = "segment"
) -> None:
    """Write the image and its YOLO label file (same stem, ``.txt``): polygons, oriented boxes or plane keypoints."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        cv2.imwrite(str(path), image)
    h, w = image.shape[:2]
    path.with_suffix(".txt").write_text("\n".join(LABEL_WRITERS[labels](objects, w, h)) + "\n")
