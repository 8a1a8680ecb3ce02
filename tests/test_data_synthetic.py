"""The built-in synthetic dataset: determinism, on-disk cache, correct boxes, learnable sizes."""

from __future__ import annotations

import colorsys
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import DataConfig, SyntheticConfig, ensure_synthetic, generate_synthetic, load_coco
from nas.data.config import load_splits
from nas.data.synthetic import _HUES, GENERATOR_VERSION, SHAPES, render_image

TINY = SyntheticConfig(num_train=6, num_val=3, image_size=96, min_size=8.0, seed=5)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic(TINY, tmp_path / "a")
    b = generate_synthetic(TINY, tmp_path / "b")
    c = generate_synthetic(
        SyntheticConfig(**{**TINY.__dict__, "seed": 6}), tmp_path / "c"
    )  # fmt: skip
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert len(list((a / "images" / "train").glob("*.jpg"))) == 6
    assert len(list((a / "images" / "val").glob("*.jpg"))) == 3


def test_ensure_synthetic_caches_by_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = ensure_synthetic(TINY)  # default root: data/synthetic under the cwd
    assert folder == tmp_path / "data" / "synthetic" / TINY.key()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["params"]["seed"] == 5
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert ensure_synthetic(TINY, tmp_path / "data" / "synthetic") == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # not regenerated
    other = SyntheticConfig(**{**TINY.__dict__, "clutter": 0.9})
    assert other.key() != TINY.key()
    assert ensure_synthetic(other) != folder
    # a stale manifest (e.g. another generator version) triggers regeneration
    (folder / "manifest.json").write_text(json.dumps({"generator_version": -1}))
    (folder / "images" / "train" / "000000.jpg").unlink()
    assert ensure_synthetic(TINY) == folder
    assert (folder / "images" / "train" / "000000.jpg").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_boxes_sit_on_objects_of_the_class_colour(tmp_path):
    cfg = SyntheticConfig(num_train=30, num_val=1, image_size=128, seed=1)
    folder = generate_synthetic(cfg, tmp_path)
    ds = load_coco(folder / "annotations" / "train.json", folder / "images" / "train")
    assert ds.names == list(SHAPES[:4]) and ds.num_boxes > 60
    checked = 0
    for sample in ds.samples:
        if not sample.num_boxes:
            continue
        # the last object is drawn on top of all others, so its centre shows its own colour
        box, cls = sample.boxes[-1], int(sample.classes[-1])
        if min(box[2] - box[0], box[3] - box[1]) < 14:
            continue
        img = np.asarray(Image.open(sample.path), dtype=np.float32) / 255
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        r, g, b = np.median(img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3), 0)
        hue, sat, val = colorsys.rgb_to_hsv(r, g, b)
        diff = abs((hue * 360 - _HUES[cls] + 180) % 360 - 180)
        assert diff < cfg.hue_jitter + 12 and sat > 0.45 and val > 0.45, (sample.path, cls)
        checked += 1
    assert checked >= 15


def test_boxes_are_the_tight_extent_of_the_drawn_pixels():
    # one object on a clean background: the saturated pixels are exactly the object
    cfg = SyntheticConfig(min_objects=1, max_objects=1, clutter=0.0, image_size=128, min_size=8)
    shapes = set()
    for i in range(40):
        img, boxes, classes = render_image(cfg, np.random.default_rng([7, i]))
        if not len(boxes):
            continue
        rgb = np.asarray(img, dtype=np.float32) / 255
        hi, lo = rgb.max(2), rgb.min(2)
        ys, xs = np.nonzero((hi - lo) / np.maximum(hi, 1e-6) > 0.55)
        np.testing.assert_array_equal(
            boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], err_msg=f"image {i}"
        )
        shapes.add(int(classes[0]))
    assert shapes == {0, 1, 2, 3}


def test_default_parameters_are_learnable_sizes():
    cfg = SyntheticConfig()
    sides, counts = [], []
    for i in range(60):
        _, boxes, classes = render_image(cfg, np.random.default_rng([0, 9, i]))
        counts.append(len(boxes))
        sides += (np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])).tolist()
        assert classes.max(initial=0) < cfg.num_classes
        assert np.all(boxes >= 0) and np.all(boxes <= cfg.image_size)
    sides_at_256 = np.array(sides) * 256 / cfg.image_size
    assert np.mean(sides_at_256 >= 12) > 0.85  # mostly >= 12 px at the 256 px training size
    assert sides_at_256.min() >= 8 and sides_at_256.max() <= 0.34 * 256 + 1
    assert 3 <= np.mean(counts) <= 7  # several objects per image


def test_load_splits_synthetic_default_format(tmp_path):
    cfg = DataConfig.from_dict({"path": str(tmp_path), "synthetic": {**TINY.__dict__}})
    train, val = load_splits(cfg)
    assert len(train) == 6 and len(val) == 3 and train.names == val.names
    assert not train.defects and not val.defects  # generated data has no defects
    sub = DataConfig.from_dict(
        {"path": str(tmp_path), "synthetic": {**TINY.__dict__}, "train_subset": 4}
    )
    assert len(load_splits(sub)[0]) == 4


@pytest.mark.parametrize(
    "bad",
    [{"num_classes": 6}, {"min_objects": 5, "max_objects": 2}, {"clutter": 2.0},
     {"min_size": 200.0}],
)  # fmt: skip
def test_synthetic_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SyntheticConfig(**bad)
