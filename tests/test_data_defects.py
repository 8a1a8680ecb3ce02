"""Defects of real data, one small broken dataset per defect and format, built in tmp_path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import (
    DatasetError,
    DataWarning,
    DefectReport,
    cache_images,
    load_coco,
    load_voc,
    load_yolo,
    repair_boxes,
)

W, H = 64, 48


def _image(path: Path, w: int = W, h: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (30, 60, 90)).save(path)
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 10)
    return path


def _load_one_warning(fn, *args, **kwargs):
    """Call a loader; return (dataset, the single DataWarning text or None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = fn(*args, **kwargs)
    texts = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(texts) <= 1, texts
    return ds, (texts[0] if texts else None)


# ---------------------------------------------------------------- builders of tiny datasets


def _coco(tmp: Path, anns: list[dict], images: list[dict] | None = None, files=None) -> Path:
    """COCO set: images a.jpg (id 1) and b.jpg (id 2) unless given; categories 5 'x', 9 'y'."""
    images = images or [
        {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
        {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
    ]
    for info in images:
        if files is None or info["file_name"] in files:
            _image(tmp / "img" / info["file_name"])
    for i, a in enumerate(anns):
        a.setdefault("id", i + 1)
        a.setdefault("iscrowd", 0)
        a.setdefault("image_id", 1)
        a.setdefault("category_id", 5)
    cats = [{"id": 5, "name": "x"}, {"id": 9, "name": "y"}]
    path = tmp / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _yolo(tmp: Path, labels: dict[str, str], images=("a", "b"), names="[x, y]") -> Path:
    for stem in images:
        _image(tmp / "images" / "train" / f"{stem}.jpg")
    for stem, text in labels.items():
        p = tmp / "labels" / "train" / f"{stem}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    yaml_path = tmp / "data.yaml"
    yaml_path.write_text(f"path: .\ntrain: images/train\nval: images/train\nnames: {names}\n")
    return yaml_path


def _voc(tmp: Path, objects: dict[str, list[tuple]], images=("a", "b"), split_ids=None) -> Path:
    for stem in images:
        _image(tmp / "JPEGImages" / f"{stem}.jpg")
    (tmp / "Annotations").mkdir(parents=True, exist_ok=True)
    for stem, objs in objects.items():
        body = "".join(
            f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
            f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for n, *b in objs
        )
        xml = f"<annotation><filename>{stem}.jpg</filename>{body}</annotation>"
        (tmp / "Annotations" / f"{stem}.xml").write_text(xml)
    (tmp / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    ids = split_ids if split_ids is not None else sorted(set(images) | set(objects))
    (tmp / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return tmp


# ---------------------------------------------------------------- the shared policy


def test_repair_boxes_policy_counts_each_kind():
    report = DefectReport()
    boxes = np.array(
        [
            [10, 10, 20, 20],  # fine
            [-5, 10, 20, 20],  # clipped (5 px outside)
            [-0.5, 10, 20, 20],  # sub-pixel overshoot: clipped silently
            [70, 10, 90, 20],  # entirely outside (W = 64)
            [10, 10, 10, 20],  # zero width
            [10, 10, 20, 20],  # unknown class
        ],
        dtype=np.float64,
    )
    out, cls = repair_boxes(boxes, np.array([0, 1, 0, 0, 1, 7]), W, H, 2, report)
    assert dict(report.counts) == {"clipped": 1, "outside": 1, "zero_size": 1, "unknown_class": 1}
    np.testing.assert_array_equal(out, [[10, 10, 20, 20], [0, 10, 20, 20], [0, 10, 20, 20]])
    np.testing.assert_array_equal(cls, [0, 1, 0])
    assert out.dtype == np.float32 and cls.dtype == np.int64


def test_report_line_lists_counts_in_one_line():
    report = DefectReport()
    report.add("clipped", 3)
    report.add("zero_size", 2)
    report.add("label_without_image", 2)
    report.add("unreadable_image")
    line = report.line("/sets/x")
    assert line == (
        "data: /sets/x: repaired 3 boxes outside the image, skipped 2 zero-size boxes, "
        "2 label files without an image, 1 unreadable images"
    )
    assert "\n" not in line and DefectReport().line("/x") == ""
    with pytest.raises(KeyError, match="valid"):
        report.add("bogus")


# ---------------------------------------------------------------- COCO


def test_coco_box_defects(tmp_path):
    anns = [
        {"bbox": [10, 10, 20, 20]},  # fine
        {"bbox": [10, 10, 0, 20]},  # zero size
        {"bbox": [50, 10, 30, 20]},  # partly outside: clipped to x2 = 64
        {"bbox": [100, 100, 5, 5]},  # entirely outside
        {"bbox": [1, 1, 5, 5], "category_id": 42},  # unknown category
        {"bbox": [1, 1, 30, 30], "iscrowd": 1},  # crowd
        {"bbox": [1, 1, 5, 5], "image_id": 77},  # annotation without an image
        {"bbox": "oops"},  # malformed
    ]
    ds, text = _load_one_warning(load_coco, _coco(tmp_path, anns), tmp_path / "img")
    counts = ds.defects.counts
    assert counts == {
        "zero_size": 1, "clipped": 1, "outside": 1, "unknown_class": 1, "crowd": 1,
        "label_without_image": 1, "bad_label": 1,
    }  # fmt: skip
    a, b = ds.samples
    np.testing.assert_array_equal(a.boxes, [[10, 10, 30, 30], [50, 10, 64, 30]])
    assert b.num_boxes == 0  # background image kept
    assert ds.names == ["x", "y"] and ds.num_backgrounds == 1
    for phrase in ("skipped 1 crowd annotations", "skipped 1 zero-size boxes", "repaired 1"):
        assert phrase in text


def test_coco_unreadable_and_missing_images_are_skipped(tmp_path):
    images = [
        {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
        {"id": 2, "file_name": "bad.jpg", "width": W, "height": H},
        {"id": 3, "file_name": "gone.jpg", "width": W, "height": H},
    ]
    path = _coco(tmp_path, [{"bbox": [1, 1, 5, 5], "image_id": 2}], images, files={"a.jpg"})
    _corrupt(tmp_path / "img" / "bad.jpg")
    ds, text = _load_one_warning(load_coco, path, tmp_path / "img")
    assert [s.image_id for s in ds.samples] == [1]
    assert ds.defects["unreadable_image"] == 1 and ds.defects["missing_image"] == 1
    assert "1 unreadable images" in text and "1 listed images missing on disk" in text


def test_coco_unusable_sets_raise_naming_the_path(tmp_path):
    with pytest.raises(DatasetError, match="nope.json"):
        load_coco(tmp_path / "nope.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DatasetError, match="categories"):
        load_coco(bad, tmp_path)
    path = _coco(tmp_path, [], files=set())
    (tmp_path / "img").mkdir()
    with pytest.raises(DatasetError, match="no readable image.*2 listed images missing"):
        load_coco(path, tmp_path / "img")
    with pytest.raises(DatasetError, match="image folder"):
        load_coco(path, tmp_path / "missing")


# ---------------------------------------------------------------- YOLO


def test_yolo_box_defects(tmp_path):
    labels = {
        "a": "\n".join(
            [
                "0 0.5 0.5 0.25 0.25",  # fine
                "1 0.5 0.5 0 0.2",  # zero size
                "0 0.95 0.5 0.3 0.2",  # partly outside (x2 = 1.1 * W): clipped
                "1 1.5 1.5 0.2 0.2",  # entirely outside
                "5 0.5 0.5 0.1 0.1",  # unknown class id
                "0.5 0.5 0.5 0.1 0.1",  # non-integer class: unknown
                "garbage line",  # malformed
                "0 0.5 0.5",  # wrong column count
            ]
        ),
        "orphan": "0 0.5 0.5 0.1 0.1",  # label file without an image
    }
    ds, text = _load_one_warning(load_yolo, _yolo(tmp_path, labels), "train")
    assert ds.defects.counts == {
        "zero_size": 1, "clipped": 1, "outside": 1, "unknown_class": 2, "bad_label": 2,
        "label_without_image": 1,
    }  # fmt: skip
    a, b = ds.samples
    np.testing.assert_allclose(a.boxes, [[24, 18, 40, 30], [51.2, 19.2, 64, 28.8]], atol=1e-4)
    assert b.num_boxes == 0 and b.path.name == "b.jpg"  # no label file: background
    assert "1 label files without an image" in text


def test_yolo_unreadable_image_and_empty_label(tmp_path):
    yaml_path = _yolo(tmp_path, {"a": "", "bad": "0 0.5 0.5 0.2 0.2"})
    _corrupt(tmp_path / "images" / "train" / "bad.jpg")
    ds, text = _load_one_warning(load_yolo, yaml_path, "train")
    assert [s.path.name for s in ds.samples] == ["a.jpg", "b.jpg"]
    assert ds.num_backgrounds == 2 and ds.defects.counts == {"unreadable_image": 1}
    assert text.endswith("1 unreadable images")


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("path: .\ntrain: images/train\n", "'names'"),
        ("path: .\ntrain: images/train\nnames: {0: a, 2: b}\n", "'names' must map"),
        ("path: .\ntrain: images/train\nnames: [a]\nnc: 3\n", "'nc'"),
        ("path: nowhere\ntrain: images/train\nnames: [a]\n", "'path'"),
        ("path: .\ntrain: images/none\nnames: [a]\n", "'train'"),
        ("path: .\nval: images/train\nnames: [a]\n", "no key 'train'"),
        ("- just a list\n", "mapping"),
    ],
)
def test_yolo_bad_yaml_raises_naming_file_and_key(tmp_path, yaml_text, match):
    _image(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "data.yaml").write_text(yaml_text)
    with pytest.raises(DatasetError, match=match) as info:
        load_yolo(tmp_path / "data.yaml", "train")
    assert "data.yaml" in str(info.value)


def test_yolo_no_images_raises(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [a]\n")
    with pytest.raises(DatasetError, match="no readable image"):
        load_yolo(tmp_path / "data.yaml", "train")
    with pytest.raises(DatasetError, match="does not exist"):
        load_yolo(tmp_path / "missing.yaml", "train")


# ---------------------------------------------------------------- VOC


def test_voc_box_defects(tmp_path):
    objects = {
        "a": [
            ("x", 10, 10, 20, 20),  # fine
            ("x", 30, 30, 30, 40),  # zero size (xmin == xmax)
            ("y", 50, 10, 80, 20),  # partly outside: clipped to 64
            ("y", 100, 100, 120, 120),  # entirely outside
            ("z", 1, 1, 5, 5),  # unknown class name
            ("x", 1, 1, "?", 5),  # malformed coordinate
        ],
        "c": [("x", 1, 1, 5, 5)],  # annotation without an image
    }
    ds, text = _load_one_warning(load_voc, _voc(tmp_path, objects), "train", names=["x", "y"])
    assert ds.defects.counts == {
        "zero_size": 1, "clipped": 1, "outside": 1, "unknown_class": 1, "bad_label": 1,
        "label_without_image": 1,
    }  # fmt: skip
    a, b = ds.samples
    np.testing.assert_array_equal(a.boxes, [[10, 10, 20, 20], [50, 10, 64, 20]])
    np.testing.assert_array_equal(a.classes, [0, 1])
    assert b.num_boxes == 0  # b has no XML: background image
    assert "1 label files without an image" in text


def test_voc_unreadable_image_and_bad_xml(tmp_path):
    root = _voc(tmp_path, {"a": [("x", 1, 1, 9, 9)], "bad": [("x", 1, 1, 9, 9)]}, images=("a",))
    _corrupt(root / "JPEGImages" / "bad.jpg")
    (root / "Annotations" / "a.xml").write_text("<annotation><object>")  # broken XML
    (root / "Annotations" / "ok.xml").write_text("<annotation/>")
    _image(root / "JPEGImages" / "ok.jpg")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nbad\nok\n")
    ds, text = _load_one_warning(load_voc, root, "train")
    assert [s.path.name for s in ds.samples] == ["ok.jpg"]
    assert ds.defects.counts == {"bad_label": 1, "unreadable_image": 1}
    assert ds.names == ["x"]  # from the readable XML files


def test_voc_unusable_sets_raise(tmp_path):
    with pytest.raises(DatasetError, match="Annotations"):
        load_voc(tmp_path, "train")
    root = _voc(tmp_path, {"a": [("x", 1, 1, 9, 9)]})
    with pytest.raises(DatasetError, match="'test'.*splits: \\['train'\\]"):
        load_voc(root, "test")
    empty = _voc(tmp_path / "e", {"a": []})
    with pytest.raises(DatasetError, match="no classes"):
        load_voc(empty, "train")


# ---------------------------------------------------------------- decoding in the cache


def test_cache_turns_undecodable_image_into_grey_background(tmp_path):
    ok = _image(tmp_path / "ok.png")
    truncated = tmp_path / "trunc.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])  # header intact, pixels cut
    from nas.data import DetectionDataset, Sample

    samples = [
        Sample(1, ok, W, H, np.array([[1, 1, 9, 9]]), np.array([0])),
        Sample(2, truncated, W, H, np.array([[1, 1, 9, 9]]), np.array([0])),
    ]
    with pytest.warns(DataWarning, match="1 unreadable images"):
        cache = cache_images(DetectionDataset(["x"], samples, tmp_path), 64)
    assert len(cache.targets[0]) == 1 and len(cache.targets[1]) == 0
    assert torch.all(cache.images[1] == 114)
