"""The cheap first line of an upload's vetting, made exact (issue #36): what is scanned is what loads,
names are measured as spelled out, metadata is bounded before it is parsed, and nothing phones home."""
from __future__ import annotations

import io
import struct
import zipfile

import pytest
import torch

import tiling
from tiling import ModelError

from test_checkpoint_hostile import DET, Call, forged, refused


# -- 1. one archive: the bytes scanned are the bytes torch loads ------------------------------------
def _saved_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def constructions(monkeypatch):
    """Records every torch.nn.Linear built: a hostile pickle's constructor running is the failure."""
    built = []
    original = torch.nn.Linear.__init__

    def record(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", record)
    return built


def _case_renamed(good: bytes, evil: bytes) -> bytes:
    """One archive holding the genuine ``data.pkl`` and a hostile ``DATA.pkl`` before it: Python's zipfile
    looks names up exactly, torch's reader (miniz) without regard to case."""
    src, bad = zipfile.ZipFile(io.BytesIO(good)), zipfile.ZipFile(io.BytesIO(evil))
    prefix = src.namelist()[0].split("/")[0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i, info in enumerate(src.infolist()):
            if i == 1:
                zf.writestr(f"{prefix}/DATA.pkl", bad.read(bad.namelist()[0]))
            zf.writestr(info.filename, src.read(info))
    return out.getvalue()


def _commented(good: bytes, evil: bytes) -> bytes:
    """The hostile archive first, a second (small) one hidden in its end record's comment."""
    hidden = _saved_bytes({"hidden": True})
    return evil[:-2] + struct.pack("<H", len(hidden)) + hidden


def _archive_in_a_record(good: bytes, evil: bytes) -> bytes:
    """The genuine archive with one more record that holds the hostile archive whole."""
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            zf.writestr(info.filename, src.read(info))
        zf.writestr(f"{src.namelist()[0].split('/')[0]}/extra", evil)
    return out.getvalue()


POLYGLOTS = {
    "hostile_then_genuine": lambda good, evil: evil + good,
    "genuine_then_hostile": lambda good, evil: good + evil,
    "trailing_bytes": lambda good, evil: good + b"\0" * 64,
    "leading_bytes": lambda good, evil: b"\0" * 64 + good,
    "case_variant_names": _case_renamed,
    "archive_in_comment": _commented,
    "archive_in_a_record": _archive_in_a_record,
}


@pytest.mark.parametrize("case", list(POLYGLOTS))
def test_a_second_archive_in_the_file_is_refused_before_anything_runs(tmp_path, constructions, case):
    good = DET.read_bytes()
    evil = _saved_bytes({"model": Call(torch.nn.Linear, 3, 3), "train_args": {}})
    path = tmp_path / "poly.pt"
    path.write_bytes(POLYGLOTS[case](good, evil))
    message = refused(path, "one archive")
    assert "\n" not in message and constructions == []


def vetted(path) -> str:
    """The task of a checkpoint that passed every check (the loading past them is tested elsewhere)."""
    from tiling.models.vetting import vet_checkpoint

    return vet_checkpoint(path, path.name).task


def test_a_genuine_checkpoint_and_a_rewritten_one_pass(tmp_path):
    assert vetted(DET) == "detect"
    copy = forged(tmp_path, lambda ckpt, model: None)  # torch.save of this torch: data descriptors, zip64 end
    assert vetted(copy) == "detect"


def test_tensor_bytes_that_happen_to_spell_an_end_record_are_data(tmp_path):
    def change(ckpt, model):
        weight = next(p for p in model.parameters() if p.numel() >= 16)
        raw = weight.data.view(-1).view(torch.uint8)
        raw[:4] = torch.tensor(list(b"PK\x05\x06"), dtype=torch.uint8)

    path = forged(tmp_path, change)
    assert path.read_bytes().count(b"PK\x05\x06") == 2
    assert vetted(path) == "detect"


# -- a child process with a memory ceiling and a deadline, for what the old code blew up on ----------------
LIMITED = r"""
import resource, sys
{imports}
with open("/proc/self/status") as f:  # the ceiling sits above what the imports already mapped
    mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + {extra_mb} * 2**20, resource.RLIM_INFINITY))
{body}
"""


def run_limited(imports: str, body: str, extra_mb: int = 1024, timeout: float = 60) -> str:
    """``body`` run in a child process allowed ``extra_mb`` more address space than its imports took, and
    ``timeout`` seconds; returns its output. A child that needed more fails the test, it cannot hang CI."""
    import subprocess
    import sys
    import textwrap

    code = LIMITED.format(imports=textwrap.dedent(imports), extra_mb=extra_mb, body=textwrap.dedent(body))
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=DET.parent.parent, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child took over {timeout} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# -- 3. class names measured as spelled out, each reference counted ---------------------------------------
def _named(tmp_path, names: dict, nc: int | None = None):
    def change(ckpt, model):
        model.names = names
        if nc is not None:
            model.model[-1].nc = nc
    return forged(tmp_path, change)


def test_a_long_class_name_stored_once_is_refused(tmp_path):
    long = "x" * 400_000  # one string in the pickle, three references: 1.2 MB spelled out
    message = refused(_named(tmp_path, {0: long, 1: long, 2: long}), "class 0's name is 400,000 bytes")
    assert "\n" not in message and len(message) < 300


def test_class_names_are_measured_per_reference(tmp_path, monkeypatch):
    from tiling.models import declared

    monkeypatch.setattr(declared, "MAX_NAMES_BYTES", 600)
    shared = "n" * 250  # 250 bytes stored once, 750 spelled out
    refused(_named(tmp_path, {0: shared, 1: shared, 2: shared}), "spell out to over")
    monkeypatch.setattr(declared, "MAX_NAMES_BYTES", 800)
    assert vetted(_named(tmp_path, {0: shared, 1: shared, 2: shared})) == "detect"


# -- 7. classes capped by one tile's output ------------------------------------------------------------------
def test_ten_thousand_classes_are_refused_by_their_output_per_tile(tmp_path):
    names = {i: f"c{i}" for i in range(10_000)}
    message = refused(_named(tmp_path, names, nc=10_000), "10,000 classes make 320 MB of output for each 640 px")
    assert "PATCHWISE_MAX_TILE_OUTPUT_MB" in message and "\n" not in message


def test_the_output_budget_is_per_reference_tile():
    from tiling.models.declared import anchors_per_tile, check_output_size

    assert anchors_per_tile() == 8400 and anchors_per_tile((8, 16, 32, 64)) == 8500
    check_output_size(1203, "lvis.pt")  # LVIS's classes fit
    with pytest.raises(ModelError, match="at most 1,997 classes fit"):
        check_output_size(2000, "big.pt")


# -- 4. YAML aliases ("billion laughs") in metadata.yaml -------------------------------------------------------
OPENVINO = DET.parent / "synth-yolo11n-det_int8_openvino_model"
LAUGHS = "\n".join(["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 9)]
                   + ["names: {0: *lol8, 1: b, 2: c}"]) + "\n"


@pytest.mark.slow
def test_yaml_aliases_in_metadata_are_refused_before_anything_is_built(tmp_path):
    import shutil

    folder = tmp_path / "laughs_openvino_model"
    shutil.copytree(OPENVINO, folder)
    meta = folder / "metadata.yaml"
    meta.write_text(meta.read_text().split("names:")[0] + LAUGHS.split("names:")[0] + "names:"
                    + LAUGHS.split("names:")[1])
    assert len(LAUGHS) < 1000
    out = run_limited("from pathlib import Path\nfrom tiling.models.exported import read_export\n"
                      "from tiling import ModelError", f"""
        try:
            read_export(Path({str(folder)!r}), "laughs.zip")
            print("loaded")
        except ModelError as exc:
            print(exc)
        """, extra_mb=512, timeout=30)
    assert out.startswith("laughs.zip: metadata.yaml was refused: its aliases spell out over 200,000 values")


def test_a_shared_list_in_metadata_is_still_read():
    from tiling.models.declared import read_yaml

    meta = read_yaml("imgsz: &size [640, 640]\nargs: {imgsz: *size}\nnames: {0: a}\n", "m")
    assert meta["args"]["imgsz"] == [640, 640] and meta["names"] == {0: "a"}


def test_plain_metadata_still_reads():
    from tiling.models.exported import read_export

    export = read_export(OPENVINO, "synth")
    assert export.names == {0: "car", 1: "truck", 2: "plane"} and export.task == "detect"


# -- 8. ONNX metadata bounded before parsing; literal_eval for 'names' only ------------------------------------
def _tiny_onnx(path, metadata: dict[str, str]):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64, 64])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y]))
    helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


def test_onnx_metadata_is_parsed_as_values_and_literal_eval_only_reads_names(tmp_path, monkeypatch):
    import ast

    from tiling.models.exported import read_export

    seen = []
    real = ast.literal_eval
    monkeypatch.setattr(ast, "literal_eval", lambda text: seen.append(text[:20]) or real(text))
    path = _tiny_onnx(tmp_path / "m.onnx", {"task": "pose", "stride": "32", "names": "{0: 'person'}",
                                            "kpt_shape": "[17, 3]", "end2end": "False", "args": "{'batch': 1}",
                                            "description": "(" * 1000 + ")" * 1000 + "?"})
    export = read_export(path, "m.onnx")
    assert export.names == {0: "person"} and export.kpt_shape == (17, 3) and export.task == "pose"
    assert seen == ["{0: 'person'}"]


def test_metadata_values_other_than_names_are_read_without_evaluating_them():
    from tiling.models.declared import onnx_value

    assert onnx_value("kpt_shape", "(17, 3)", "m") == [17, 3] and onnx_value("imgsz", "[640, 640]", "m") == [640, 640]
    assert onnx_value("end2end", "True", "m") is True and onnx_value("args", "{'a': 1}", "m") == "{'a': 1}"


def test_a_large_onnx_metadata_value_is_refused_in_one_line(tmp_path):
    from tiling.models.exported import read_export

    path = _tiny_onnx(tmp_path / "big.onnx", {"names": "{0: 'a'}", "args": "[" + "1," * 400_000 + "]"})
    with pytest.raises(ModelError, match=r"^big.onnx: its metadata 'args' is 800,002 characters long, over the 4,096"):
        read_export(path, "big.onnx")


# -- 10. OpenVINO's telemetry is off: importing it and converting a model reach no network, start no process -------
TELEMETRY_CHILD = r"""
import sys
import torch
import tiling  # switches the telemetry off
events = []
NETWORK = ("socket.", "urllib.Request", "http.client.")
PROCESSES = ("subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.system")
sys.addaudithook(lambda event, args: events.append(f"{event} {str(args)[:80]}")
                 if event.startswith(NETWORK) or event.startswith(PROCESSES) else None)
import openvino as ov
ov.convert_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), example_input=torch.zeros(1, 3, 16, 16))
import time
time.sleep(1)  # the telemetry posts from processes it forks after the conversion returns
print("EVENTS", events)
"""


@pytest.mark.slow
def test_openvino_telemetry_is_off_by_its_consent_file(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path)}  # a home with no consent recorded, as on a fresh server
    env.pop("CI", None)
    done = subprocess.run([sys.executable, "-c", TELEMETRY_CHILD], cwd=DET.parent.parent, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    events = next(line for line in done.stdout.splitlines() if line.startswith("EVENTS"))
    assert events == "EVENTS []"
    assert (tmp_path / "intel" / "openvino_telemetry").read_text() == "0"


def test_an_explicit_opt_in_is_left_alone(tmp_path, monkeypatch):
    from tiling.models import telemetry

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text("1")
    assert telemetry.opt_out() is False
    assert (tmp_path / "intel" / "openvino_telemetry").read_text() == "1"
