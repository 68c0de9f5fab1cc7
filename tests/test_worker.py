"""Visitors' models in the jailed worker process (tiling.worker, issue #36).

The fast tests check the protocol and the checks on what a worker sends back. The slow ones start real
workers: a bundled model gives the same detections through its worker as in-process; ONNX graphs built
here with onnx.helper (a memory bomb at the test tile, a Loop of 10^12 iterations, graphs that pass the
64 px test tile and blow up on a real batch) each end in one sentence; code run inside a worker cannot
reach the network, start processes or write outside its folder; and a compute bomb in one session does
not hold up another session's prediction.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DET_WEIGHTS, SAMPLES

import tiling
from tiling.util import sha256_of
from tiling.worker import RemoteModel, WorkerError, WorkerLimits, WorkerPool
from tiling.worker.channel import WorkerFailure
from tiling.worker.failures import is_remembered, sentence, work_text
from tiling.worker.process import WorkerProcess
from tiling.worker.protocol import ProtocolError, decode, encode
from tiling.worker.wire import from_wire, names_from_wire, to_wire

NAMES = {0: "car", 1: "truck"}
TEST_TILE = 64 * 64  # pixels of load_model's blank test tile


# -- ONNX graphs ------------------------------------------------------------------------------------
def _onnx(bomb: str = "", names=None) -> bytes:
    """A tiny graph with an Ultralytics detect head's output (N, 4 + classes, 1), plus an optional bomb whose
    result (always 0) is added to it: "memory" allocates 8 GB at the 64 px test tile, "batch_memory" about
    3 GB for a batch of 8 tiles of 640 px (2 MB at the test tile), "loop" runs a Loop of 10^12 iterations,
    "batch_loop" one of 0 iterations at the test tile and ~10^12 at a 640 px tile."""
    import onnx
    from onnx import TensorProto, helper

    names = names or NAMES
    c = helper.make_tensor
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape3"], ["m3"])]
    inits = [c("shape3", TensorProto.INT64, [3], [-1, 1, 1]),
             c("expand", TensorProto.INT64, [3], [1, 4 + len(names), 1]),
             c("zero", TensorProto.FLOAT, [], [0.0]), c("one", TensorProto.FLOAT, [], [1.0])]
    if bomb:
        nodes += [helper.make_node("Shape", ["images"], ["s"]),
                  helper.make_node("ReduceProd", ["s"], ["p"], keepdims=1)]  # 3 * N * H * W
    if bomb in ("memory", "batch_memory"):
        k = (1 << 31) // (3 * TEST_TILE) if bomb == "memory" else 80
        inits.append(c("k", TensorProto.INT64, [1], [k]))
        nodes += [helper.make_node("Mul", ["p", "k"], ["n"]),
                  helper.make_node("ConstantOfShape", ["n"], ["big"], value=c("v", TensorProto.FLOAT, [1], [1.0])),
                  helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                  helper.make_node("Mul", ["total", "zero"], ["extra"])]
    if bomb in ("loop", "batch_loop"):
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["v", "one"], ["v_out"])],
            "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                     helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                     helper.make_tensor_value_info("v", TensorProto.FLOAT, [])],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])])
        inits += [c("true", TensorProto.BOOL, [], [True]), c("scalar", TensorProto.INT64, [0], []),
                  c("test", TensorProto.INT64, [1], [3 * TEST_TILE]), c("times", TensorProto.INT64, [1], [10**6])]
        if bomb == "loop":
            inits.append(c("trips", TensorProto.INT64, [], [10**12]))
        else:
            nodes += [helper.make_node("Sub", ["p", "test"], ["over"]), helper.make_node("Mul", ["over", "times"], ["t1"]),
                      helper.make_node("Reshape", ["t1", "scalar"], ["trips"])]
        nodes += [helper.make_node("Loop", ["trips", "true", "zero"], ["count"], body=body),
                  helper.make_node("Mul", ["count", "zero"], ["extra"])]
    nodes.append(helper.make_node("Add", ["m3", "extra"], ["m4"]) if bomb else helper.make_node("Identity", ["m3"], ["m4"]))
    nodes.append(helper.make_node("Expand", ["m4", "expand"], ["output0"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["n", 4 + len(names), 1])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"names": str(names), "task": "detect", "stride": "32"}.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


# -- fast: the protocol and the checks on replies -------------------------------------------------------
def _round_trip(header, arrays, max_bytes=1 << 24):
    data = b"".join(bytes(p) for p in encode(header, arrays))
    pos = 0

    def read(n):
        nonlocal pos
        if pos + n > len(data):
            raise EOFError
        pos += n
        return bytearray(data[pos - n : pos])

    return decode(read, max_bytes)


def test_protocol_round_trip_keeps_arrays_and_refuses_what_it_does_not_allow():
    tile = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    header, arrays = _round_trip({"op": "predict", "spec": {"conf": 0.5}}, [tile, np.zeros((0, 4), np.float32)])
    assert header == {"op": "predict", "spec": {"conf": 0.5}}
    assert np.array_equal(arrays[0], tile) and arrays[1].shape == (0, 4)
    with pytest.raises(ProtocolError, match="not sent"):
        encode({}, [np.zeros(3, object)])
    with pytest.raises(ProtocolError, match="bytes allowed"):
        _round_trip({}, [np.zeros(1000, np.float32)], max_bytes=100)
    with pytest.raises(ProtocolError, match="valid header"):
        decode(lambda n: bytearray(b"XXXX\0\0\0\0"[:n]), 100)
    with pytest.raises(ProtocolError, match="valid header"):  # a header over MAX_HEADER is not read at all
        decode(lambda n: bytearray((b"PWK1" + (1 << 30).to_bytes(4, "little"))[:n]), 100)


def _reply(dets):
    items, arrays = to_wire(dets)
    header, arrays = _round_trip({"items": items}, arrays)
    return header["items"], arrays


def test_detections_cross_the_pipe_with_masks_oriented_boxes_and_keypoints():
    masks = [np.ones((2, 3), bool), np.zeros((1, 1), bool)]
    det = tiling.Detections(np.array([[1, 1, 4, 3], [5, 5, 6, 6]], np.float32), [0.9, 0.4], [0, 1], masks=masks,
                            mask_boxes=np.array([[1, 1, 4, 3], [5, 5, 6, 6]], np.int32), names=NAMES,
                            keypoints=np.ones((2, 17, 3), np.float32))
    obb = tiling.Detections.from_obb(np.array([[5, 5, 4, 2, 0.3]], np.float32), [0.7], [1], NAMES)
    got = from_wire(*_reply([det, obb]), [(10, 10), (10, 10)], NAMES, 300)
    assert np.array_equal(got[0].xyxy, det.xyxy) and np.array_equal(got[0].keypoints, det.keypoints)
    assert [m.tolist() for m in got[0].masks] == [m.tolist() for m in masks]
    assert np.array_equal(got[1].obb, obb.obb) and got[1].masks is None


@pytest.mark.parametrize("bad, message", [
    (dict(xyxy=np.full((1, 4), np.nan, np.float32)), "not finite"),
    (dict(class_id=np.array([7])), "does not name"),
    (dict(n=400), "detections for one image"),
    (dict(mask_box=[0, 0, 20, 20]), "outside its image"),
])
def test_a_reply_outside_what_a_model_gives_is_refused(bad, message):
    n = bad.get("n", 1)
    det = tiling.Detections(bad.get("xyxy", np.tile([[1, 1, 4, 4]], (n, 1)).astype(np.float32)), np.full(n, 0.5),
                            bad.get("class_id", np.zeros(n)), names=NAMES)
    if "mask_box" in bad:
        det = tiling.Detections(det.xyxy, det.confidence, det.class_id, masks=[np.ones((20, 20), bool)],
                                mask_boxes=np.array([bad["mask_box"]], np.int32), names=NAMES)
    with pytest.raises(ProtocolError, match=message):
        from_wire(*_reply([det]), [(10, 10)], NAMES, 300)


def test_class_names_from_a_worker_are_bounded():
    assert names_from_wire({"0": "car"}) == {0: "car"}
    for bad in ({}, {"0": "x" * 5000}, {"a": "car"}, {"0": 3}, {str(i): "c" for i in range(20_000)},
                {"0": "car", "300": "bus"}, {"0": "car", str(2**70): "bus"}, {"1": "car"}):
        with pytest.raises(ProtocolError):
            names_from_wire(bad)


def test_limits_come_from_the_environment_and_a_bad_value_is_one_line():
    limits = WorkerLimits.from_env({"PATCHWISE_WORKER_MEMORY_MB": "512", "PATCHWISE_WORKERS": "3"})
    assert (limits.memory_mb, limits.workers, limits.memory_text) == (512, 3, "512 MB")
    assert WorkerLimits.from_env({}).memory_text == "4 GB"
    with pytest.raises(ValueError, match="^PATCHWISE_WORKER_MEMORY_MB must be a whole number, got 'lots'$"):
        WorkerLimits.from_env({"PATCHWISE_WORKER_MEMORY_MB": "lots"})
    with pytest.raises(ValueError, match="PATCHWISE_WORKERS must be a positive number"):
        WorkerLimits.from_env({"PATCHWISE_WORKERS": "0"})
    assert limits.batch_seconds(2_000_000) == limits.call_seconds + 2 * limits.seconds_per_mpx


def test_failures_read_as_one_plain_sentence():
    limits = WorkerLimits(memory_mb=3072)
    what = work_text([(640, 640)])
    assert sentence("m.onnx", WorkerFailure("memory"), limits, what, 30) == \
        "m.onnx needed more than 3 GB of memory for one 640 px tile."
    assert sentence("m.onnx", WorkerFailure("deadline"), limits, work_text([(480, 640)] * 8), 26.4) == \
        "m.onnx took longer than 26 s for a batch of 8 tiles of 640x480 px, so it was stopped."
    assert "CPU time" in sentence("m.onnx", WorkerFailure("died", "signal SIGXCPU"), limits, what, 1)
    assert not is_remembered(WorkerFailure("died", "signal SIGXCPU")) and is_remembered(WorkerFailure("deadline"))
    detail = "m.onnx could not be opened by onnx (Load model from /tmp/patchwise-worker-x1/patchwise-9a/model.onnx failed)"
    assert sentence("m.onnx", WorkerFailure("error", detail), limits, what, 1) == \
        "m.onnx could not be opened by onnx (Load model from a temporary file failed)"


# -- slow: real workers ----------------------------------------------------------------------------------
TIGHT = WorkerLimits(memory_mb=2048, load_seconds=8, call_seconds=3, seconds_per_mpx=1, idle_seconds=600)


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def tight_pool():
    pool = WorkerPool(TIGHT)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def scene():
    import cv2

    return cv2.imread(str(SAMPLES / "airfield-4000x3000.jpg"))[:1800, :2400].copy()  # 12 tiles of 640 px: a first batch of 8


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.slow
def test_a_bundled_model_through_its_worker_finds_what_it_finds_in_process(scene):
    data = DET_WEIGHTS.read_bytes()
    local = tiling.load_model(data, name="det.pt")
    pool = WorkerPool(WorkerLimits())
    try:
        remote = pool.load(data, "det.pt")
        assert isinstance(remote, RemoteModel) and (remote.task, remote.names) == (local.task, local.names)
        assert remote.runtime == local.runtime
        for size in (640, 480):  # a tile-size change runs in the same worker, without loading again
            got = tiling.predict_tiled(scene, remote, tile_size=size, conf=0.05).detections
            want = tiling.predict_tiled(scene, local, tile_size=size, conf=0.05).detections
            assert len(got) == len(want) > 0
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
            assert np.array_equal(got.class_id, want.class_id)
        assert len(pool.workers()) == 1
        pid = pool.workers()[remote.digest].proc.pid

        def stop(done, total):
            raise KeyboardInterrupt  # as Streamlit stops a run on a rerun

        with pytest.raises(KeyboardInterrupt):  # a run stopped after its first batch leaves the worker usable
            tiling.predict_tiled(scene, remote, tile_size=640, conf=0.05, progress=stop)
        assert pool.workers()[remote.digest].proc.pid == pid
        full = tiling.predict_full(scene, remote, imgsz=640, conf=0.05)
        assert np.allclose(full.xyxy, tiling.predict_full(scene, local, imgsz=640, conf=0.05).xyxy, atol=1e-3)
        assert remote.worker_memory()["rss"] > 0
    finally:
        pool.close()
    assert not pool.workers()


@pytest.mark.slow
def test_an_onnx_graph_that_allocates_past_the_limit_at_the_test_tile_is_one_sentence(tight_pool):
    before = _rss()
    with pytest.raises(WorkerError) as caught:
        tight_pool.load(_onnx("memory"), "bomb.onnx")
    assert _one_line(caught.value) == ("bomb.onnx needed more than 2 GB of memory for loading it and running a "
                                       "64 px test tile.")
    assert _rss() - before < 100 * 2**20  # the server's own memory did not take the blow
    assert not tight_pool.workers()
    started = time.monotonic()
    with pytest.raises(WorkerError, match="needed more than 2 GB"):  # remembered: not started again on a rerun
        tight_pool.load(_onnx("memory"), "bomb.onnx")
    assert time.monotonic() - started < 1


@pytest.mark.slow
def test_a_loop_of_a_trillion_iterations_is_stopped_at_the_load_deadline(tight_pool):
    started = time.monotonic()
    with pytest.raises(WorkerError) as caught:
        tight_pool.load(_onnx("loop"), "loop.onnx")
    assert _one_line(caught.value) == ("loop.onnx took longer than 8 s for loading it and running a 64 px test "
                                       "tile, so it was stopped.")
    assert time.monotonic() - started < TIGHT.load_seconds + 120  # the worker's own start has its own deadline


@pytest.mark.slow
@pytest.mark.parametrize("bomb, message", [
    ("batch_memory", "batch.onnx needed more than 2 GB of memory for a batch of 8 tiles of 640 px."),
    ("batch_loop", "batch.onnx took longer than 6 s for a batch of 8 tiles of 640 px, so it was stopped."),
])
def test_a_graph_that_passes_the_test_tile_and_blows_up_on_a_real_batch_is_one_sentence(tight_pool, scene, bomb,
                                                                                          message):
    model = tight_pool.load(_onnx(bomb), "batch.onnx")  # the 64 px test tile passes
    assert model.task == "detect" and model.names == NAMES
    before = _rss()
    with pytest.raises(WorkerError) as caught:
        tiling.predict_tiled(scene, model, tile_size=640)
    assert _one_line(caught.value) == message
    assert _rss() - before < 100 * 2**20
    assert model.digest not in tight_pool.workers()


@pytest.fixture(scope="module")
def probe_worker():
    worker = WorkerProcess(WorkerLimits(), probes=True)
    yield worker
    worker.kill()


PROBES = {
    "socket bind": "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()",
    "socket connect": "import socket\nsocket.create_connection(('127.0.0.1', 9))",
    "a thread writing a file": ("import threading\nerrors = []\ndef write():\n    try:\n        open(PATH, 'w')\n"
                                "    except Exception as exc:\n        errors.append(exc)\n"
                                "t = threading.Thread(target=write)\nt.start()\nt.join()\nraise errors[0]"),
    "sqlite3 file": "import sqlite3\nsqlite3.connect(PATH)",
    "os.open with a dir_fd outside": ("import os\nfd = os.open(os.path.dirname(PATH), os.O_RDONLY)\n"
                                      "os.open(os.path.basename(PATH), os.O_WRONLY | os.O_CREAT, dir_fd=fd)"),
    "os.rename into a dir_fd outside": ("import os\nopen(os.path.abspath('x'), 'w').close()\n"
                                        "fd = os.open(os.path.dirname(PATH), os.O_RDONLY)\n"
                                        "os.rename('x', os.path.basename(PATH), dst_dir_fd=fd)"),
    "a symlink out, then a write through it": ("import os\nos.symlink(PATH, os.path.abspath('link'))\n"
                                               "open(os.path.abspath('link'), 'w')"),
    "a hard link of a file outside": "import os\nos.link('/etc/passwd', os.path.abspath('hard'))",
    "a signal to the server by a pidfd": ("import os, signal\n"
                                          "signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 0)"),
    "os.kill": "import os\nos.kill(os.getppid(), 0)",
    "os.chdir": "import os\nos.chdir('/')",
    "_posixsubprocess.fork_exec": (
        "import _posixsubprocess, os\n_posixsubprocess.fork_exec(['/bin/touch'], [b'/bin/touch'], True, (), None, "
        "None, -1, -1, -1, -1, -1, -1, *os.pipe(), False, False, False, None, None, None, -1, None, False)"),
    "ctypes system()": "import ctypes\nctypes.CDLL(None).system(('touch ' + PATH).encode())",
    "ctypes pythonapi": "import ctypes\nctypes.pythonapi.system(('touch ' + PATH).encode())",
    "subprocess": "import subprocess\nsubprocess.run(['touch', PATH])",
    "os.system": "import os\nos.system('touch ' + PATH)",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROBES))
def test_inside_the_worker_the_network_processes_and_outside_files_are_refused(probe_worker, tmp_path, name):
    target = tmp_path / "written"
    code = f"PATH = {str(target)!r}\n" + PROBES[name]
    with pytest.raises(WorkerFailure) as caught:
        probe_worker.call({"op": "probe", "code": code}, [], 30, 0)
    assert caught.value.kind == "error" and caught.value.detail.startswith("refused in the model's worker"), \
        caught.value.detail
    assert not target.exists()
    inside = ("import os, shutil\nos.makedirs(os.path.abspath('d/e'), exist_ok=True)\n"
              "open(os.path.abspath('d/e/f.txt'), 'w').write('x')\nshutil.rmtree(os.path.abspath('d'))\nresult = 'ok'")
    reply, _ = probe_worker.call({"op": "probe", "code": inside}, [], 30, 0)
    assert reply["result"] == "ok"  # its own folder stays writable, and removable


@pytest.mark.slow
def test_a_compute_bomb_in_one_session_leaves_another_sessions_prediction_unchanged(tight_pool, scene):
    local = tiling.load_model(DET_WEIGHTS.read_bytes(), name="det.pt")
    want = tiling.predict_tiled(scene, local, tile_size=640, conf=0.05).detections
    started = time.monotonic()
    tiling.predict_tiled(scene, local, tile_size=640, conf=0.05)
    alone = time.monotonic() - started
    bomb = tight_pool.load(_onnx("batch_loop", {0: "a", 1: "b", 2: "c"}), "other.onnx")
    outcome: dict = {}

    def visitor():
        try:
            tiling.predict_tiled(scene, bomb, tile_size=640)
        except WorkerError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=visitor)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    got = tiling.predict_tiled(scene, local, tile_size=640, conf=0.05).detections
    took = time.monotonic() - started
    thread.join(60)
    assert "took longer than" in outcome.get("error", "")
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-4)
    assert took < 3 * alone + 5, (took, alone)  # the bomb holds one core of the two, not the server


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_pool_keeps_at_most_n_workers_and_ends_them_when_unowned_or_idle():
    pool = WorkerPool(WorkerLimits(workers=1, idle_seconds=2))
    try:
        first = pool.load(_onnx(names={0: "a"}), "a.onnx")
        session = type("Session", (), {})()
        second = pool.load(_onnx(names={0: "b"}), "b.onnx", owner=session)  # takes the only place
        assert list(pool.workers()) == [second.digest]
        del session
        gc.collect()
        _until(lambda: not pool.workers())  # the only session holding it ended
        assert len(first.predict([np.zeros((64, 64, 3), np.uint8)])) == 1  # loaded again in a fresh worker
        assert list(pool.workers()) == [first.digest]
        time.sleep(4)
        assert not pool.workers()  # idle past idle_seconds
        pool.warm()  # a worker started ahead of need is the next model's
        spare = pool._spare
        third = pool.load(_onnx(names={0: "c"}), "c.onnx")
        assert pool.workers()[third.digest] is spare and pool._spare is None
    finally:
        pool.close()


@pytest.mark.slow
@pytest.mark.parametrize("bomb, sentence_start", [
    ("memory", "bomb.onnx needed more than 2 GB of memory for loading it"),
    ("batch_memory", "bomb.onnx needed more than 2 GB of memory for a batch of"),
])
def test_the_page_shows_one_sentence_and_goes_on_with_the_bundled_model(monkeypatch, bomb, sentence_start):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from tiling.worker import pool as pool_module

    pool = WorkerPool(TIGHT)
    monkeypatch.setattr(pool_module, "_default", pool)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        at.selectbox(key="model_choice").set_value("Upload my own model").run()
        at.file_uploader(key="model_upload").upload("bomb.onnx", _onnx(bomb, {0: bomb}), "application/octet-stream").run()
        assert not at.exception
        banner = " ".join(e.value for e in at.main.error).replace("\\", "")
        assert banner.startswith(sentence_start) and "bundled demo detector instead" in banner, banner
        assert "Traceback" not in banner and len(at.dataframe) + len(at.metric) >= 1  # the bundled model's results
        assert not pool.workers()
    finally:
        pool.close()


@pytest.mark.slow
def test_a_worker_whose_server_dies_ends_and_removes_its_folder():
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import os\nfrom tiling.worker.limits import WorkerLimits\nfrom tiling.worker.process import WorkerProcess\n"
              "w = WorkerProcess(WorkerLimits())\nw.wait_ready()\nprint(w.proc.pid, w.folder, flush=True)\nos._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180)
    pid, folder = out.stdout.split()
    def ended() -> bool:
        try:
            return "zombie" in Path(f"/proc/{pid}/status").read_text()
        except OSError:  # reaped
            return True

    _until(ended)
    _until(lambda: not Path(folder).exists())


def test_a_worker_gets_patchwise_settings_and_its_own_folders_but_no_other_variable(monkeypatch, tmp_path):
    from tiling.worker.process import child_env

    monkeypatch.setenv("HF_TOKEN", "secret")
    monkeypatch.setenv("PATCHWISE_MAX_PARAMS", "5000000")
    monkeypatch.setenv("PATCHWISE_WORKER_PROBES", "1")
    env = child_env(str(tmp_path), WorkerLimits(memory_mb=1000))
    assert "HF_TOKEN" not in env and env["PATCHWISE_MAX_PARAMS"] == "5000000"
    assert env["PATCHWISE_WORKER_MEMORY_MB"] == "1000" and env["PATCHWISE_WORKER_PROBES"] == "0"
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path) and env["PATCHWISE_CACHE"].startswith(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("reply", [
    "[frame({'ok': True, 'arrays': [['float64', [4, 4]]]}), bytes(128)]",  # a dtype the server does not take
    "[b'\\x80\\x04\\x95' + bytes(64)]",  # a pickle
])
def test_a_worker_answering_outside_the_protocol_is_stopped(reply):
    worker = WorkerProcess(WorkerLimits(), probes=True)
    code = ("import json, os\nfrom tiling.worker.protocol import encode\n"
            "def frame(header):\n    body = json.dumps(header).encode()\n"
            "    return b'PWK1' + len(body).to_bytes(4, 'little') + body\n"
            f"for part in {reply}:\n    os.write(protocol_fd, bytes(part))\n")
    try:
        with pytest.raises(WorkerFailure) as caught:
            worker.call({"op": "probe", "code": code}, [], 30, 1 << 20)
        assert caught.value.kind == "protocol"
        assert not worker.alive
    finally:
        worker.kill()


def test_a_worker_that_cannot_be_started_is_one_sentence_and_not_held_against_the_model(monkeypatch):
    import subprocess

    def no_process(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    pool = WorkerPool(WorkerLimits())
    try:
        pool.warm()  # ahead of need: quietly nothing
        for _ in range(2):  # not remembered: the next try starts afresh
            with pytest.raises(WorkerError, match=r"^the worker process for m\.onnx could not start "
                                                  r"\(BlockingIOError: .*\); try again in a minute\.$"):
                pool.load(b"model", "m.onnx")
        assert not pool.workers()
    finally:
        pool.close()


class _FakeProcess:
    """A worker without a process, for the pool's own bookkeeping (places, least recently used, busy)."""

    started: list = []

    def __init__(self, limits, probes=False):
        self.lock, self.alive, self.last_used = threading.Lock(), True, time.monotonic()
        _FakeProcess.started.append(self)

    def call(self, header, arrays, seconds, max_reply):
        info = {"task": "detect", "names": {"0": "car"}, "runtime": "onnx", "precision": "fp32"}
        return {"ok": True, "info": info}, []

    def kill(self):
        self.alive = False


def test_the_pool_lets_the_least_recently_used_go_and_says_so_when_every_worker_is_busy(monkeypatch):
    from tiling.worker import pool as pool_module

    monkeypatch.setattr(pool_module, "WorkerProcess", _FakeProcess)
    monkeypatch.setattr(_FakeProcess, "started", [])
    monkeypatch.setattr(pool_module, "BUSY_WAIT", 0.3)
    pool = WorkerPool(WorkerLimits(workers=2))
    try:
        a, b = pool.load(b"a", "a.onnx"), pool.load(b"b", "b.onnx")
        pool.load(b"a", "a.onnx")  # a is used again: b is now the least recently used
        c = pool.load(b"c", "c.onnx")
        assert set(pool.workers()) == {a.digest, c.digest} and not _FakeProcess.started[1].alive
        for process in pool.workers().values():
            process.lock.acquire()  # both in the middle of a call
        with pytest.raises(WorkerError, match="running 2 visitors' models already"):
            pool.load(b"d", "d.onnx")
        assert pool.refused(sha256_of(b"d")) is None  # busy is not the model's fault
    finally:
        pool.close()


def test_the_server_reads_a_dead_workers_log_only_as_a_small_regular_file(tmp_path):
    """The worker's folder is the worker's: its stderr.log may have become a FIFO (an open would wait for
    ever) or a link to /dev/zero (a read would fill memory); the server reads neither."""
    from types import SimpleNamespace

    os.mkfifo(tmp_path / "stderr.log")
    assert WorkerProcess._stderr_tail(SimpleNamespace(folder=str(tmp_path))) == ""
    os.remove(tmp_path / "stderr.log")
    os.symlink("/dev/zero", tmp_path / "stderr.log")
    assert WorkerProcess._stderr_tail(SimpleNamespace(folder=str(tmp_path))) == ""
    os.remove(tmp_path / "stderr.log")
    (tmp_path / "stderr.log").write_bytes(b"x" * 10_000 + b"the end")
    tail = WorkerProcess._stderr_tail(SimpleNamespace(folder=str(tmp_path)))
    assert len(tail) == 4000 and tail.endswith("the end")


def test_a_worker_killed_during_another_threads_call_keeps_its_pipes_until_that_call_leaves():
    """Killing a worker (the pool does on another session's failure) closes its pipes only once no call holds
    them, so a call in flight never reads or writes descriptor numbers reused by another worker's pipes."""
    from types import SimpleNamespace

    closed = []
    worker = WorkerProcess.__new__(WorkerProcess)
    worker.lock, worker.stopped, worker.folder = threading.Lock(), False, "/nonexistent-patchwise-folder"
    stream = SimpleNamespace(close=lambda: closed.append(1))
    worker.proc = SimpleNamespace(poll=lambda: 0, wait=lambda timeout=None: 0, stdin=stream, stdout=stream, pid=0)
    with worker.lock:  # a call in flight in another thread
        worker.kill()
        assert worker.stopped and closed == []
        worker._leave()  # that call leaving
    assert closed == [1, 1]
    worker2 = WorkerProcess.__new__(WorkerProcess)
    worker2.lock, worker2.stopped, worker2.folder = threading.Lock(), False, "/nonexistent-patchwise-folder"
    worker2.proc = worker.proc
    worker2.kill()  # no call in flight: closed at once
    assert closed == [1, 1, 1, 1]
