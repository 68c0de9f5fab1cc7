"""Hostile and malformed label files: content is never a path, every problem is a LabelError, costs are capped."""
import importlib
import json
import time

import cv2
import numpy as np
import pytest

import tiling
from tiling.draw import dash_segments
from tiling.labels import LabelError, load_coco_labels, load_yolo_labels, parse_coco_labels, parse_yolo_labels

ev = importlib.import_module("tiling.labels.base")  # where the caps live

COCO = {"images": [{"id": 3, "file_name": "x.jpg", "width": 100, "height": 50}],
        "annotations": [{"id": 1, "image_id": 3, "category_id": 2, "bbox": [1, 2, 3, 4]}],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "truck"}]}


def coco_with(**changes) -> str:
    doc = json.loads(json.dumps(COCO))
    doc.update(changes)
    return json.dumps(doc)


def ann(bbox=(1, 2, 3, 4), **changes) -> dict:
    return {"id": 1, "image_id": 3, "category_id": 2, "bbox": list(bbox), **changes}


# -- content is content, paths are paths ------------------------------------------------------------
def test_uploaded_coco_content_longer_than_a_file_name_parses():
    many = coco_with(annotations=[ann((k % 90, 2, 3, 4), id=k) for k in range(80)])
    assert len(many) > 4096
    assert len(parse_coco_labels(many.encode(), "upload.json")["x.jpg"]) == 80
    with pytest.raises(LabelError, match="cannot read.*parse_coco_labels"):  # was OSError: File name too long
        load_coco_labels(many)


def test_content_that_names_a_server_file_is_not_read(tmp_path):
    secret_coco, secret_txt = tmp_path / "secret.json", tmp_path / "secret.txt"
    secret_coco.write_text(json.dumps(COCO))
    secret_txt.write_text("0 0.5 0.5 0.2 0.2\n")
    for content in (str(secret_coco), str(secret_coco).encode()):
        with pytest.raises(LabelError, match="not valid JSON"):
            parse_coco_labels(content, "evil.json")
    for content in (str(secret_txt), str(secret_txt).encode()):
        with pytest.raises(LabelError, match="^evil.txt line 1: "):
            parse_yolo_labels(content, (10, 10), "evil.txt")


def test_paths_and_content_have_separate_functions(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(COCO))
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    for path in (tmp_path / "a.json", str(tmp_path / "a.json")):
        assert load_coco_labels(path)["x.jpg"].xyxy.tolist() == [[1, 2, 4, 6]]
    for path in (tmp_path / "a.txt", str(tmp_path / "a.txt")):
        assert load_yolo_labels(path, (100, 200)).xyxy.tolist() == [[80, 30, 120, 70]]
    with pytest.raises(TypeError, match="parse_coco_labels"):
        load_coco_labels(json.dumps(COCO).encode())
    with pytest.raises(TypeError, match="parse_yolo_labels"):
        load_yolo_labels(b"0 0.5 0.5 0.2 0.4", (10, 10))
    with pytest.raises(TypeError, match="load_coco_labels"):
        parse_coco_labels(tmp_path / "a.json")
    with pytest.raises(TypeError, match="load_yolo_labels"):
        parse_yolo_labels(tmp_path / "a.txt", (10, 10))
    with pytest.raises(LabelError, match="missing.json: cannot read"):
        load_coco_labels(tmp_path / "missing.json")
    assert issubclass(LabelError, ValueError)


def test_valid_content_as_bytes_or_text_gives_the_same_labels():
    text = "\ufeff0 0.5 0.5 0.2 0.4\r\n\r\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\r\n2 0.5 0.5 0.1 0.1 0.9\n"
    for data in (text, text.encode()):
        det = parse_yolo_labels(data, (100, 200), "a.txt", names={0: "car"})
        assert det.xyxy.tolist() == [[80, 30, 120, 70], [20, 10, 60, 30], [90, 45, 110, 55]]
        assert det.class_id.tolist() == [0, 1, 2] and det.names == {0: "car"}
    assert len(parse_yolo_labels(b"", (10, 10))) == 0 and len(parse_yolo_labels("\n \n", (10, 10))) == 0
    assert parse_coco_labels(coco_with(annotations=[]))["x.jpg"].xyxy.shape == (0, 4)
    no_annotations = json.loads(coco_with())
    del no_annotations["annotations"]
    assert len(parse_coco_labels(json.dumps(no_annotations))["x.jpg"]) == 0
    crowd = coco_with(annotations=[ann(), ann(bbox=("junk",), iscrowd=1)])
    assert len(parse_coco_labels(crowd)["x.jpg"]) == 1


# -- every problem is a one-line LabelError naming the file and the line or field ------------------
YOLO_BAD = [
    ("inf 0.5 0.5 0.1 0.1", "line 2: class inf"),
    ("1e308 0.5 0.5 0.1 0.1", "line 2: class 1e+308"),
    ("-1 0.5 0.5 0.1 0.1", "line 2: class -1 "),
    ("1.5 0.5 0.5 0.1 0.1", "line 2: class 1.5 "),
    ("nan 0.5 0.5 0.1 0.1", "line 2: class nan"),
    ("0 1e308 0.5 0.1 0.1", "line 2: value 1e+308 is not a finite number"),
    ("0 0.5 0.5 nan 0.1", "line 2: value nan"),
    ("0 0.5 0.5 0.1 -inf", "line 2: value -inf"),
    ("0 0.5 0.5 -0.1 0.1", "line 2: negative box size"),
    ("0 0.5 0.5 0.1", "line 2: 3 values after the class"),
    ("0", "line 2: 0 values after the class"),
    ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "line 2: 7 values after the class"),
    ("car 0.5 0.5 0.1 0.1", "line 2: not numbers: 'car 0.5"),
]


@pytest.mark.parametrize("bad, message", YOLO_BAD, ids=[m for _, m in YOLO_BAD])
def test_malformed_yolo_lines_are_label_errors(bad, message):
    for data in (f"0 0.5 0.5 0.1 0.1\n{bad}\n0 0.2 0.2 0.1 0.1\n", f"0 0.5 0.5 0.1 0.1\n{bad}\n".encode()):
        with pytest.raises(LabelError) as info:
            parse_yolo_labels(data, (100, 100), "cars.txt")
        assert str(info.value).startswith(f"cars.txt {message}") and "\n" not in str(info.value)


def test_yolo_reports_the_first_bad_line_of_any_kind():
    bad = {"-1 0.5 0.5 0.1 0.1": "class -1", "x 0.5 0.5 0.1 0.1": "not numbers", "0 1": "1 value after",
           "0 0.1 0.1 0.2 0.2 0.3 nan": "value nan", "0 0.5 0.5 -1 0.1": "negative box size"}
    good = ["0 0.5 0.5 0.1 0.1", "1 0.1 0.1 0.2 0.2 0.3 0.3"] * 10_000  # enough to convert in several batches
    for first, message in bad.items():
        others = [line for line in bad if line != first]
        text = "\n".join(good[:3] + [first] + good + others + good + others)
        with pytest.raises(LabelError, match=f"^a.txt line 4: {message}"):
            parse_yolo_labels(text, (10, 10), "a.txt")
    with pytest.raises(LabelError, match="^a.txt line 2: class nan"):  # several problems on a line: the class first
        parse_yolo_labels("0 0.5 0.5 0.1 0.1\nnan nan 0.5 -1 0.1", (10, 10), "a.txt")


def test_non_utf8_bytes_are_a_label_error_with_the_line():
    with pytest.raises(LabelError, match=r"^a.txt line 2: not UTF-8"):
        parse_yolo_labels(b"0 0.5 0.5 0.1 0.1\n0 0.5\xff 0.5 0.1 0.1\n", (10, 10), "a.txt")
    with pytest.raises(LabelError, match=r"^a.json line 1: not UTF-8"):
        parse_coco_labels(b'{"images": [], "x": "\xc3\x28"}', "a.json")


COCO_BAD = [
    ("[]", "the top level is a JSON array"),
    ('"images"', "the top level is a JSON string"),
    ("null", "the top level is a JSON null"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"images": [', "line 1 column 13: not valid JSON"),
    ("{}", "'images' is missing"),
    (coco_with(images=None), "'images' is missing"),
    (coco_with(images={"id": 3}), "'images' is a JSON object, expected an array"),
    (coco_with(annotations={"0": ann()}), "'annotations' is a JSON object, expected an array"),
    (coco_with(annotations="none"), "'annotations' is a JSON string"),
    (coco_with(categories=7), "'categories' is a JSON number"),
    (coco_with(images=[5]), "images[0] is a JSON number, expected an object"),
    (coco_with(images=[{"id": 3.5, "file_name": "x.jpg"}]), "images[0].id must be an integer"),
    ('{"images": [{"id": Infinity, "file_name": "x.jpg"}]}', "images[0].id must be an integer, got inf"),
    ('{"images": [{"id": NaN, "file_name": "x.jpg"}]}', "images[0].id must be an integer, got nan"),
    (coco_with(images=[{"id": True, "file_name": "x.jpg"}]), "images[0].id must be an integer, got True"),
    (coco_with(images=[{"id": 3}]), "images[0].file_name must be a string, got None"),
    (coco_with(images=[{"id": 3, "file_name": ["a"]}]), "images[0].file_name must be a string"),
    (coco_with(images=[{"id": 3, "file_name": "x", "width": -5}]), "images[0].width must be a positive number"),
    ('{"images": [{"id": 3, "file_name": "x", "height": Infinity}]}', "images[0].height must be a positive number"),
    (coco_with(annotations=[ann(), ann(category_id="2")]), "annotations[1].category_id must be an integer"),
    (coco_with(annotations=[ann(category_id=2.0)]), "annotations[0].category_id must be an integer"),
    (coco_with(annotations=[ann(category_id=10**30)]), "annotations[0].category_id must be an integer of at most"),
    ('{"images": [], "annotations": [{"image_id": Infinity, "category_id": 1, "bbox": [1, 2, 3, 4]}]}',
     "annotations[0].image_id must be an integer, got inf"),
    (coco_with(annotations=[ann(image_id=None)]), "annotations[0].image_id must be an integer"),
    (coco_with(annotations=[[1, 2]]), "annotations[0] is a JSON array"),
    (coco_with(annotations=[ann(bbox=(1, 2, 3))]), "annotations[0].bbox must be 4 numbers"),
    (coco_with(annotations=[ann(bbox=(1, 2, 3, "4"))]), "annotations[0].bbox must be 4 numbers"),
    (coco_with(annotations=[ann(bbox=(1, 2, 3, True))]), "annotations[0].bbox must be 4 numbers"),
    (coco_with(annotations=[ann(bbox=(1, 2, 3, 10**400))]), "annotations[0].bbox must be 4 numbers"),
    (coco_with(annotations=[{"image_id": 3, "category_id": 2}]), "annotations[0].bbox must be 4 numbers"),
    ('{"images": [], "annotations": [{"image_id": 3, "category_id": 2, "bbox": [1, 2, NaN, 4]}]}',
     "annotations[0].bbox values must be finite"),
    ('{"images": [], "annotations": [{"image_id": 3, "category_id": 2, "bbox": [1, -Infinity, 3, 4]}]}',
     "annotations[0].bbox values must be finite"),
    ('{"images": [], "annotations": [{"image_id": 3, "category_id": 2, "bbox": [1e999, 2, 3, 4]}]}',
     "annotations[0].bbox values must be finite"),
    (coco_with(annotations=[ann(), ann(bbox=(1, 2, -3, 4))]), "annotations[1].bbox width and height must not be"),
    (coco_with(categories=[{"id": "1", "name": "car"}]), "categories[0].id must be an integer"),
    (coco_with(categories=[{"id": 1, "name": None}]), "categories[0].name must be a string"),
]


@pytest.mark.parametrize("data, message", COCO_BAD, ids=[m for _, m in COCO_BAD])
def test_malformed_coco_files_are_label_errors(data, message):
    for content in (data, data.encode()):
        with pytest.raises(LabelError) as info:
            parse_coco_labels(content, "gt.json")
        text = str(info.value)
        assert text.startswith("gt.json") and message in text and "\n" not in text and len(text) < 300


def test_file_names_in_messages_stay_on_one_line(tmp_path):
    with pytest.raises(LabelError) as info:
        parse_yolo_labels("x", (10, 10), "evil\nname\x1b[31m" + "n" * 500 + ".txt")
    text = str(info.value)
    assert text.startswith("evil?name?[31mnnn") and "\n" not in text and "\x1b" not in text and len(text) < 250


# -- caps -------------------------------------------------------------------------------------------
def test_content_over_the_size_cap_is_refused_before_parsing():
    big = b"0 0.5 0.5 0.1 0.1\n" * (ev.MAX_LABEL_BYTES // 18 + 1)
    assert ev.MAX_LABEL_BYTES == 20 << 20  # the default, without PATCHWISE_MAX_LABEL_MB
    t0 = time.perf_counter()
    with pytest.raises(LabelError, match=r"^big.txt: [\d,]+ bytes is over the 20 MB limit .*PATCHWISE_MAX_LABEL_MB"):
        parse_yolo_labels(big, (10, 10), "big.txt")
    with pytest.raises(LabelError, match="over the 20 MB limit"):
        parse_coco_labels(b" " * (ev.MAX_LABEL_BYTES + 1), "big.json")
    with pytest.raises(LabelError, match="over the 20 MB limit"):
        parse_coco_labels(" " * (ev.MAX_LABEL_BYTES + 1), "big.json")
    assert time.perf_counter() - t0 < 1


def test_files_over_the_size_cap_are_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "MAX_LABEL_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(COCO) + " " * 1000)
    with pytest.raises(LabelError, match=r"big.json: 1,\d{3} bytes is over the 0.000953674 MB limit"):
        load_coco_labels(path)
    (tmp_path / "big.txt").write_text("0 0.5 0.5 0.1 0.1\n" * 100)
    with pytest.raises(LabelError, match="big.txt: 1,800 bytes is over"):
        load_yolo_labels(tmp_path / "big.txt", (10, 10))


def test_the_size_cap_follows_the_environment(monkeypatch):
    monkeypatch.setenv("PATCHWISE_MAX_LABEL_MB", "50")
    assert ev._env_limit("PATCHWISE_MAX_LABEL_MB", 20, 1 << 20) == 50 << 20
    monkeypatch.setenv("PATCHWISE_MAX_LABEL_MB", "0.5")
    assert ev._env_limit("PATCHWISE_MAX_LABEL_MB", 20, 1 << 20) == 1 << 19
    for bad in ("lots", "-1", "nan", "inf"):
        monkeypatch.setenv("PATCHWISE_MAX_LABEL_MB", bad)
        with pytest.warns(UserWarning, match="PATCHWISE_MAX_LABEL_MB"):
            assert ev._env_limit("PATCHWISE_MAX_LABEL_MB", 20, 1 << 20) == 20 << 20


def test_too_many_yolo_lines_are_refused():
    assert ev.MAX_LABEL_ITEMS == 200_000
    at_cap = "0 0.5 0.5 0.1 0.1\n" * 200_000
    assert len(parse_yolo_labels(at_cap, (10, 10))) == 200_000
    t0 = time.perf_counter()
    with pytest.raises(LabelError, match=r"^many.txt: more than 200,000 lines.*PATCHWISE_MAX_LABEL_ITEMS"):
        parse_yolo_labels(at_cap + "0 0.5 0.5 0.1 0.1", (10, 10), "many.txt")
    with pytest.raises(LabelError, match="more than 200,000 lines"):
        parse_yolo_labels("\r" * 200_001, (10, 10), "many.txt")  # old Mac line ends count too
    assert time.perf_counter() - t0 < 1


def test_too_many_coco_records_are_refused(monkeypatch):
    monkeypatch.setattr(ev, "MAX_LABEL_ITEMS", 10)
    assert len(parse_coco_labels(coco_with(annotations=[ann()] * 10))["x.jpg"]) == 10
    with pytest.raises(LabelError, match=r"^gt.json: more than 10 annotations.*PATCHWISE_MAX_LABEL_ITEMS"):
        parse_coco_labels(coco_with(annotations=[ann()] * 11), "gt.json")
    with pytest.raises(LabelError, match="more than 10 images"):
        parse_coco_labels(coco_with(images=[{"id": k, "file_name": f"{k}.jpg"} for k in range(11)]))
    with pytest.raises(LabelError, match="JSON objects and arrays is over the limit of 100"):
        parse_coco_labels(json.dumps({"images": [], "junk": [{}] * 101}))


def test_a_huge_yolo_file_costs_seconds_not_minutes():
    line = "0 " + " ".join(["0.25 0.5"] * 20) + "\n"
    data = (line * (ev.MAX_LABEL_BYTES // len(line))).encode()
    t0 = time.perf_counter()
    assert len(parse_yolo_labels(data, (100, 100))) == 0  # flat polygons: no area, dropped
    assert time.perf_counter() - t0 < 10


# -- clipping ---------------------------------------------------------------------------------------
def test_yolo_boxes_are_clipped_to_the_image():
    det = parse_yolo_labels("0 0.5 0.5 200000 200000\n1 0.9 0.1 0.4 0.4\n2 -0.5 0.5 2 1e30\n", (100, 200))
    assert det.xyxy.tolist() == [[0, 0, 200, 100], [140, 0, 200, 30], [0, 0, 100, 100]]
    assert det.class_id.tolist() == [0, 1, 2]


def test_yolo_boxes_with_no_area_in_the_image_are_dropped():
    det = parse_yolo_labels("0 1.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n2 0.5 0.5 0 0.2\n3 0.5 -3 0.2 0.2\n", (10, 10))
    assert det.class_id.tolist() == [1]


def test_coco_boxes_are_clipped_to_the_image_size_when_known():
    images = [{"id": 3, "file_name": "x.jpg", "width": 100, "height": 50}, {"id": 4, "file_name": "y.jpg"}]
    anns = [ann((-10, 40, 2e5, 2e5)), ann((90, 45, 20, 20), category_id=1), ann((150, 10, 5, 5)),
            ann((10, 10, 0, 5)), ann((-10, -20, 30, 1e30), image_id=4), ann((-30, 0, 10, 10), image_id=4)]
    out = parse_coco_labels(json.dumps({**COCO, "images": images, "annotations": anns}))
    assert out["x.jpg"].xyxy.tolist() == [[0, 40, 100, 50], [90, 45, 100, 50]]
    assert out["x.jpg"].class_id.tolist() == [1, 0] and out["x.jpg"].class_names == ["truck", "car"]
    assert out["y.jpg"].xyxy.tolist() == [[0, 0, 20, 2**30]]  # no size given: clipped from below only


# -- drawing ----------------------------------------------------------------------------------------
def old_dashed_rectangle(img, p0, p1, color, lw, dash):
    """The drawing before clipping: every dash of the box, on or off the image."""
    (x0, y0), (x1, y1) = p0, p1
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        for s in range(a, b, 2 * dash):
            e = min(s + dash, b)
            cv2.line(img, (s, fixed) if horizontal else (fixed, s), (e, fixed) if horizontal else (fixed, e), color,
                     lw, cv2.LINE_AA)


def test_dashes_of_a_huge_box_are_bounded_by_the_image():
    for lw, dash in ((1, 3), (4, 12)):
        per_edge = (100 + 2 * lw) // (2 * dash) + 2
        assert 0 < len(dash_segments((0, 0), (200_000, 200_000), (100, 100), lw, dash)) <= 2 * per_edge
        assert len(dash_segments((-100_000, -100_000), (100_000, 100_000), (100, 100), lw, dash)) == 0
        assert 0 < len(dash_segments((-100_000, 50), (100_000, 60), (100, 100), lw, dash)) <= 2 * per_edge


def test_drawing_a_huge_dashed_box_is_quick():
    """200,000 px, and 2e7 px: a YOLO box 200000 image-widths wide (took minutes before clipping)."""
    image = np.zeros((100, 100, 3), np.uint8)
    det = tiling.Detections(xyxy=np.array([[0, 0, 200_000, 200_000], [-5e4, 20, 5e4, 30], [0, 0, 2e7, 2e7]]),
                            class_id=np.array([0, 1, 2]))
    t0 = time.perf_counter()
    out = tiling.draw_detections(image, det, color=(0, 0, 255), dashed=True, labels=False)
    assert time.perf_counter() - t0 < 2
    assert out[0, :, 2].any() and out[:, 0, 2].any() and out[25, :, 2].any()  # visible edges are still drawn


def test_clipped_dashes_look_the_same():
    rng = np.random.default_rng(0)
    for _ in range(300):
        lw = int(rng.integers(1, 5))
        x0, y0 = (int(v) for v in rng.integers(-120, 120, 2))
        p1 = (x0 + int(rng.integers(-5, 300)), y0 + int(rng.integers(-5, 300)))
        old, new = np.zeros((80, 100, 3), np.uint8), np.zeros((80, 100, 3), np.uint8)
        old_dashed_rectangle(old, (x0, y0), p1, (0, 0, 255), lw, 3 * lw)
        for start, end in dash_segments((x0, y0), p1, new.shape, lw, 3 * lw):
            cv2.line(new, start, end, (0, 0, 255), lw, cv2.LINE_AA)
        assert (old == new).all()


HUGE = "9" * 5000  # past Python's 4,300-digit limit for int(str)


@pytest.mark.parametrize("doc, field", [
    ('{"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": %s, "name": "a"}]}' % HUGE,
     "categories[0].id"),
    ('{"images": [{"id": %s, "file_name": "a.png"}]}' % HUGE, "images[0].id"),
    ('{"images": [{"id": 1, "file_name": "a.png", "height": %s}]}' % ("9" * 400), "images[0].height"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "category_id": 1, '
     '"bbox": [%s, 0, 1, 1]}]}' % HUGE, "annotations[0].bbox"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "category_id": %s, '
     '"bbox": [0, 0, 1, 1]}]}' % ("9" * 30), "annotations[0].category_id"),
], ids=["category_id", "image_id", "height", "bbox", "annotation_category"])
def test_numbers_out_of_range_are_label_errors_naming_the_field(doc, field):
    with pytest.raises(LabelError) as info:
        parse_coco_labels(doc, name="huge.json")
    message = str(info.value)
    assert message.startswith(f"huge.json: {field}") and "\n" not in message and len(message) < 200


def test_a_category_name_longer_than_a_label_is_refused():
    doc = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "n" * 1_000_000}]}
    with pytest.raises(LabelError, match=r"^long.json: categories\[0\].name is longer than 256 bytes"):
        parse_coco_labels(json.dumps(doc), name="long.json")
