"""Hostile checkpoints: each is refused with a ModelError before it can fetch, write, run or allocate.

Payloads are harmless: a loopback HTTP server that records requests, an audit hook that records
connection attempts, files in tmp_path. Memory bombs run in a child process whose peak is measured
(and which is killed past a cap, so the old code cannot take the machine down)."""
import collections
import http.server
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import tiling
from tiling import ModelError

ROOT = Path(__file__).resolve().parent.parent
DET = ROOT / "models" / "synth-yolo11n-det.pt"
SEG = ROOT / "models" / "synth-yolo11n-seg.pt"
PEAK_LIMIT_MB = 512  # above the child's baseline (python + torch + ultralytics imported); refusals take ~20 MB
KILL_AT_MB = 3500  # resident size at which the child is killed: the old code went to 5-12 GB


# -- pickles an uploader could write ---------------------------------------------------------------
class Call:
    """Pickles to ``func(*args)``: a REDUCE whose callable and arguments the uploader chose."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Storage:
    def __init__(self, key, numel, kind=torch.ByteStorage):
        self.key, self.numel, self.kind = key, numel, kind


class Tensor:
    """A tensor as torch.save writes it, over a storage that need not exist in memory."""

    def __init__(self, storage, numel):
        self.storage, self.numel = storage, numel

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, 0, (self.numel,), (1,), False,
                                                 collections.OrderedDict())


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", obj.kind, obj.key, "cpu", obj.numel) if isinstance(obj, Storage) else None


def pickled(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_archive(path: Path, pkl: bytes, records=(), bomb: tuple[str, int] | None = None) -> Path:
    """A torch.save-style zip written by hand; ``bomb`` = (key, bytes): a deflated record of zeros."""
    entries = [("archive/data.pkl", pkl), ("archive/version", b"3\n"), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{k}", v) for k, v in records]
    with open(path, "wb") as f:
        central = []
        for name, data in entries:
            central.append(_entry(f, name, 0, [data], zlib.crc32(data), len(data)))
        if bomb:
            chunk = bytes(16 << 20)
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            block, end = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH), c.flush()
            n, crc = bomb[1] // len(chunk), 0
            for _ in range(n):
                crc = zlib.crc32(chunk, crc)
            central.append(_entry(f, f"archive/data/{bomb[0]}", 8, [block] * n + [end], crc, n * len(chunk)))
        start = f.tell()
        for name, method, crc, csize, usize, offset in central:
            raw = name.encode()
            f.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc, csize, usize,
                                len(raw), 0, 0, 0, 0, 0, offset) + raw)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), f.tell() - start, start, 0))
    return path


def _entry(f, name, method, parts, crc, usize):
    offset, raw, csize = f.tell(), name.encode(), sum(map(len, parts))
    f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc, csize, usize, len(raw), 0) + raw)
    for part in parts:
        f.write(part)
    return name, method, crc, csize, usize, offset


def forged(tmp_path: Path, change, source: Path = DET, name: str = "forged.pt") -> Path:
    """A genuine checkpoint with one thing changed by ``change(ckpt, model)``."""
    ckpt = torch.load(source, weights_only=False)  # our own bundled file: trusted
    model = ckpt.get("ema") or ckpt["model"]
    change(ckpt, model)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def refused(source, match: str = "", **kwargs) -> str:
    """``load_model`` must raise a specific ModelError (not the catch-all) for ``source``."""
    with pytest.raises(ModelError, match=match) as info:
        tiling.load_model(source, runtime="torch", **kwargs)
    assert "could not be loaded:" not in str(info.value), str(info.value)
    return str(info.value)


# -- a loopback server and a recorder of connection attempts -------------------------------------------
@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = b"PK not a model"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", requests=requests)
    httpd.shutdown()
    httpd.server_close()


_CONNECTS: list = []
_RECORDING = threading.Event()


def _record(event, args):
    if _RECORDING.is_set() and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _CONNECTS.append((event, args[1:2] if event == "socket.connect" else args[:1]))


sys.addaudithook(_record)


@pytest.fixture
def connections():
    _CONNECTS.clear()
    _RECORDING.set()
    yield _CONNECTS
    _RECORDING.clear()


# -- 1. constructors with uploader-chosen arguments --------------------------------------------------
def test_distillation_teacher_url_is_never_fetched(tmp_path, server):
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import SETTINGS

    student = DetectionModel.__new__(DetectionModel)  # saved as torch.save saves any module: __new__ + state
    torch.nn.Module.__init__(student)
    student.yaml = {}  # all DistillationModel reads before it downloads
    name = f"patchwise-test-{uuid.uuid4().hex}.pt"  # a name already in the weights folder would not be fetched
    fetched = Path(SETTINGS["weights_dir"]) / name
    path = tmp_path / "distill.pt"
    torch.save({"model": Call(DistillationModel, f"{server.url}/{name}", student), "train_args": {}}, path)
    assert path.stat().st_size < 4096
    try:
        errors = [_error(path), _error(path.read_bytes())]
        assert server.requests == [] and not fetched.exists()
    finally:
        fetched.unlink(missing_ok=True)
    assert all(isinstance(e, ModelError) and "refused" in str(e) for e in errors), errors


def test_torchvision_weights_are_never_fetched(tmp_path, monkeypatch, connections):
    from ultralytics.nn.modules.block import TorchVision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights to short-circuit
    path = tmp_path / "tv.pt"
    torch.save({"model": Call(TorchVision, "resnet18", "DEFAULT"), "train_args": {}}, path)
    error = _error(path)
    assert connections == [] and not (tmp_path / "torch-home").exists()
    assert isinstance(error, ModelError) and "refused" in str(error), error


def _error(source) -> BaseException | None:
    """What ``load_model`` raised (the side effects are checked before the kind of error)."""
    try:
        tiling.load_model(source, runtime="torch")
    except BaseException as exc:  # noqa: BLE001  the test asserts on it
        return exc
    return None


@pytest.mark.parametrize("make", [
    lambda: Call(torch.nn.Linear, 3, 3),
    lambda: torch.nn.Linear,  # a bare class reference stored as data
    lambda: Call(os.system, "true"),
    lambda: Call(getattr, torch.nn.Linear, "__init__"),
])
def test_anything_but_saved_state_is_refused(tmp_path, make):
    path = tmp_path / "call.pt"
    torch.save({"model": make(), "train_args": {}}, path)
    refused(path, "refused")


@pytest.mark.slow
def test_genuine_checkpoints_and_legacy_forms_are_accepted(tmp_path):
    from ultralytics.nn.modules.head import Detect

    def legacy(ckpt, model):  # older Segment heads kept Detect.forward: pickled as getattr(Detect, "forward")
        model.model[-1].detect = Detect.forward

    for path, task in ((DET, "detect"), (SEG, "segment"), (forged(tmp_path, legacy, SEG), "segment")):
        assert tiling.load_model(path, runtime="torch").task == task


# -- 1. what a checkpoint may allocate --------------------------------------------------------------
def test_storage_must_match_its_record(tmp_path):
    path = write_archive(tmp_path / "lie.pt", pickled({"model": Tensor(Storage("0", 10**9), 10**9)}),
                         [("0", b"\0\0")])
    refused(path, "declares")


def test_tensor_may_not_outgrow_its_storage(tmp_path):
    class Wide(Tensor):
        def __reduce__(self):  # a stride-0 view 10^5 times its 1-element storage: .float() would copy it all
            return torch._utils._rebuild_tensor_v2, (self.storage, 0, (10**5,), (0,), False, collections.OrderedDict())

    path = write_archive(tmp_path / "wide.pt", pickled({"model": Wide(Storage("0", 1), 1)}), [("0", b"\0")])
    refused(path, "more elements than its storage")


def test_deflated_record_is_refused_by_ratio(tmp_path):
    path = write_archive(tmp_path / "bomb.pt", pickled({"model": Tensor(Storage("0", 32 << 20), 32 << 20)}),
                         bomb=("0", 32 << 20))
    refused(path, "zip bomb")


def test_size_and_parameter_limits(monkeypatch):
    from tiling.models import vetting

    monkeypatch.setattr(vetting, "MAX_MODEL_MB", 4)
    refused(DET, "limit here is 4 MB")
    refused(DET.read_bytes(), "limit here is 4 MB")
    monkeypatch.setattr(vetting, "MAX_MODEL_MB", 200)
    monkeypatch.setattr(vetting, "MAX_PARAMS", 1_000_000)
    refused(DET, "million parameters")


def test_limits_come_from_the_environment():
    code = "from tiling.models.vetting import MAX_MODEL_MB, MAX_PARAMS; print(MAX_MODEL_MB, MAX_PARAMS)"
    env = {**os.environ, "PATCHWISE_MAX_MODEL_MB": "7", "PATCHWISE_MAX_PARAMS": "1234"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["7", "1234"], out.stderr[-2000:]


@pytest.mark.parametrize("names, match", [({}, "0 classes"), ({i: str(i) for i in range(10_001)}, "10001 classes"),
                                          ({0: "car", 1: "truck"}, "predicts 3")])
def test_class_counts(tmp_path, names, match):
    refused(forged(tmp_path, lambda ckpt, model: setattr(model, "names", names)), match)


@pytest.mark.parametrize("stride", [[8.0, 16.0, 33.0], [8.0, 16.0, 4096.0], [float("nan")]])
def test_strides(tmp_path, stride):
    def change(ckpt, model):
        model.stride = torch.tensor(stride)

    refused(forged(tmp_path, change), "strides")


# -- 1. memory bombs, measured in a child process ----------------------------------------------------
CHILD = r"""
import json, sys
import torch, torchvision, ultralytics.nn.tasks  # the baseline: everything a load imports
import tiling

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmHWM:"))

print("@@" + json.dumps({"case": "baseline", "hwm": hwm()}), flush=True)
for case, path in json.loads(sys.argv[1]).items():
    try:
        tiling.load_model(path, runtime="torch")
        result = "loaded"
    except tiling.ModelError as exc:
        result = "ModelError: " + str(exc)
    except BaseException as exc:
        result = f"{type(exc).__name__}: {exc}"
    print("@@" + json.dumps({"case": case, "result": result[:400], "hwm": hwm()}), flush=True)
"""


def _rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def memory_runs(tmp_path_factory):
    from ultralytics.nn.tasks import DetectionModel

    tmp = tmp_path_factory.mktemp("bombs")
    cases = {}
    torch.save({"model": Call(torch.nn.Linear, 16000, 16000), "train_args": {}}, cases.setdefault("linear", tmp / "l.pt"))
    cfg = {"nc": 1, "backbone": [[-1, 1, "Conv", [4096, 3, 1]]] * 40, "head": [[-1, 1, "Detect", ["nc"]]]}
    torch.save({"model": Call(DetectionModel, cfg), "train_args": {}}, cases.setdefault("wide_cfg", tmp / "c.pt"))
    size = 2 << 30
    cases["zip_bomb"] = write_archive(tmp / "z.pt", pickled({"model": Tensor(Storage("0", size), size)}),
                                      bomb=("0", size))

    def stride(ckpt, model):
        model.stride = torch.tensor([1024.0, 2048.0, 4096.0])

    cases["stride_4096"] = forged(tmp, stride, name="s.pt")
    assert all(p.stat().st_size < 3 << 20 for k, p in cases.items() if k != "stride_4096")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps({k: str(v) for k, v in cases.items()})],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed, deadline = False, time.monotonic() + 120
    while proc.poll() is None:
        if _rss_mb(proc.pid) > KILL_AT_MB or time.monotonic() > deadline:
            proc.kill()
            killed = True
        time.sleep(0.01)
    lines = [line[2:] for line in proc.stdout.read().splitlines() if line.startswith("@@")]  # Ultralytics prints too
    runs = {r["case"]: r for r in map(json.loads, lines)}
    return runs, killed


@pytest.mark.parametrize("case", ["linear", "wide_cfg", "zip_bomb", "stride_4096"])
@pytest.mark.slow
def test_memory_bombs_are_refused_cheaply(memory_runs, case):
    runs, killed = memory_runs
    assert case in runs, f"the child was {'killed past ' + str(KILL_AT_MB) + ' MB' if killed else 'lost'} before {case}"
    assert runs[case]["result"].startswith("ModelError"), runs[case]["result"]
    assert runs[case]["hwm"] - runs["baseline"]["hwm"] < PEAK_LIMIT_MB, runs[case]


# -- 1. no network, no writes while a checkpoint is opened (defence in depth) -------------------------
def test_sealed_blocks_network_writes_and_processes(tmp_path, server):
    import urllib.request

    from ultralytics.utils.downloads import safe_download

    from tiling.models.guard import sealed

    attempts = [lambda: urllib.request.urlopen(f"{server.url}/a", timeout=5).read(),
                lambda: safe_download(f"{server.url}/b.pt", file=tmp_path / "b.pt", progress=False),
                lambda: (tmp_path / "written.txt").write_text("x"),
                lambda: subprocess.run(["true"])]
    for attempt in attempts:
        with pytest.raises(ModelError, match="refused"):
            with sealed("probe.pt"):
                attempt()
    assert server.requests == [] and list(tmp_path.iterdir()) == []

    seen = []
    with sealed("probe.pt"):  # other threads (the app's server, its caches) are not affected
        worker = threading.Thread(target=lambda: seen.append(urllib.request.urlopen(f"{server.url}/c").status))
        worker.start()
        worker.join()
    assert seen == [200] and server.requests == ["/c"]


# -- 2. every malformed checkpoint is a specific ModelError at load time -------------------------------
def _pkl(tmp_path, data: bytes) -> Path:
    return write_archive(tmp_path / "raw.pt", data)


MALFORMED = {
    "stack_underflow": (lambda tmp: _pkl(tmp, b"\x80\x02a."), "malformed"),
    "integer_persistent_id": (lambda tmp: _pkl(tmp, b"\x80\x02K\x01Q."), "persistent reference"),
    "model_is_a_tensor": (lambda tmp: _saved(tmp, {"model": torch.zeros(3), "train_args": {}}), "type Tensor"),
    "model_is_identity": (lambda tmp: _saved(tmp, {"model": torch.nn.Identity(), "train_args": {"task": "detect"}}),
                          "type Identity"),
    "model_is_linear": (lambda tmp: _saved(tmp, {"model": torch.nn.Linear(3, 3), "train_args": {}}), "type Linear"),
    "top_level_list": (lambda tmp: _saved(tmp, [1, 2, 3]), "top level is a list"),
    "top_level_int": (lambda tmp: _saved(tmp, 7), "top level is a int"),
    "names_none": (lambda tmp: forged(tmp, lambda c, m: setattr(m, "names", None)), "class names"),
    "names_str_keys": (lambda tmp: forged(tmp, lambda c, m: setattr(m, "names", {"0": "a", "1": "b", "2": "c"})),
                       "class names"),
    "segment_task_on_detector": (lambda tmp: forged(tmp, lambda c, m: setattr(m, "task", "segment")),
                                 "declares a 'segment' model"),
}


def _saved(tmp_path: Path, obj) -> Path:
    torch.save(obj, tmp_path / "saved.pt")
    return tmp_path / "saved.pt"


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_checkpoints_raise_model_error(tmp_path, case):
    make, match = MALFORMED[case]
    path = make(tmp_path)
    refused(path, match)
    refused(path.read_bytes(), match)


def test_official_name_path_is_vetted_too(tmp_path, monkeypatch):
    import ultralytics.utils
    import ultralytics.utils.downloads

    hostile = _saved(tmp_path, [1, 2, 3])
    monkeypatch.setattr(ultralytics.utils, "is_online", lambda: True)
    monkeypatch.setattr(ultralytics.utils.downloads, "attempt_download_asset", lambda name, *a, **k: str(hostile))
    refused("yolo11n.pt", "top level is a list")


def test_unexpected_failures_become_model_errors(monkeypatch):
    from tiling.models import loading

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(loading, "UltralyticsModel", broken)
    with pytest.raises(ModelError, match="synth-yolo11n-det.pt could not be loaded: KeyError: 'boom'"):
        tiling.load_model(DET, runtime="torch")
