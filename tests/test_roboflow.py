"""YOLO data.yaml layouts ultralytics accepts: Roboflow's export (``../train/images``, no
``path:``), relative ``path``, ``names`` as list or dict, ``nc`` present or not, ``test:``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from nas.data import DataConfig, DatasetError, load_splits, load_yolo, prepare_data

NAMES = ["cat", "dog", "bird"]


def _split(folder: Path, n: int, seed: int) -> None:
    """``folder/images/*.jpg`` + ``folder/labels/*.txt`` (one or two boxes each)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            folder / "images" / f"im{i}.jpg")  # fmt: skip
        lines = [f"{i % 3} 0.5 0.5 0.25 0.5"]
        if i % 2:
            lines.append(f"{(i + 1) % 3} 0.2 0.3 0.1 0.2")
        (folder / "labels" / f"im{i}.txt").write_text("\n".join(lines) + "\n")


def _roboflow(root: Path, **keys: object) -> Path:
    """A Roboflow export: data.yaml next to train/ valid/ test/, split keys ``../x/images``."""
    for name, n in (("train", 4), ("valid", 3), ("test", 2)):
        _split(root / name, n, seed=len(name))
    data = {"train": "../train/images", "val": "../valid/images", "test": "../test/images",
            "nc": len(NAMES), "names": NAMES,
            "roboflow": {"workspace": "w", "project": "p", "version": 1, "license": "CC BY 4.0",
                         "url": "https://universe.roboflow.com/w/p/dataset/1"}}  # fmt: skip
    data.update(keys)
    data = {k: v for k, v in data.items() if v is not None}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "data.yaml"


def test_roboflow_export_loads_from_another_working_directory(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    data_yaml = _roboflow(tmp_path / "ds")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    train = load_yolo(data_yaml, "train")
    assert train.names == NAMES and len(train.samples) == 4
    assert all(s.path.parent == (tmp_path / "ds" / "train" / "images").resolve()
               for s in train.samples)  # fmt: skip
    first = train.samples[0]  # class 0, centre box 0.25 x 0.5 of 64 x 48
    np.testing.assert_allclose(first.boxes, [[24.0, 12.0, 40.0, 36.0]])
    assert first.classes.tolist() == [0]
    val = load_yolo(data_yaml, "val")
    assert len(val.samples) == 3 and sum(len(s.classes) for s in val.samples) == 4

    cfg = DataConfig.from_dict({"format": "yolo", "path": str(data_yaml)})
    train, val = load_splits(cfg)
    assert (len(train.samples), len(val.samples)) == (4, 3)
    data = prepare_data(cfg, imgsz=64)
    assert data.names == NAMES and data.train.images.shape == (4, 3, 64, 64)


def test_test_split_is_ignored_for_training(tmp_path: Path) -> None:
    data_yaml = _roboflow(tmp_path, test="../no_such_split/images")
    train, val = load_splits(DataConfig(format="yolo", path=str(data_yaml)))
    assert (len(train.samples), len(val.samples)) == (4, 3)


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        ({"nc": None}, NAMES),  # nc absent
        ({"names": {0: "cat", 1: "dog", 2: "bird"}}, NAMES),  # dict with int keys
        ({"names": {"0": "cat", "1": "dog", "2": "bird"}, "nc": None}, NAMES),  # str keys
        ({"names": None, "nc": 3}, ["class_0", "class_1", "class_2"]),  # nc only
    ],
)
def test_names_as_list_or_dict_nc_optional(tmp_path: Path, keys: dict, names: list) -> None:
    assert load_yolo(_roboflow(tmp_path, **keys), "train").names == names


def test_relative_path_is_relative_to_the_yaml_and_dotdot_resolves_there_first(
    tmp_path: Path,
) -> None:
    _roboflow(tmp_path / "ds")
    configs = tmp_path / "ds" / "configs"
    configs.mkdir()
    nested = configs / "data.yaml"  # ../train/images exists relative to configs/: no fallback
    nested.write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images",
                                      "names": NAMES}))  # fmt: skip
    assert len(load_yolo(nested, "train").samples) == 4
    rooted = tmp_path / "rooted.yaml"  # a relative path: key, relative to the yaml's folder
    rooted.write_text(yaml.safe_dump({"path": "ds", "train": "train/images",
                                      "val": "valid/images", "names": NAMES}))  # fmt: skip
    assert len(load_yolo(rooted, "val").samples) == 3


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({"nc": 5}, "'nc' is 5 but 'names' has 3 entries"),
        ({"nc": "three"}, "'nc' must be a positive integer, got 'three'"),
        ({"names": {1: "a", 2: "b"}}, "must map 0..1 to names"),
        ({"names": None, "nc": None}, "key 'names' must be a non-empty list or dict"),
        ({"val": "../nowhere/images"}, r"key 'val': '\.\./nowhere/images' -> .*also tried"),
    ],
)
def test_bad_data_yaml_names_the_key(tmp_path: Path, keys: dict, match: str) -> None:
    data_yaml = _roboflow(tmp_path, **keys)
    with pytest.raises(DatasetError, match=match):
        load_splits(DataConfig(format="yolo", path=str(data_yaml)))
