"""Write a generated aerial clip (H.264 MP4) and its MOT Challenge ground truth.

    python -m scripts.make_clip                      # the bundled clip: samples/clips/roads-1920x1080.mp4
    python -m scripts.make_clip --seed 7 --out /tmp/clips      # the clip the repository does not ship
    python -m scripts.make_clip --seconds 40 --out /tmp/long   # 10x longer, same scene (memory checks)
    python -m scripts.make_clip --check              # also: objects found by full frame vs 640 px tiles

Why generated: the tracking tests, the page's default clip and the video benchmark need footage whose
every object's track is known exactly, offline and under a licence we control. The ground is a
``scripts/scenes.py`` scene without objects (grass, soil, fields, clutter); straight roads are drawn on it
and cars (10-18 px) and trucks (22-40 px) drive along them in lanes, a couple of planes taxi slowly, and
the camera pans slowly by whole pixels (which keeps the H.264 stream small: the ground only moves). At
imgsz 640 a full 1080p frame shrinks a car to 3-6 px, below what the bundled detector sees; 640 px tiles
see it at its own size.

Ground truth (``<stem>.gt.txt``), one line per visible object per frame:
``frame,id,x,y,w,h,1,class,1`` with frames from 1, ``x, y, w, h`` the box of the object's drawn pixels in
the frame (pixel ``i`` spans ``[i, i + 1)``, clipped to the frame) and ``class`` the bundled detector's class
id (0 car, 1 truck, 2 plane). Objects whose visible part is under 6 px² are not listed.
Every clip is a pure function of its seed, size, length, frame rate and pan.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

import tiling
from scripts.scenes import _object_parts, _rotated, render_scene

BUNDLED = dict(seed=2024, width=1920, height=1080, seconds=4.0, fps=10.0, pan=2)
MIN_AREA = 6.0  # px²: a sliver at the border is no object to find


@dataclass
class Mover:
    """One object: its drawn parts, where it is at frame 0 (world pixels), its heading and velocity."""

    track_id: int
    class_id: int
    parts: list
    x: float
    y: float
    angle: float
    speed: float  # world px per frame along ``angle``

    def at(self, frame: int) -> tuple[float, float]:
        return (self.x + self.speed * frame * math.cos(self.angle),
                self.y + self.speed * frame * math.sin(self.angle))


@dataclass(frozen=True)
class Road:
    x0: float
    y0: float
    angle: float
    length: float
    width: int


def _roads(world_w: int, world_h: int, rng: np.random.Generator) -> list[Road]:
    """Three to four straight roads crossing the world from edge to edge, at least 25 degrees apart."""
    roads: list[Road] = []
    while len(roads) < int(rng.integers(3, 5)):
        angle = float(rng.uniform(0, math.pi))
        if any(abs(math.sin(angle - r.angle)) < math.sin(math.radians(25)) for r in roads):
            continue
        cx, cy = rng.uniform(0.2, 0.8) * world_w, rng.uniform(0.2, 0.8) * world_h
        half = math.hypot(world_w, world_h)
        x0, y0 = cx - half * math.cos(angle), cy - half * math.sin(angle)
        roads.append(Road(x0, y0, angle, 2 * half, int(rng.integers(20, 26))))
    return roads


def _draw_roads(img: np.ndarray, roads: list[Road], rng: np.random.Generator) -> None:
    for road in roads:
        p0 = (int(road.x0), int(road.y0))
        p1 = (int(road.x0 + road.length * math.cos(road.angle)), int(road.y0 + road.length * math.sin(road.angle)))
        shade = float(rng.uniform(100, 135))
        cv2.line(img, p0, p1, (shade, shade, shade + 3), road.width, cv2.LINE_AA)


def _lane_movers(road: Road, rng: np.random.Generator, first_id: int) -> list[Mover]:
    """Cars and trucks in the road's two lanes, one direction each, spaced so that none ever overlap
    (a lane's vehicles share its speed); spread over the whole road, so some enter during the clip."""
    movers: list[Mover] = []
    for direction in (1, -1):
        speed = float(rng.uniform(1.5, 4.0))
        angle = road.angle if direction == 1 else road.angle + math.pi
        offset = direction * road.width * 0.22  # keep right
        nx, ny = -math.sin(road.angle), math.cos(road.angle)
        s = float(rng.uniform(0, 80))
        while s < road.length:
            class_id = 0 if rng.random() < 0.8 else 1
            parts, radius = _object_parts(class_id, rng)
            along = s if direction == 1 else road.length - s
            x = road.x0 + along * math.cos(road.angle) + offset * nx
            y = road.y0 + along * math.sin(road.angle) + offset * ny
            movers.append(Mover(first_id + len(movers), class_id, parts, x, y, angle, speed))
            s += 2 * radius + float(rng.uniform(25, 140))
    return movers


def _planes(world_w: int, world_h: int, rng: np.random.Generator, first_id: int) -> list[Mover]:
    """Two planes taxiing slowly across open ground (one that would meet a vehicle is dropped later)."""
    planes = []
    for i in range(2):
        parts, _ = _object_parts(2, rng)
        planes.append(Mover(first_id + i, 2, parts, float(rng.uniform(0.15, 0.85) * world_w),
                            float(rng.uniform(0.15, 0.85) * world_h), float(rng.uniform(0, 2 * math.pi)),
                            float(rng.uniform(0.5, 1.2))))
    return planes


def _draw(img: np.ndarray, mover: Mover, cx: float, cy: float) -> tuple[float, float, float, float] | None:
    """Draw one object (shadow, then its parts) centred at ``cx, cy`` in frame pixels; returns the box of
    its drawn pixels inside the frame, or None when too little of it shows."""
    h, w = img.shape[:2]
    pts = [_rotated(poly, mover.angle, cx, cy) for poly, _ in mover.parts]
    allpts = np.concatenate(pts)
    x0, y0 = np.floor(allpts.min(axis=0)).astype(int) - 4
    x1, y1 = np.ceil(allpts.max(axis=0)).astype(int) + 5
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return None
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    origin = np.array([x0 * 16, y0 * 16])
    roi = img[y0:y1, x0:x1]
    shadow = np.zeros(roi.shape[:2], np.uint8)
    mask = np.zeros(roi.shape[:2], np.uint8)
    for poly in pts:
        cv2.fillPoly(shadow, [np.round((poly + 2.0) * 16).astype(np.int32) - origin], 1, cv2.LINE_AA, shift=4)
    roi[shadow > 0] = (roi[shadow > 0] * 0.65).astype(np.uint8)
    for poly, (_, colour) in zip(pts, mover.parts):
        fixed = np.round(poly * 16).astype(np.int32)
        cv2.fillPoly(img, [fixed], colour, cv2.LINE_AA, shift=4)
        cv2.fillPoly(mask, [fixed - origin], 1, cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_AREA:
        return None
    return float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + x0 + 1), float(ys.max() + y0 + 1)


def render_clip(seed: int, width: int, height: int, frames: int, pan: int
                ) -> Iterator[tuple[np.ndarray, list[tuple[int, int, tuple[float, float, float, float]]]]]:
    """Frames one by one: (BGR uint8 frame, [(track id, class id, box x0 y0 x1 y1)]). The camera moves
    ``pan`` whole pixels right per frame over a ground wide enough for the whole clip."""
    rng = np.random.default_rng(seed)
    world_w, world_h = width + pan * frames, height
    ground, _ = render_scene(world_w, world_h, seed=seed, n_objects=0, n_distractors=world_w * world_h // 9_000)
    roads = _roads(world_w, world_h, rng)
    _draw_roads(ground, roads, rng)
    movers: list[Mover] = []
    for road in roads:
        movers += _lane_movers(road, rng, len(movers) + 1)
    movers += _planes(world_w, world_h, rng, len(movers) + 1)
    movers = _uncrossed([m for m in movers if _ever_seen(m, frames, width, height, pan)], frames)
    for index in range(frames):
        frame = ground[:, index * pan: index * pan + width].copy()
        shown = []
        for mover in movers:
            x, y = mover.at(index)
            box = _draw(frame, mover, x - index * pan, y)
            if box is not None:
                shown.append((mover.track_id, mover.class_id, box))
        yield frame, shown


def _ever_seen(mover: Mover, frames: int, width: int, height: int, pan: int) -> bool:
    """Whether the object's centre comes within 40 px of the camera's view at some frame."""
    xy = np.array([mover.at(i) for i in range(frames)]) - np.array([[i * pan, 0] for i in range(frames)])
    return bool(((xy[:, 0] > -40) & (xy[:, 0] < width + 40) & (xy[:, 1] > -40) & (xy[:, 1] < height + 40)).any())


def _uncrossed(movers: list[Mover], frames: int) -> list[Mover]:
    """Drop objects that would drive through another at a crossing during the clip (checked every frame,
    greedily in id order), so no drawn object ever covers another."""
    kept: list[Mover] = []
    paths = {m.track_id: np.array([m.at(i) for i in range(frames)]) for m in movers}
    radius = {m.track_id: max(float(np.abs(np.concatenate([p for p, _ in m.parts])).max()), 4.0) for m in movers}
    for mover in movers:
        mine = paths[mover.track_id]
        if all(np.min(np.hypot(*(mine - paths[k.track_id]).T)) > radius[mover.track_id] + radius[k.track_id] + 3
               for k in kept):
            kept.append(mover)
    return kept


def write_clip(path: Path, seed: int, width: int, height: int, seconds: float, fps: float, pan: int,
               crf: int = 23) -> tuple[int, int]:
    """Encode the clip (H.264, yuv420p, one keyframe per 10 s: plays in browsers) and write its ground
    truth beside it; returns (frames, distinct objects)."""
    import av  # the encoder of the script only, not of the library

    frames = max(1, round(seconds * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, ids = [], set()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "slow", "g": str(max(1, round(10 * fps))),
                          "movflags": "+faststart"}
        for index, (frame, shown) in enumerate(render_clip(seed, width, height, frames, pan)):
            for track_id, class_id, (x0, y0, x1, y1) in shown:
                lines.append(f"{index + 1},{track_id},{x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g},1,{class_id},1")
                ids.add(track_id)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    gt_path(path).write_text("\n".join(lines) + "\n")
    return frames, len(ids)


def gt_path(clip: Path) -> Path:
    """The ground truth's file beside a clip: ``roads.mp4`` -> ``roads.gt.txt``."""
    return clip.with_name(clip.stem + ".gt.txt")


def check(path: Path, frames: int, model_path: str = "models/synth-yolo11n-det.pt", every: int = 13) -> None:
    """Objects the bundled detector finds on a few frames, full frame vs 640 px tiles, against the truth."""
    model = tiling.load_model(model_path)
    cap = cv2.VideoCapture(str(path))
    for index in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        if index % every:
            continue
        gt = _frame_truth(path, index + 1)
        full = tiling.predict_full(frame, model, conf=0.25)
        tiled = tiling.predict_tiled(frame, model, tile_size=640, overlap=0.25, conf=0.25).detections
        print(f"frame {index + 1}: {len(gt)} objects; full frame found {_found(full, gt)} ({len(full)} boxes), "
              f"640 px tiles found {_found(tiled, gt)} ({len(tiled)} boxes)")
    cap.release()


def _frame_truth(path: Path, frame: int) -> np.ndarray:
    rows = [line.split(",") for line in gt_path(path).read_text().splitlines() if line.startswith(f"{frame},")]
    return np.array([[float(r[2]), float(r[3]), float(r[2]) + float(r[4]), float(r[3]) + float(r[5])] for r in rows])


def _found(det, gt: np.ndarray, iou: float = 0.5) -> int:
    """Ground-truth boxes that some detection overlaps at IoU >= ``iou`` (a count, not a score)."""
    return int(tiling.matched(tiling.Detections(gt.reshape(-1, 4)), det, iou=iou, class_aware=False).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("samples/clips"), help="folder (default samples/clips)")
    ap.add_argument("--name", default=None, help="file stem (default roads-WxH, with -sSEED for another seed)")
    ap.add_argument("--seed", type=int, default=BUNDLED["seed"])
    ap.add_argument("--width", type=int, default=BUNDLED["width"])
    ap.add_argument("--height", type=int, default=BUNDLED["height"])
    ap.add_argument("--seconds", type=float, default=BUNDLED["seconds"])
    ap.add_argument("--fps", type=float, default=BUNDLED["fps"])
    ap.add_argument("--pan", type=int, default=BUNDLED["pan"], help="camera pan, whole pixels per frame")
    ap.add_argument("--crf", type=int, default=23, help="H.264 quality (lower: better, larger)")
    ap.add_argument("--check", action="store_true", help="run the bundled detector on a few frames")
    args = ap.parse_args()
    if args.width < 64 or args.height < 64 or args.seconds <= 0 or args.fps <= 0 or args.pan < 0:
        ap.error("width and height >= 64, seconds and fps > 0, pan >= 0")
    name = args.name or f"roads-{args.width}x{args.height}" + ("" if args.seed == BUNDLED["seed"] else f"-s{args.seed}")
    path = args.out / f"{name}.mp4"
    frames, objects = write_clip(path, args.seed, args.width, args.height, args.seconds, args.fps, args.pan, args.crf)
    print(f"{path}: {args.width}x{args.height}, {frames} frames at {args.fps:g} fps, {objects} objects, "
          f"{path.stat().st_size / 1e6:.2f} MB; ground truth {gt_path(path)}")
    if args.check:
        check(path, frames)


if __name__ == "__main__":
    main()
