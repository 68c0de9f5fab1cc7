"""What a model argument is (ModelSource, asked by every stage alike) and the one rule for output names."""
import io
import zipfile

import pytest

from tiling.inputs import entries, run_key
from tiling.models import CallableModel
from tiling.models.source import ModelSource, SourceKind
from tiling.names import unique_names, unique_stems
from tiling.settings import split_settings
from tiling.util import sha256_of, sha256_of_file


def zipped(**files: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def export_folder(path, weights: bytes = b"weights"):
    path.mkdir()
    (path / "model.xml").write_text("<net/>")
    (path / "model.bin").write_bytes(weights)
    (path / "metadata.yaml").write_text("task: detect\n")
    (path / "notes.txt").write_text("not a model file")
    return path


@pytest.mark.parametrize("data, label, kind", [
    (zipped(**{"archive/data.pkl": b"x"}), None, SourceKind.CHECKPOINT),  # torch.save writes data.pkl
    (b"\x80\x02 an old pickle", None, SourceKind.CHECKPOINT),
    (b"PK\x03\x04 broken", None, SourceKind.CHECKPOINT),  # a bad zip: the checkpoint's vetting reports it
    (zipped(**{"model.xml": b"<net/>", "model.bin": b"w"}), None, SourceKind.EXPORT_FOLDER),
    (b"onnx bytes", "model.onnx", SourceKind.ONNX),  # ONNX has no magic number: named so
])
def test_bytes_are_classified_by_their_content_and_hashed(data, label, kind):
    source = ModelSource.of(bytearray(data), label)
    assert source.kind is kind and source.data == data and source.digest == sha256_of(data)
    assert source.kind.is_export == (kind in (SourceKind.EXPORT_FOLDER, SourceKind.ONNX))


def test_paths_are_classified_and_an_openvino_export_is_one_model_however_given(tmp_path):
    weights = tmp_path / "m.pt"
    weights.write_bytes(b"weights")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx")
    folder = export_folder(tmp_path / "m_openvino_model")
    cases = {weights: SourceKind.CHECKPOINT, onnx: SourceKind.ONNX, folder: SourceKind.EXPORT_FOLDER,
             folder / "model.xml": SourceKind.OPENVINO_XML}
    for path, kind in cases.items():
        for given in (path, str(path)):
            assert ModelSource.of(given).kind is kind and ModelSource.of(given).path == path
    assert ModelSource.of(weights).digest == sha256_of_file(weights) and ModelSource.of(onnx).label == "m.onnx"
    by_folder, by_xml = ModelSource.of(folder), ModelSource.of(folder / "model.xml")
    assert by_folder.folder == by_xml.folder == folder and by_folder.digest == by_xml.digest
    (folder / "notes.txt").write_text("other notes")  # not a model file: the same model
    assert ModelSource.of(folder).digest == by_folder.digest
    (folder / "model.bin").write_bytes(b"other weights")  # the weights count, whichever way it is named
    assert ModelSource.of(folder).digest != by_folder.digest
    assert ModelSource.of(folder / "model.xml").digest == ModelSource.of(folder).digest


def test_names_that_are_no_file_and_callables():
    official = ModelSource.of("yolo11n.pt")
    assert official.kind is SourceKind.OFFICIAL and official.value == "yolo11n.pt" and official.digest == "yolo11n.pt"
    assert not official.kind.is_export and official.folder is None
    def my_finder(tiles):
        return []

    model = CallableModel(my_finder)
    called = ModelSource.of(model)
    assert called.kind is SourceKind.CALLABLE and called.value is model and called.digest == "my_finder"
    assert ModelSource.of(len).digest == "builtin_function_or_method"


def test_the_run_key_follows_the_model_source(tmp_path):
    specs = split_settings(tile_size=256)
    folder = export_folder(tmp_path / "m_openvino_model")
    assert run_key(*specs, folder) == run_key(*specs, folder / "model.xml") == run_key(*specs, str(folder))
    assert run_key(*specs, "yolo11n.pt") != run_key(*specs, "yolo11s.pt")
    assert run_key(*specs, b"abc") == run_key(*specs, bytearray(b"abc")) != run_key(*specs, b"abd")


def test_one_rule_names_outputs_on_the_page_and_in_folder_runs(tmp_path):
    names = ["a.png", "a.jpg", "A.tif", "b.png", "a-2.png"]
    assert unique_stems(names) == ["a", "a-2", "A-3", "b", "a-2-2"]  # case-insensitive; the first keeps its stem
    assert unique_names(names) == ["a.png", "a-2.jpg", "A-3.tif", "b.png", "a-2-2.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    run = entries(tmp_path, [tmp_path / n for n in names])
    assert [e.stem for e in run] == unique_stems(names) and [e.image_id for e in run] == [1, 2, 3, 4, 5]
    assert unique_stems(["sub.d/a", "sub.d/a.png", "x/a.png"]) == ["sub.d/a", "sub.d/a-2", "x/a"]  # folders kept
