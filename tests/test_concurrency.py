"""One shared model, many threads (as when a class of students shares the Space's cached model).

Without the model's lock this test fails: sessions with different tile sizes race on the
detection head's cached anchors ("The size of tensor a (1344) must match ... (2100)").
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tiling
from conftest import SAMPLES


@pytest.fixture(scope="module")
def jobs():
    image = tiling.read_image(SAMPLES / "parking-3000x2000.jpg")
    crops = [np.ascontiguousarray(image[y : y + 700, x : x + 900]) for y in (0, 650, 1300) for x in (0, 1000, 2000)]
    return [(crops[i % len(crops)], (320, 256, 416)[i % 3]) for i in range(27)]


def run(model, job):
    image, tile = job
    return tiling.predict_tiled(image, model, tile_size=tile, overlap=0.2, batch_size=3).detections


@pytest.mark.slow
def test_threads_on_different_images_give_the_single_threaded_results(det_model, jobs):
    expected = [run(det_model, j) for j in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda j: run(det_model, j), jobs))
    assert sum(len(e) for e in expected) > 100
    for got, want in zip(results, expected):
        assert len(got) == len(want)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
        np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-5)
        assert (got.class_id == want.class_id).all()


def test_a_class_of_uploads_never_evicts_the_samples_results(monkeypatch):
    """Every visitor lands on a sample; twenty uploads must not push its results out of the cache."""
    from ui import resources as res

    runs = []

    class Result:
        def __init__(self):
            runs.append(self)

        def remerge(self, merge):
            return self

    monkeypatch.setattr(res.tiling, "predict_tiled", lambda *args, **kwargs: Result())
    monkeypatch.setattr(res.tiling, "predict_full", lambda *args, **kwargs: Result())
    monkeypatch.setattr(res, "RESULT_CACHES", {u: {kind: res.SharedCache(max_entries=16, ttl=3600) for kind in
                                                   ("tiled", "full")} for u in (True, False)})
    tiles, infer, merge = tiling.TileSpec(), tiling.InferSpec(conf=0.05), tiling.MergeSpec()

    import cv2

    pixels = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()

    def both(key, sample=False):
        item = res.ImageItem(key, key, (64, 64), pixels, sample=sample)
        return (res.tiled_prediction(item, None, "model", tiles, infer, merge),
                res.full_prediction(item, None, "model", infer))

    first = both("sample", sample=True)
    for i in range(20):
        both(f"upload-{i}")
    ran = len(runs)
    assert both("sample", sample=True) == first and len(runs) == ran  # served from the cache
    both("upload-19")
    assert len(runs) == ran  # recent uploads are cached too
    both("upload-0")
    assert len(runs) == ran + 2  # the oldest upload was evicted: uploads stay bounded
