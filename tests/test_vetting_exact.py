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


POLYGLOTS = {
    "hostile_then_genuine": lambda good, evil: evil + good,
    "genuine_then_hostile": lambda good, evil: good + evil,
    "trailing_bytes": lambda good, evil: good + b"\0" * 64,
    "leading_bytes": lambda good, evil: b"\0" * 64 + good,
    "case_variant_names": _case_renamed,
    "archive_in_comment": _commented,
}


@pytest.mark.parametrize("case", list(POLYGLOTS))
def test_a_second_archive_in_the_file_is_refused_before_anything_runs(tmp_path, constructions, case):
    good = DET.read_bytes()
    evil = _saved_bytes({"model": Call(torch.nn.Linear, 3, 3), "train_args": {}})
    path = tmp_path / "poly.pt"
    path.write_bytes(POLYGLOTS[case](good, evil))
    message = refused(path, "one archive")
    assert "\n" not in message and constructions == []


def test_a_genuine_checkpoint_and_a_rewritten_one_still_load(tmp_path):
    assert tiling.load_model(DET, runtime="torch").names
    copy = forged(tmp_path, lambda ckpt, model: None)  # torch.save of this torch: data descriptors, zip64 end
    assert tiling.load_model(copy, runtime="torch").names
