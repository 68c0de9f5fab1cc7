"""Settings errors carry their field, so callers (the CLI, the page) name it their own way."""
import pickle
from dataclasses import fields

import pytest

import tiling
from tiling import checks
from tiling.checks import SettingError, UnknownSetting


@pytest.mark.parametrize("cls, bad, field, text", [
    (tiling.TileSpec, dict(tile_size=0), "tile_size", "tile_size must be between 1"),
    (tiling.TileSpec, dict(tile_size=(640, 0)), "tile_size", "tile_size (y) must be between 1"),
    (tiling.TileSpec, dict(tile_size=(1, 2, 3)), "tile_size", "tile_size must be a number or a pair"),
    (tiling.TileSpec, dict(overlap=2), "overlap", "overlap must be in [0, 0.9)"),
    (tiling.TileSpec, dict(edge="wrap"), "edge", "edge must be one of trim, shift"),
    (tiling.TileSpec, dict(max_tiles=0), "max_tiles", "max_tiles must be between 1"),
    (tiling.TileSpec, dict(offset_grid="yes"), "offset_grid", "offset_grid must be True or False"),
    (tiling.InferSpec, dict(conf=float("nan")), "conf", "conf must be a number"),
    (tiling.InferSpec, dict(iou=1.5), "iou", "iou must be in [0, 1]"),
    (tiling.InferSpec, dict(classes=[1.7]), "classes", "classes entry must be a whole number"),
    (tiling.InferSpec, dict(classes="0,1"), "classes", "classes must be a list of class ids"),
    (tiling.InferSpec, dict(max_det=0), "max_det", "max_det must be between 1"),
    (tiling.InferSpec, dict(batch_size=True), "batch_size", "batch_size must be a whole number"),
    (tiling.InferSpec, dict(imgsz=16), "imgsz", "imgsz must be between 32"),
    (tiling.InferSpec, dict(include_full=2), "include_full", "include_full must be True or False"),
    (tiling.MergeSpec, dict(method="avg"), "method", "merge method must be one of nms, nmm"),
    (tiling.MergeSpec, dict(metric="giou"), "metric", "merge metric must be one of"),
    (tiling.MergeSpec, dict(threshold=2), "threshold", "merge threshold must be in [0, 1], got 2"),
    (tiling.MergeSpec, dict(class_agnostic="no"), "class_agnostic", "class_agnostic must be True or False"),
    (tiling.BandSpec, dict(bands=(1, 2)), "bands", "bands must be one band (grey) or three"),
    (tiling.BandSpec, dict(bands=(0,)), "bands", "band number must be between 1"),
    (tiling.BandSpec, dict(stretch="log"), "stretch", "stretch must be one of"),
    (tiling.BandSpec, dict(percentiles=(50, 10)), "percentiles", "the low stretch percentile must be below"),
])
def test_a_bad_value_of_each_spec_is_a_setting_error_naming_its_field(cls, bad, field, text):
    with pytest.raises(SettingError) as caught:
        cls(**bad)
    assert caught.value.field == field and str(caught.value).startswith(text)
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError go on working
    assert str(caught.value) == f"{caught.value.name} {caught.value.message}"


def test_every_field_of_the_run_specs_is_checked_under_its_own_name():
    for cls in (tiling.TileSpec, tiling.InferSpec, tiling.MergeSpec):
        for f in fields(cls):
            if f.type in ("bool",):
                bad = "maybe"
            elif f.name in ("edge", "method", "metric"):
                bad = "nonsense"
            elif f.name == "classes":
                bad = [-1]
            else:
                bad = -5
            with pytest.raises(SettingError) as caught:
                cls(**{f.name: bad})
            assert caught.value.field == f.name, (cls.__name__, f.name)


def test_an_unknown_setting_is_a_type_error_naming_it():
    with pytest.raises(UnknownSetting) as caught:
        checks.with_changes(None, tiling.MergeSpec, {"merge_threshold": 0.5, "zz": 1})
    err = caught.value
    assert isinstance(err, TypeError) and isinstance(err, SettingError) and err.field == "merge_threshold"
    assert str(err).startswith("MergeSpec has no setting merge_threshold, zz; its settings are class_agnostic")
    with pytest.raises(TypeError, match="^unknown setting tile; the settings are a, b$"):
        checks.refuse_unknown({"tile": 1, "a": 2}, {"a", "b"})


def test_a_setting_error_survives_pickling():  # Ray sends errors between processes
    for err in (SettingError("overlap", "must be in [0, 0.9), got 2"),
                SettingError("threshold", "must be in [0, 1], got 2", "merge threshold"),
                UnknownSetting("zz", "unknown setting zz; the settings are a")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert (back.field, back.message, back.name) == (err.field, err.message, err.name)


def test_the_full_pass_spec_keeps_every_other_field():
    spec = tiling.InferSpec(conf=0.1, iou=0.5, classes=[2, 0], max_det=50, batch_size=16, imgsz=320,
                            include_full=True)
    assert spec.full_pass == tiling.InferSpec(conf=0.1, iou=0.5, classes=(0, 2), max_det=50, batch_size=1,
                                              imgsz=320, include_full=False)
