"""Label classes matched to a model's by name: names files read, matches and mismatches named, labels
relabelled into the model's numbers."""
import numpy as np
import pytest

import tiling
from tiling.labels import (
    LabelError,
    is_names_file,
    match_classes,
    parse_class_names,
    parse_coco_labels,
    parse_yolo_labels,
    relabel,
)

DEMO = {0: "car", 1: "truck", 2: "plane"}
COCO_LIKE = {0: "person", 1: "bicycle", 2: "car", 4: "airplane", 7: "truck"}


def test_names_files_are_told_from_label_files():
    assert is_names_file("data.yaml") and is_names_file("DATA.YML") and is_names_file("obj.names")
    assert is_names_file("classes.txt") and is_names_file("names.txt")
    assert not is_names_file("scene.txt") and not is_names_file("labels.json")


@pytest.mark.parametrize("name, data, names", [
    ("data.yaml", b"path: .\ntrain: images\nnames: [person, bicycle, car]\n", {0: "person", 1: "bicycle", 2: "car"}),
    ("data.yaml", "names:\n  0: person\n  2: car\n", {0: "person", 2: "car"}),
    ("classes.txt", "person\r\nbicycle\n car \n\n", {0: "person", 1: "bicycle", 2: "car"}),
    ("obj.names", "\ufeffcar\n", {0: "car"}),
])
def test_class_names_from_a_data_yaml_or_a_names_list(name, data, names):
    assert parse_class_names(data, name) == names


@pytest.mark.parametrize("name, data, words", [
    ("data.yaml", "train: images\n", "no 'names'"),
    ("data.yaml", "names: [a, [b]]\n", "class 1"),
    ("data.yaml", "names: {x: car}\n", "class x"),
    ("data.yaml", "names: [a\n", "not valid YAML"),
    ("data.yaml", "!!python/object/apply:os.system [echo hi]\n", "not valid YAML"),
    ("classes.txt", "\n\n", "empty"),
    ("classes.txt", "a" * 300, "longer than 256 bytes"),
    ("classes.txt", b"\xff\xfe", "not UTF-8"),
    ("classes.txt", "a\n" * (600_000), "too large"),
])
def test_a_bad_names_file_is_one_line_naming_it(name, data, words):
    with pytest.raises(LabelError, match=words) as err:
        parse_class_names(data, name)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_a_data_yaml_alias_is_one_object_not_a_copy():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
           "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nnames: [car]\n"
    assert parse_class_names(bomb, "data.yaml") == {0: "car"}


def test_classes_are_matched_by_name_whatever_their_numbers_and_spelling():
    match = match_classes([0, 3], {0: "Car", 3: "Aeroplane"}, COCO_LIKE)
    assert match.to_model == {0: 2, 3: 4} and not match.unscored and not match.assumed
    assert match.message("a.json") is None  # every class matched: nothing to say
    assert match.scored_model_classes == (2, 4)


def test_a_mismatch_names_what_is_scored_what_is_not_and_what_to_do():
    match = match_classes([0, 2], {0: "person", 2: "car", 5: "bus"}, DEMO)
    assert match.to_model == {2: 0} and match.unscored == ("person",)
    text = match.message("labels.json")
    assert text.startswith("labels.json: the labels use classes person, car; the model knows car, truck, plane")
    assert "'car' is scored, 'person' is not" in text
    assert "Choose a model that knows person (a COCO model" in text and "use labels for car, truck, plane" in text
    none = match_classes([0], {0: "boat"}, DEMO).message("x.json")
    assert "none is scored, 'boat' is not" in none


def test_numbers_without_names_are_taken_as_the_model_s_and_the_message_says_so():
    match = match_classes([0, 3, 5], None, DEMO)
    assert match.assumed and match.to_model == {0: 0} and match.unscored == ("3", "5")
    text = match.message("scene.txt")
    assert "class numbers only" in text and "0 = car" in text and "classes 3, 5 are not in this model" in text
    assert "data.yaml or classes.txt" in text
    assert "class numbers only" in match_classes([1], {}, DEMO).message("s.txt")  # empty names: none given


def test_relabel_puts_labels_in_the_model_s_numbers_and_leaves_out_the_unknown():
    labels = parse_yolo_labels("0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n0 0.8 0.8 0.1 0.1\n", (100, 100), "a.txt",
                               names={0: "car", 1: "boat"})
    match = match_classes(labels.class_id, labels.names, COCO_LIKE)
    out = relabel(labels, match)
    assert len(out) == 2 and out.class_id.tolist() == [2, 2] and out.names == COCO_LIKE
    assert labels.class_id.tolist() == [0, 1, 0]  # the input is left as it was


def test_coco_categories_match_by_name_and_are_scored_only_where_they_match():
    doc = ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],'
           '"categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],'
           '"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},'
           '{"image_id": 1, "category_id": 3, "bbox": [20, 20, 9, 9]}]}')
    labels = parse_coco_labels(doc, "gt.json")["a.jpg"]
    match = match_classes(labels.class_id, labels.names, DEMO)
    out = relabel(labels, match)
    assert out.class_id.tolist() == [0] and np.allclose(out.xyxy, [[20, 20, 29, 29]])
    assert "'car' is scored, 'person' is not" in match.message("gt.json")


def test_empty_labels_match_nothing_and_relabel_to_empty():
    empty = tiling.Detections.empty({0: "car"})
    match = match_classes(empty.class_id, empty.names, DEMO)
    assert match.message() is None and len(relabel(empty, match)) == 0


def test_a_dataset_s_labels_are_matched_together_and_names_files_are_found_beside_them(tmp_path):
    a = parse_yolo_labels("0 0.5 0.5 0.1 0.1\n", (100, 100), "a.txt", names={0: "car", 1: "boat"})
    b = parse_yolo_labels("1 0.5 0.5 0.1 0.1\n", (100, 100), "b.txt", names={0: "car", 1: "boat"})
    (out_a, out_b), match = tiling.labels.relabel_all([a, b], DEMO)
    assert len(out_a) == 1 and len(out_b) == 0 and match.unscored == ("boat",)
    assert tiling.labels.find_names_file(tmp_path / "labels") is None
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [car, boat]\n")
    found = tiling.labels.find_names_file(tmp_path / "labels")
    assert found == tmp_path / "data.yaml" and tiling.labels.load_class_names(found) == {0: "car", 1: "boat"}
