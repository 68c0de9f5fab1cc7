"""Optional packages: with one made unimportable (``sys.modules[name] = None``, as where its extra is not
installed), each feature that needs it fails with one line naming the pip extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import DET_WEIGHTS
from tiling.optional import EXTRAS, MissingExtra, installed, require


def hide(monkeypatch, module: str) -> None:
    """``module`` and the package above it unimportable, even when an earlier test imported them."""
    for name in {module, module.split(".")[0]}:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("module, extra, package", [
    ("rasterio", "geo", "rasterio"), ("ray.data", "ray", "ray[data]"), ("pyarrow.fs", "ray", "pyarrow"),
    ("openvino", "openvino", "openvino"), ("onnxruntime", "onnx", "onnxruntime"), ("nncf", "int8", "nncf"),
])
def test_a_missing_package_is_one_line_naming_its_extra(monkeypatch, module, extra, package):
    hide(monkeypatch, module)
    with pytest.raises(ImportError) as caught:
        require(module, extra)
    assert isinstance(caught.value, MissingExtra) and caught.value.extra == extra
    text = str(caught.value)
    assert f"needs {package}: pip install 'patchwise[{extra}]'" in text and "\n" not in text
    assert not installed(module.split(".")[0])


def test_an_installed_package_is_returned():
    assert require("numpy", "geo") is np and installed("numpy")


def test_an_unknown_extra_is_refused():
    with pytest.raises(ValueError, match="extra must be one of"):
        require("numpy", "gpu")
    assert set(EXTRAS) == {"openvino", "onnx", "int8", "geo", "ray", "video"}


def test_rasters_without_rasterio(monkeypatch, tmp_path):
    from tiling.raster import RasterSource, should_stream

    hide(monkeypatch, "rasterio")
    tif, jp2 = tmp_path / "a.tif", tmp_path / "b.jp2"
    tif.write_bytes(b"II*\x00"), jp2.write_bytes(b"\x00\x00\x00\x0cjP  ")
    assert not should_stream(tif)  # a TIFF is read as a photo without patchwise[geo]
    assert should_stream(jp2)  # another raster reaches RasterSource, which says what to install
    with pytest.raises(MissingExtra, match=r"pip install 'patchwise\[geo\]'"):
        RasterSource(jp2)


def test_the_cli_says_which_extra_a_raster_needs(monkeypatch, tmp_path, capsys):
    from tiling.cli import main

    hide(monkeypatch, "rasterio")
    jp2 = tmp_path / "b.jp2"
    jp2.write_bytes(b"\x00\x00\x00\x0cjP  ")
    assert main(["predict", str(jp2), "--model", str(DET_WEIGHTS), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("patchwise predict: error:") and "pip install 'patchwise[geo]'" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_uris_without_pyarrow(monkeypatch):
    from tiling.uris import list_uri

    hide(monkeypatch, "pyarrow.fs")  # no filesystem is ever asked: the bucket is never reached
    with pytest.raises(ValueError, match=r"reading URIs needs pyarrow: pip install 'patchwise\[ray\]'"):
        list_uri("s3://bucket/survey/", (".jpg",))


def test_the_ray_engine_without_ray(monkeypatch):
    from tiling.distributed.cluster import ClusterError, connect

    hide(monkeypatch, "ray.data")
    with pytest.raises(ClusterError, match=r"the Ray engine needs ray\[data\]: pip install 'patchwise\[ray\]'"):
        connect(None)


def test_an_onnx_model_without_onnx(monkeypatch, tmp_path):
    import tiling

    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    hide(monkeypatch, "onnx")
    with pytest.raises(tiling.ModelError) as caught:
        tiling.load_model(model)
    assert str(caught.value) == "m.onnx: reading ONNX models needs onnx: pip install 'patchwise[onnx]'"


def test_pyproject_has_a_small_core_and_an_extra_for_each_optional_package():
    import tomllib

    from conftest import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for package, extra in [("openvino", "openvino"), ("onnxruntime", "onnx"), ("nncf", "int8"),
                           ("rasterio", "geo"), ("ray", "ray"), ("av", "video"),
                           ("lap", "video"), ("motmetrics", "video")]:
        assert package not in core and any(dep.startswith(package) for dep in extras[extra])
    assert set(extras) == {*EXTRAS, "app", "all"}
    assert extras["app"][0] == "patchwise[openvino,onnx,int8,geo,video]" and extras["all"] == ["patchwise[app,ray]"]
