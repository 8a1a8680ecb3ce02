"""The three formats on the shared real datasets, the COCO round trip, subsets and the config."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from nas.data import (
    DataConfig,
    DatasetError,
    DataWarning,
    DetectionDataset,
    Sample,
    category_id,
    class_index,
    image_to_label_path,
    load_coco,
    load_splits,
    load_voc,
    load_yolo,
    save_coco,
    subset_indices,
)
from nas.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
COCO128 = SHARED / "coco128"
BCCD = SHARED / "bccd"
needs_coco128 = pytest.mark.skipif(not COCO128.is_dir(), reason=f"{COCO128} absent")
needs_bccd = pytest.mark.skipif(not BCCD.is_dir(), reason=f"{BCCD} absent")


def _warnings_of(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def _match(a: Sample, b: Sample) -> float:
    """Largest distance between boxes of a and their nearest same-class box in b (1:1)."""
    assert a.num_boxes == b.num_boxes
    free = np.ones(b.num_boxes, dtype=bool)
    worst = 0.0
    for box, cls in zip(a.boxes, a.classes, strict=True):
        dist = np.where(free & (b.classes == cls), np.abs(b.boxes - box).max(1), np.inf)
        j = int(np.argmin(dist))
        assert np.isfinite(dist[j]), (a.path, cls)
        free[j] = False
        worst = max(worst, float(dist[j]))
    return worst


# ---------------------------------------------------------------- real datasets


@needs_coco128
def test_coco128_yolo_counts():
    ds, texts = _warnings_of(load_yolo, COCO128 / "coco128.yaml", "train")
    assert len(ds) == 128 and ds.num_classes == 80 and ds.num_boxes == 929
    assert ds.num_backgrounds == 2
    assert {s.path.stem for s in ds.samples if s.num_boxes == 0} == {
        "000000000250",
        "000000000508",
    }
    assert ds.defects.counts == {"label_without_image": 2}
    assert texts == [f"data: {COCO128 / 'coco128.yaml'} [train]: 2 label files without an image"]
    assert (np.count_nonzero(ds.class_counts()), ds.names[0], ds.names[79]) == (
        71,
        "person",
        "toothbrush",
    )


@needs_coco128
def test_coco128_coco_json_counts_and_agrees_with_yolo():
    ann = COCO128 / "annotations" / "instances_train2017.json"
    coco, texts = _warnings_of(load_coco, ann, COCO128 / "images" / "train2017")
    assert len(coco) == 128 and coco.num_boxes == 929 and coco.num_backgrounds == 2
    assert coco.defects.counts == {"crowd": 10}
    assert len(texts) == 1 and "skipped 10 crowd annotations" in texts[0]
    yolo = load_yolo(COCO128 / "coco128.yaml", "train", warn=False)
    assert coco.names == yolo.names  # ids 1-90 with gaps -> contiguous 0-79
    by_name = {s.path.name: s for s in yolo.samples}
    worst = max(_match(s, by_name[s.path.name]) for s in coco.samples)
    assert worst < 1.0
    assert [s.image_id for s in coco.samples][:2] == [9, 25]  # COCO image ids kept


@needs_bccd
def test_bccd_voc_splits_and_zero_size_boxes():
    train, t_warn = _warnings_of(load_voc, BCCD, "train")
    val, v_warn = _warnings_of(load_voc, BCCD, "val")
    assert (len(train), len(val)) == (205, 87)
    assert train.names == val.names == ["Platelets", "RBC", "WBC"]
    assert train.defects["zero_size"] + val.defects["zero_size"] == 2
    assert len(t_warn) + len(v_warn) == 2 and all("zero-size" in t for t in t_warn + v_warn)
    assert train.num_boxes + val.num_boxes == 2804 + 1137
    assert {s.width for s in train.samples} == {640}


@needs_coco128
@needs_bccd
@pytest.mark.parametrize(("name", "sizes"), [("coco128", (128, 128)), ("bccd", (205, 87))])
def test_shipped_configs_load_the_shared_data(name, sizes, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("LITEYOLO_DATA", raising=False)
    cfg = OmegaConf.to_container(
        OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml"), resolve=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        train, val = load_splits(DataConfig.from_dict(cfg))
    assert (len(train), len(val)) == sizes


# ---------------------------------------------------------------- COCO round trip


def _images(tmp: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = tmp / "imgs" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), np.uint8)).save(path)
        paths.append(path)
    return paths


def test_to_coco_round_trip_gives_identical_samples(tmp_path):
    paths = _images(tmp_path, 4)
    boxes = [[[1.25, 2.5, 10.75, 20.125], [0, 0, 40, 30]], [], [[3.3, 4.4, 5.5, 6.6]], []]
    samples = [
        Sample(100 + i, p, 40, 30 + i, np.array(b).reshape(-1, 4), np.arange(len(b)) % 3)
        for i, (p, b) in enumerate(zip(paths, boxes, strict=True))
    ]
    ds = DetectionDataset(["a", "b", "c"], samples, tmp_path / "imgs")
    coco = ds.to_coco()
    assert [c["id"] for c in coco["categories"]] == [category_id(i) for i in range(3)] == [1, 2, 3]
    assert class_index(category_id(2)) == 2
    assert coco["images"][0]["file_name"] == "0.png"
    back = load_coco(save_coco(ds, tmp_path / "gt.json"), tmp_path / "imgs")
    assert back.names == ds.names and back.samples == ds.samples and not back.defects


def test_coco_arbitrary_category_ids_map_to_contiguous_indices(tmp_path):
    (path,) = _images(tmp_path, 1)
    cats = [{"id": 90, "name": "z"}, {"id": 3, "name": "a"}, {"id": 7, "name": "m"}]
    anns = [
        {"id": 1, "image_id": 5, "category_id": c, "bbox": [1, 2, 3, 4], "iscrowd": 0}
        for c in (90, 3, 7)
    ]
    images = [{"id": 5, "file_name": path.name, "width": 40, "height": 30}]
    (tmp_path / "a.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    ds = load_coco(tmp_path / "a.json", path.parent)
    assert ds.names == ["a", "m", "z"]
    assert ds.samples[0].classes.tolist() == [2, 0, 1]
    again = load_coco(save_coco(ds, tmp_path / "b.json"), path.parent)
    assert again.samples == ds.samples and again.names == ds.names


@needs_coco128
def test_coco128_round_trip(tmp_path):
    ds = load_yolo(COCO128 / "coco128.yaml", "train", warn=False)
    back = load_coco(save_coco(ds, tmp_path / "c.json"), ds.root)
    assert back.samples == ds.samples and back.names == ds.names


# ---------------------------------------------------------------- YOLO and VOC variants


def test_yolo_txt_lists_dict_names_and_polygons(tmp_path):
    paths = _images(tmp_path / "images" / "set", 3)
    labels = tmp_path / "labels" / "set" / "imgs"
    labels.mkdir(parents=True)
    (labels / "0.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (labels / "1.txt").write_text("0 0.1 0.2 0.6 0.2 0.35 0.8\n")  # polygon -> its bbox
    (tmp_path / "list.txt").write_text(f"./images/set/imgs/0.png\n{paths[1]}\n")
    (tmp_path / "d.yaml").write_text(
        "train: list.txt\nval: [images/set/imgs]\nnames: {0: cat, 1: dog}\n"
    )
    train = load_yolo(tmp_path / "d.yaml", "train")
    assert train.names == ["cat", "dog"] and len(train) == 2
    np.testing.assert_allclose(train[0].boxes, [[10, 7.5, 30, 22.5]])
    np.testing.assert_allclose(train[1].boxes, [[4, 6.2, 24, 24.8]], atol=1e-5)
    val = load_yolo(tmp_path / "d.yaml", "val")
    assert len(val) == 3 and val.num_backgrounds == 1 and not val.defects
    assert image_to_label_path(Path("/d/images/a/images/x.jpg")) == Path(
        "/d/images/a/labels/x.txt"
    )


def test_voc_names_default_sorted_or_given(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    for stem, name in (("p", "zebra"), ("q", "ant")):
        Image.new("RGB", (20, 10)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><object><name>{name}</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
            "<xmax>5</xmax><ymax>8</ymax></bndbox></object></annotation>"
        )
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("p\n")
    ds = load_voc(tmp_path, "train")  # names over all XML files, not just this split
    assert ds.names == ["ant", "zebra"] and ds[0].classes.tolist() == [1]
    np.testing.assert_array_equal(ds[0].boxes, [[1, 2, 5, 8]])
    assert load_voc(tmp_path, "train", names=["zebra", "ant"])[0].classes.tolist() == [0]


# ---------------------------------------------------------------- subset sampler


def _toy(n: int = 60, nc: int = 7) -> DetectionDataset:
    rng = np.random.default_rng(1)
    samples = []
    for i in range(n):
        k = int(rng.integers(0, 3))
        # class 6 is rare: only image 41 has it
        classes = [6] if i == 41 else rng.integers(0, nc - 1, k).tolist()
        samples.append(Sample(i, Path(f"{i}.jpg"), 50, 50, [[1, 1, 9, 9]] * len(classes), classes))
    return DetectionDataset([f"c{i}" for i in range(nc)], samples)


def test_subset_is_deterministic_and_covers_all_classes():
    ds = _toy()
    for n in (7, 10, 25):
        idx = subset_indices(ds, n, seed=3)
        assert len(idx) == n and len(set(idx.tolist())) == n
        assert np.array_equal(idx, np.sort(idx))
        assert np.array_equal(idx, subset_indices(ds, n, seed=3))
        present = set(np.concatenate([ds[i].classes for i in idx]).tolist())
        assert present == set(range(7)), n
    assert not np.array_equal(subset_indices(ds, 10, seed=3), subset_indices(ds, 10, seed=4))
    assert np.array_equal(subset_indices(ds, 100, seed=0), np.arange(60))
    with pytest.raises(ValueError, match="n must be"):
        subset_indices(ds, 0)


@needs_coco128
def test_subset_of_coco128_covers_its_71_classes():
    ds = load_yolo(COCO128 / "coco128.yaml", "train", warn=False)
    idx = subset_indices(ds, 64, seed=0)
    present = np.unique(np.concatenate([ds[i].classes for i in idx]))
    assert len(idx) == 64 and len(present) == 71


# ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"format": "tfrecord"}, "format='tfrecord' is not one of"),
        ({"bogus": 1}, "data: unknown keys \\['bogus'\\]; valid: \\['format'"),
        ({"synthetic": {"sizes": 3}}, "data.synthetic: unknown keys \\['sizes'\\]"),
        ({"synthetic": {"num_train": "many"}}, "data.synthetic.num_train: 'many' is not an int"),
        ({"augment": {"flip": 0.5}}, "data.augment: augmentation is a training setting"),
        ({"format": "yolo"}, "needs key 'path'"),
        ({"format": "voc", "path": "???"}, "key 'path' must be set"),
        ({"format": "coco", "path": "x"}, "train_images"),
        ({"train_subset": 0}, "train_subset=0"),
    ],
)
def test_data_config_errors_name_the_key(values, match):
    with pytest.raises(UserError, match=match):  # a ConfigError or a DatasetError
        DataConfig.from_dict(values)


def test_load_splits_rejects_mismatched_class_names(tmp_path):
    (path,) = _images(tmp_path, 1)
    for name, cls in (("t.json", "a"), ("v.json", "b")):
        coco = {
            "images": [{"id": 1, "file_name": path.name, "width": 40, "height": 30}],
            "annotations": [],
            "categories": [{"id": 1, "name": cls}],
        }
        (tmp_path / name).write_text(json.dumps(coco))
    cfg = DataConfig(
        format="coco", path=str(tmp_path), train="t.json", val="v.json",
        train_images="imgs", val_images="imgs",
    )  # fmt: skip
    with pytest.raises(DatasetError, match="class names differ"):
        load_splits(cfg)
