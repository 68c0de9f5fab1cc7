"""OpenVINO / ONNX Runtime: exported once, cached, and giving the same results as torch."""
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import tiling
from tiling.models import runtimes
from tiling.models.runtimes import Precision, Runtime
from conftest import DET_WEIGHTS, SAMPLES, SEG_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent


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
    with pytest.raises(tiling.ModelError, match="precision 'bf16' runs on OpenVINO; use runtime 'auto' or 'openvino'"):
        tiling.load_model(DET_WEIGHTS, runtime="onnx", precision="bf16")


def test_runtime_and_precision_from_value_take_members_and_names_and_refuse_the_rest_in_one_line():
    assert Runtime.from_value("onnx") is Runtime.ONNX and Runtime.from_value(Runtime.AUTO) is Runtime.AUTO
    assert Precision.from_value("int8") is Precision.INT8 and Precision.from_value(Precision.BF16) is Precision.BF16
    for kind, bad in ((Runtime, "tensorrt"), (Runtime, "OpenVINO"), (Runtime, None), (Precision, "int4"),
                      (Precision, "openvino-int8"), (Precision, 8)):
        with pytest.raises(ValueError) as info:
            kind.from_value(bad)
        text = str(info.value)
        assert "\n" not in text and repr(bad) in text and all(m.value in text for m in kind)
    assert Precision.INT8.exported is Precision.FP32 and Precision.BF16.exported is Precision.BF16


def test_the_registry_says_what_each_runtime_runs():
    assert set(runtimes.BACKENDS) == {Runtime.OPENVINO, Runtime.ONNX, Runtime.TORCH}
    assert runtimes.backend("openvino").supports(Precision.INT8) and runtimes.backend("openvino").supports(Precision.BF16)
    assert not runtimes.backend(Runtime.ONNX).supports(Precision.INT8)
    assert runtimes.backend(Runtime.TORCH).supports(Precision.FP32) and runtimes.backend(Runtime.TORCH).installed()
    assert runtimes.available_runtimes()[-1] is Runtime.TORCH
    with pytest.raises(ValueError, match="resolve"):
        runtimes.backend("auto")
    with pytest.raises(ValueError, match="nothing to export"):
        runtimes.backend("torch").export(b"", "0" * 64)
    assert runtimes.requested("auto", "int8") == (Runtime.AUTO, Precision.INT8)
    with pytest.raises(ValueError, match="precision 'int8' runs on OpenVINO; use runtime 'auto' or 'openvino', not 'torch'"):
        runtimes.requested("torch", "int8")


def test_no_module_reaches_into_a_models_private_state_or_compares_runtime_names():
    """Runtimes and precisions are asked as types (the registry), and a model changes only through its
    own methods (run_on, predict_with, probe); the behaviour is tested beside (swap, guard, export probe)."""
    private = re.compile(r"(?<!self)\.(_lock\b|_prepare\(|_finish\(|_predict_fast\()|\.net\s*=[^=]"
                         r"|\.min_input\s*=[^=]")
    names = re.compile(r"""(==|!=|endswith\()\s*["'](openvino|onnx|torch|int8|bf16|fp32)["']|:int8""")
    found = []
    for path in [*(ROOT / "tiling").rglob("*.py"), *(ROOT / "ui").rglob("*.py"), ROOT / "app.py"]:
        if path.name == "ultralytics_model.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if private.search(line) or names.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
@pytest.mark.slow
def test_bf16_is_opt_in_and_keeps_the_accuracy():
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    gt = tiling.load_yolo_labels(SAMPLES / "depot-2400x1800.txt", image.shape)
    fast = tiling.load_model(DET_WEIGHTS, precision="bf16")
    assert fast.runtime is Runtime.OPENVINO and fast.precision is Precision.BF16 and fast.runtime_label == "openvino-bf16"
    assert tiling.load_model(DET_WEIGHTS).runtime_label == "openvino"
    exact = tiling.load_model(DET_WEIGHTS, runtime="torch")
    a = tiling.predict_tiled(image, exact, tile_size=640, conf=0.05).detections
    b = tiling.predict_tiled(image, fast, tile_size=640, conf=0.05).detections
    assert abs(tiling.evaluate(a, gt).ap50 - tiling.evaluate(b, gt).ap50) < 0.01
    assert tiling.matched(a.filter(conf=0.3), b, iou=0.8).mean() > 0.98


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.parametrize("runtime", [r for r in ("openvino", "onnx") if r in runtimes.available_runtimes()])
@pytest.mark.slow
def test_exported_runtime_matches_torch(runtime):
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    gt = tiling.load_yolo_labels(SAMPLES / "depot-2400x1800.txt", image.shape)
    torch_model = tiling.load_model(DET_WEIGHTS, runtime="torch")
    fast = tiling.load_model(DET_WEIGHTS, runtime=runtime)
    assert fast.runtime is Runtime(runtime) and torch_model.runtime is Runtime.TORCH
    assert fast.precision is torch_model.precision is Precision.FP32 and fast.runtime_label == runtime
    a = tiling.predict_tiled(image, torch_model, tile_size=640, conf=0.05).detections
    b = tiling.predict_tiled(image, fast, tile_size=640, conf=0.05).detections
    assert abs(len(a) - len(b)) <= 2
    matched = tiling.matched(a.filter(conf=0.3), b, iou=0.9)
    assert matched.mean() > 0.99
    assert abs(tiling.evaluate(a, gt).ap50 - tiling.evaluate(b, gt).ap50) < 0.005


@pytest.mark.skipif(not SEG_WEIGHTS.exists(), reason="bundled segmentation weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
@pytest.mark.slow
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
@pytest.mark.slow
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
@pytest.mark.slow
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
@pytest.mark.slow
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
@pytest.mark.slow
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


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("onnx" not in runtimes.available_runtimes(), reason="onnxruntime not installed")
@pytest.mark.slow
def test_cli_runtime_onnx_writes_the_boxes_of_the_python_call(tmp_path):
    import json
    import subprocess
    import sys

    image = SAMPLES / "depot-2400x1800.jpg"
    out = subprocess.run([sys.executable, "-m", "tiling", "predict", str(image), "--model", str(DET_WEIGHTS),
                          "--runtime", "onnx", "--out", str(tmp_path / "o"), "--no-images"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    coco = json.loads((tmp_path / "o" / "coco_results.json").read_text())
    model = tiling.load_model(DET_WEIGHTS, runtime="onnx")
    assert model.runtime is Runtime.ONNX
    want = tiling.predict_tiled(tiling.read_image(image), model).detections
    got = np.array([r["bbox"] for r in coco], np.float64).reshape(-1, 4)
    assert len(got) == len(want) > 100
    xywh = np.column_stack([want.xyxy[:, :2], want.xyxy[:, 2:] - want.xyxy[:, :2]])
    assert np.allclose(np.sort(got, axis=0), np.sort(xywh, axis=0), atol=0.01)
    assert sorted(r["score"] for r in coco) == pytest.approx(sorted(want.confidence.tolist()), abs=1e-4)


@pytest.mark.parametrize("options, message", [
    (["--runtime", "tensorrt"], "argument --runtime: invalid choice: 'tensorrt'"),
    (["--precision", "int4"], "argument --precision: invalid choice: 'int4'"),
    (["--runtime", "torch", "--precision", "int8"], "--runtime torch with --precision int8: precision 'int8' runs "
                                                    "on OpenVINO"),
])
def test_a_bad_runtime_or_precision_is_one_line_naming_the_flag(options, message, capsys, tmp_path):
    from tiling.cli import main

    (tmp_path / "a.jpg").write_bytes(b"never read: the options are refused first")
    try:
        code = main(["predict", str(tmp_path / "a.jpg"), "--model", "never-loaded.pt", "--out", str(tmp_path / "o"),
                     *options])
    except SystemExit as exit_:  # argparse refuses a name itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # refused before anything is written


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.skipif("openvino" not in runtimes.available_runtimes(), reason="openvino not installed")
@pytest.mark.slow
def test_run_on_swaps_the_network_only_when_it_runs_and_predict_with_leaves_the_model_alone():
    """The public ways in to a model's network: run_on (8-bit copies, exported runtimes), predict_with (the
    8-bit guard) and probe (an export's check)."""
    model = tiling.load_model(DET_WEIGHTS, runtime="openvino")
    det_model = tiling.load_model(DET_WEIGHTS, runtime="torch")
    assert (model.runtime, model.precision, model.min_input) == (Runtime.OPENVINO, Precision.FP32, 0)
    float_net = model.net

    class Broken:
        def __call__(self, x):
            raise RuntimeError("no such graph")

    with pytest.raises(RuntimeError, match="no such graph"):
        model.run_on(Broken(), Runtime.ONNX, Precision.FP32)
    assert model.net is float_net and model.runtime is Runtime.OPENVINO and model.min_input == 0
    tile = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")[:320, :320]
    torch_dets = det_model.predict([tile])[0]
    borrowed = det_model.predict_with(float_net, [tile], tiling.InferSpec(), min_input=runtimes.MIN_INT8_SIDE)[0]
    assert det_model.net is not float_net and det_model.runtime is Runtime.TORCH  # only borrowed
    assert len(borrowed) == len(torch_dets) and np.allclose(borrowed.xyxy, torch_dets.xyxy, atol=0.5)
    seen = []
    assert len(model.probe(lambda out: seen.append(out[0].shape))) == 1 and seen and seen[0][0] == 1
    model.run_on(det_model.net, Runtime.TORCH, Precision.FP32)  # back on a torch network, once it has run
    assert model.runtime is Runtime.TORCH and model.runtime_label == "torch" and model.net is det_model.net


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
def test_an_export_says_its_runtime_and_precision(tmp_path):
    model = tiling.load_model(DET_WEIGHTS, runtime="torch")
    assert (model.runtime, model.precision, model.runtime_label) == (Runtime.TORCH, Precision.FP32, "torch")
    for runtime in runtimes.available_runtimes()[:-1]:
        path = runtimes.backend(runtime).export(DET_WEIGHTS.read_bytes(), model.digest)
        exported = tiling.load_model(path.parent if runtime is Runtime.OPENVINO else path)
        assert exported.runtime is runtime and exported.precision is Precision.FP32
        assert exported.names == model.names and len(exported.probe()) == 1
