"""OpenVINO / ONNX Runtime: exported once, cached, and giving the same results as torch."""
import threading

import numpy as np
import pytest

import tiling
from tiling.models import runtimes
from conftest import DET_WEIGHTS, SAMPLES, SEG_WEIGHTS


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHWISE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_resolve_and_bad_names():
    assert runtimes.resolve("torch") == ["torch"]
    assert runtimes.resolve("auto")[-1] == "torch"
    assert runtimes.resolve("onnx") == ["onnx", "torch"]
    with pytest.raises(tiling.ModelError, match="runtime must be one of"):
        tiling.load_model(DET_WEIGHTS, runtime="tensorrt")
    with pytest.raises(tiling.ModelError, match="precision must be one of"):
        tiling.load_model(DET_WEIGHTS, precision="int4")


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_bf16_is_opt_in_and_keeps_the_accuracy():
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    gt = tiling.load_yolo_labels(SAMPLES / "depot-2400x1800.txt", image.shape)
    fast = tiling.load_model(DET_WEIGHTS, precision="bf16")
    assert fast.runtime == "openvino-bf16" and tiling.load_model(DET_WEIGHTS).runtime == "openvino"
    exact = tiling.load_model(DET_WEIGHTS, runtime="torch")
    a = tiling.predict_tiled(image, exact, tile_size=640, conf=0.05).detections
    b = tiling.predict_tiled(image, fast, tile_size=640, conf=0.05).detections
    assert abs(tiling.evaluate(a, gt).ap50 - tiling.evaluate(b, gt).ap50) < 0.01
    assert tiling.matched(a.filter(conf=0.3), b, iou=0.8).mean() > 0.98


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.parametrize("runtime", [r for r in ("openvino", "onnx") if r in runtimes.available_runtimes()])
def test_exported_runtime_matches_torch(runtime):
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    gt = tiling.load_yolo_labels(SAMPLES / "depot-2400x1800.txt", image.shape)
    torch_model = tiling.load_model(DET_WEIGHTS, runtime="torch")
    fast = tiling.load_model(DET_WEIGHTS, runtime=runtime)
    assert fast.runtime == runtime and torch_model.runtime == "torch"
    a = tiling.predict_tiled(image, torch_model, tile_size=640, conf=0.05).detections
    b = tiling.predict_tiled(image, fast, tile_size=640, conf=0.05).detections
    assert abs(len(a) - len(b)) <= 2
    matched = tiling.matched(a.filter(conf=0.3), b, iou=0.9)
    assert matched.mean() > 0.99
    assert abs(tiling.evaluate(a, gt).ap50 - tiling.evaluate(b, gt).ap50) < 0.005


@pytest.mark.skipif(not SEG_WEIGHTS.exists(), reason="bundled segmentation weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_openvino_streams_keep_each_tile_with_its_outputs():
    """A batch spread over parallel requests must come back in input order, for boxes and prototypes."""
    import torch

    net = tiling.load_model(SEG_WEIGHTS, runtime="openvino").net
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    tiles = [image[y : y + 320, x : x + 320] for y, x in ((0, 0), (900, 1200), (1400, 300), (200, 2000), (600, 900))]
    x = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).flip(1).float().div(255).contiguous()
    (preds, proto), = net(x)
    assert preds.shape[0] == proto.shape[0] == len(tiles)
    for i in range(len(tiles)):
        (p1, m1), = net(x[i : i + 1])  # a lone tile takes the latency-tuned request
        assert torch.allclose(preds[i], p1[0], atol=1e-2) and torch.allclose(proto[i], m1[0], atol=1e-2)
    assert not torch.allclose(preds[0], preds[1], atol=1e-2)  # different tiles, different outputs
    (again, proto_again), = net(x)  # the shape's second use runs on a compile fixed to it
    assert (320, 320) in net._static
    assert torch.allclose(preds, again, atol=1e-2) and torch.allclose(proto, proto_again, atol=1e-2)
    big = torch.zeros(2, 3, 704, 704)
    net(big), net(big)  # tiles above 640 px stay on the dynamic model: no compile, no memory for one
    assert (704, 704) not in net._static


@pytest.mark.skipif(not SEG_WEIGHTS.exists(), reason="bundled segmentation weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_pipelined_batches_give_each_batch_its_own_results_in_order():
    """predict_batches starts batch k+1 before finishing batch k: every batch must still get its own
    boxes and masks, through shape changes, a lone tile and a batch of mixed sizes."""
    model = tiling.load_model(SEG_WEIGHTS, runtime="openvino")
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    crop = lambda y, x, h=320, w=320: image[y : y + h, x : x + w]  # noqa: E731
    batches = [
        [crop(0, 0), crop(900, 1200), crop(1400, 300)],
        [crop(200, 2000), crop(600, 900), crop(300, 300)],
        [crop(100, 100, 320, 224), crop(1200, 1500, 320, 224)],  # another shape: another compile
        [crop(800, 800)],  # a lone tile: the latency-tuned request
        [crop(0, 640), crop(500, 500, 256, 320)],  # mixed sizes run one by one
        [],
        [crop(1000, 0), crop(1300, 1900)],
    ]
    expected = [model.predict(b) for b in batches]
    got = list(model.predict_batches(iter(batches)))
    assert len(got) == len(batches)
    for want, have in zip(expected, got):
        assert len(want) == len(have)
        for a, b in zip(want, have):
            assert len(a) == len(b) and len(a) > 0
            assert np.allclose(a.xyxy, b.xyxy, atol=0.05) and (a.class_id == b.class_id).all()
            assert all((ma == mb).mean() > 0.999 for ma, mb in zip(a.masks, b.masks))
    assert not np.allclose(got[0][0].xyxy[:1], got[1][0].xyxy[:1])  # different tiles, different boxes


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_a_run_stopped_mid_way_frees_the_model_and_restores_torch_threads():
    """Streamlit stops a run by raising from the progress callback: batches still in flight must end,
    the model's lock must be free for the next session, and torch's thread count be as it was."""
    import torch

    model = tiling.load_model(DET_WEIGHTS, runtime="openvino")
    image = tiling.read_image(SAMPLES / "airfield-4000x3000.jpg")
    threads = torch.get_num_threads()

    def stop(done, total):
        if done >= 16:
            raise KeyboardInterrupt("rerun")

    with pytest.raises(KeyboardInterrupt):
        tiling.predict_tiled(image, model, tile_size=320, progress=stop)
    assert torch.get_num_threads() == threads
    assert model._lock.acquire(blocking=False)
    model._lock.release()
    whole = tiling.predict_tiled(image[:1000, :1000], model, tile_size=320)
    one_by_one = tiling.predict_tiled(image[:1000, :1000], model, tile_size=320, batch_size=1)
    assert len(whole.detections) == len(one_by_one.detections) > 0


def test_fixed_shape_compiles_go_to_the_busiest_shapes_without_thrashing():
    """Trimmed edge tiles give an image up to four tile shapes: the compiles must settle, not repeat per image."""
    compiles = []

    class FakeModel:
        def clone(self):
            return self

        def reshape(self, shape):
            compiles.append(tuple(shape[2:]))

    net = runtimes.OpenVINONet.__new__(runtimes.OpenVINONet)
    net._model, net._dynamic, net._static, net._uses = FakeModel(), "dynamic", {}, {}
    net._reshapeable = True  # a dynamic-shape export: fixed-shape compiles are worth making
    net._streams = lambda model: f"fixed {compiles[-1]}"
    image = [((640, 640), 8), ((640, 640), 4), ((640, 480), 3), ((384, 640), 4), ((384, 480), 1)]  # depot, 640 px
    used = [[net._requests_for(shape, n) for shape, n in image] for _ in range(30)]
    assert used[0] == ["dynamic", "fixed (640, 640)", "dynamic", "dynamic", "dynamic"]  # first uses never wait
    assert len(compiles) <= 3 and compiles[0] == (640, 640)
    assert used[-1][0] == "fixed (640, 640)" and len(net._static) == 2
    for _ in range(80):  # the user moves to 320 px tiles: it takes a slot, the least used shape gives it up
        last = net._requests_for((320, 320), 8)
    assert last == "fixed (320, 320)" and len(net._static) == 2


@pytest.mark.skipif(not SEG_WEIGHTS.exists(), reason="bundled segmentation weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_segmentation_masks_line_up_across_runtimes():
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")[:900, :1200]
    a = tiling.predict_tiled(image, tiling.load_model(SEG_WEIGHTS, runtime="torch"), tile_size=640).detections
    b = tiling.predict_tiled(image, tiling.load_model(SEG_WEIGHTS, runtime="openvino"), tile_size=640).detections
    assert a.has_masks and b.has_masks and len(a) > 5
    ious = []
    for k in range(len(a)):
        j = int(np.argmin(np.abs(b.xyxy - a.xyxy[k]).sum(axis=1)))
        fa, fb = a.full_mask(k, image.shape[:2]), b.full_mask(j, image.shape[:2])
        ious.append((fa & fb).sum() / max(1, (fa | fb).sum()))
    assert np.median(ious) > 0.95


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("onnx" not in runtimes.available_runtimes(), reason="onnxruntime not installed")
def test_export_once_cached_and_shared_by_concurrent_loads(private_cache, monkeypatch):
    calls = []
    from ultralytics.engine.model import Model

    real_export = Model.export

    def counting_export(self, *args, **kwargs):
        calls.append(kwargs.get("format"))
        return real_export(self, *args, **kwargs)

    monkeypatch.setattr(Model, "export", counting_export)
    models = []
    threads = [threading.Thread(target=lambda: models.append(tiling.load_model(DET_WEIGHTS, runtime="onnx")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 4 and all(m.runtime == "onnx" for m in models)
    assert calls == ["onnx"]  # one export for four concurrent first uses
    tiling.load_model(DET_WEIGHTS, runtime="onnx")
    assert calls == ["onnx"]  # the second run reuses the cached export
    entries = list((private_cache / "exports").iterdir())
    assert any(e.is_dir() and (e / "done").exists() for e in entries)


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
def test_failed_export_falls_back_to_torch_with_a_reason(private_cache, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(runtimes, "export", broken)
    model = tiling.load_model(DET_WEIGHTS, runtime="openvino")
    assert model.runtime == "torch" and "exporter exploded" in model.runtime_note
    assert len(model.predict([np.zeros((64, 64, 3), np.uint8)])) == 1


@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
def test_an_export_fixed_at_one_shape_is_never_compiled_again():
    net = runtimes.OpenVINONet.__new__(runtimes.OpenVINONet)
    net._dynamic, net._static, net._uses, net._reshapeable = "as exported", {}, {}, False
    net._streams = lambda model: pytest.fail("a fixed-shape export was compiled again")
    assert [net._requests_for((640, 640), 8) for _ in range(5)] == ["as exported"] * 5
