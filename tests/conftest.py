"""Shared fixtures: offline Ultralytics, a deterministic stand-in model and synthetic scenes."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")
if "PATCHWISE_CACHE" not in os.environ:  # exports made by the tests stay out of the user's cache
    import tempfile

    os.environ["PATCHWISE_CACHE"] = os.path.join(tempfile.gettempdir(), "patchwise-test-cache")
ROOT = Path(__file__).resolve().parent.parent

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tiling  # noqa: E402

MODELS = ROOT / "models"
SAMPLES = ROOT / "samples"
DET_WEIGHTS = MODELS / "synth-yolo11n-det.pt"
SEG_WEIGHTS = MODELS / "synth-yolo11n-seg.pt"


class SquareFinder:
    """A stand-in model: finds blue (class 0) and green (class 1) blobs by connected components.

    Objects cut by a tile edge come out as partial boxes, like a real detector's; ``partial_conf``
    makes those pieces *more* confident than whole objects, the hard case for merging.
    """

    names = {0: "blue", 1: "green"}

    def __init__(self, partial_conf: float = 0.5, whole_conf: float = 0.8, masks: bool = False):
        self.calls = 0
        self.images_seen = 0
        self.partial_conf, self.whole_conf, self.masks = partial_conf, whole_conf, masks
        self.task = "segment" if masks else "detect"

    def __call__(self, images):
        self.calls += 1
        self.images_seen += len(images)
        return [self._one(im) for im in images]

    def _one(self, im):
        boxes, confs, classes, masks = [], [], [], []
        h, w = im.shape[:2]
        for cls, channel in ((0, 0), (1, 1)):
            fg = ((im[..., channel] > 128) & (im[..., 2] < 128)).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
            for k in range(1, n):
                x, y, bw, bh, _area = stats[k]
                edge = x == 0 or y == 0 or x + bw == w or y + bh == h
                boxes.append([x, y, x + bw, y + bh])
                confs.append(self.partial_conf if edge else self.whole_conf)
                classes.append(cls)
                masks.append(labels[y : y + bh, x : x + bw] == k)
        det = tiling.Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=np.array(confs), class_id=np.array(classes),
            masks=masks if self.masks else None, names=self.names,
        )
        return det


def square_scene(width=1000, height=800, n=60, seed=0, size=(16, 40)):
    """Black image with non-overlapping blue/green squares; returns (image, ground-truth Detections)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    occupied = np.zeros((height, width), bool)
    boxes, classes = [], []
    tries = 0
    while len(boxes) < n and tries < n * 50:
        tries += 1
        s = int(rng.integers(*size))
        x, y = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
        if occupied[max(0, y - 3) : y + s + 3, max(0, x - 3) : x + s + 3].any():
            continue
        cls = int(rng.integers(0, 2))
        img[y : y + s, x : x + s, cls] = 255
        occupied[y : y + s, x : x + s] = True
        boxes.append([x, y, x + s, y + s])
        classes.append(cls)
    gt = tiling.Detections(xyxy=np.array(boxes, np.float32), class_id=np.array(classes), names=SquareFinder.names)
    return img, gt


def untrained_checkpoint(yaml: str, folder: Path) -> Path:
    """An untrained Ultralytics model built offline from ``yaml`` whose class-0 scores sit around 0.5, so
    it finds boxes everywhere (the Ultralytics plumbing of OBB and pose heads, with no download), saved
    as a .pt in ``folder``."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO(yaml)
    for seq in yolo.model.model[-1].cv3:
        seq[-1].bias.data[:] = -6.0
        seq[-1].bias.data[0] = 0.0
    path = folder / yaml.replace(".yaml", ".pt")
    yolo.save(str(path))
    return path


def page_with_uploaded_model(model_name: str, model_bytes: bytes, image: np.ndarray, labels: str | None = None):
    """The page on its table view, in plain PyTorch, after a visitor uploads a model, one PNG and optionally
    its YOLO labels (the OBB and pose page tests)."""
    from streamlit.testing.v1 import AppTest

    from ui.views import TABLE

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["view"] = TABLE
    at.run()
    at.radio(key="runtime").set_value("Plain PyTorch").run()
    at.selectbox(key="model_choice").set_value("Upload my own model").run()
    at.file_uploader(key="model_upload").upload(model_name, model_bytes, "application/octet-stream")
    at.file_uploader(key="image_upload").upload("scene.png", cv2.imencode(".png", image)[1].tobytes(), "image/png")
    if labels is not None:
        at.file_uploader(key="label_upload").upload("scene.txt", labels.encode(), "text/plain")
    return at.run()


@pytest.fixture
def finder():
    return SquareFinder()


@pytest.fixture(scope="session")
def yaml_detector():
    """An untrained YOLO11n built offline from its yaml: tests the Ultralytics plumbing."""
    from ultralytics import YOLO

    return tiling.as_model(YOLO("yolo11n.yaml"))


@pytest.fixture(scope="session")
def det_model():
    if not DET_WEIGHTS.exists():
        pytest.skip("bundled detection weights not present")
    return tiling.load_model(DET_WEIGHTS)


@pytest.fixture(scope="session")
def seg_model():
    if not SEG_WEIGHTS.exists():
        pytest.skip("bundled segmentation weights not present")
    return tiling.load_model(SEG_WEIGHTS)


def pytest_collection_modifyitems(config, items):
    """Browser tests last: the fast suite reports first, and a broken browser cannot hide it."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


class FixedAnswer:
    """A tiny ASGI app: every request gets the same status, headers and body (sent in the given parts,
    with a matching content-length). Counts the requests that reached it."""

    def __init__(self, parts: list[bytes], headers=(), status: int = 200):
        self.parts, self.headers, self.status, self.calls = parts, list(headers), status, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        length = str(sum(map(len, self.parts))).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [*self.headers, (b"content-length", length)]})
        for i, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(self.parts) - 1})


def asgi_request(app, method: str = "GET", path: str = "/", headers=()) -> tuple[int, dict, bytes]:
    """One HTTP request through an ASGI app; (status, headers, body) as the client got them."""
    import asyncio

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
             "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body
