"""YOLO (ultralytics) loader: a ``data.yaml`` plus one label txt file per image.

``data.yaml`` keys (what ultralytics accepts):
    - ``path``: dataset root; relative paths are relative to the yaml's folder (absent: that
      folder).
    - ``train`` / ``val`` / ``test``: a folder of images (searched recursively), a ``.txt`` file
      listing image paths, or a list of those; relative to ``path``. An entry starting with
      ``../`` that does not exist there is tried without it (Roboflow's exports say
      ``train: ../train/images`` next to ``train/``, ``valid/``, ``test/``, with no ``path``).
      Lines of a txt list that start with ``./`` are relative to the txt's folder (as in
      ultralytics), other relative lines relative to ``path``. Only the split asked for is
      read (``test`` is ignored for training).
    - ``names``: a list, or a dict ``{0: name, 1: name, ...}`` with keys 0..C-1 (ints or digit
      strings); ``nc`` (optional) must equal the number of names. With ``nc`` and no
      ``names`` the classes are ``class_0``..``class_{nc-1}``. Other keys (``roboflow``,
      ``download``...) are ignored.

Labels: the label file of ``.../images/.../x.jpg`` is ``.../labels/.../x.txt`` (the last
``/images/`` replaced, as ultralytics does); each line ``class xc yc w h`` normalised to 0..1,
or ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon, whose bounding box is used). A missing or empty
label file makes a background image. Label files without an image are counted only for folder
splits (a txt list does not say which images the label folder should hold).

Example:
    >>> ds = load_yolo("coco128/coco128.yaml", "train")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nas.data.defects import (
    DatasetError,
    DefectReport,
    checked_image_size,
    finish_dataset,
    repair_boxes,
)
from nas.data.records import DetectionDataset, Sample

__all__ = ["IMAGE_SUFFIXES", "image_to_label_path", "load_yolo", "read_data_yaml"]

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"}
)


def image_to_label_path(image: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (ultralytics' ``img2label_paths``)."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = str(image)
    if sa in text:
        head, tail = text.rsplit(sa, 1)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def read_data_yaml(data_yaml: str | Path) -> dict[str, Any]:
    """Read and check a ``data.yaml``: returns it with ``path`` (absolute) and ``names`` (list).

    Raises:
        DatasetError: Missing file, not a mapping, missing or bad ``names`` / ``nc``.
    """
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise DatasetError(f"yolo: data yaml {data_yaml} does not exist")
    try:
        data = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as e:
        raise DatasetError(f"yolo: {data_yaml} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"yolo: {data_yaml} must be a mapping with keys path/train/val/names")
    names = _class_names(data_yaml, data.get("names"), data.get("nc"))
    root = Path(data.get("path") or ".")
    if not root.is_absolute():
        root = data_yaml.parent / root
    if not root.is_dir():
        raise DatasetError(f"yolo: {data_yaml}: key 'path' -> {root} is not a folder")
    return {**data, "path": root.resolve(), "names": names}


def _class_names(data_yaml: Path, names: Any, nc: Any) -> list[str]:
    """``names`` as a list (from a list or a 0..C-1 dict), checked against ``nc``."""
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise DatasetError(f"yolo: {data_yaml}: key 'nc' must be a positive integer, got {nc!r}")
    if names is None and nc is not None:
        return [f"class_{i}" for i in range(nc)]
    if isinstance(names, dict):
        try:
            by_index = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            by_index = {}
        if not by_index or sorted(by_index) != list(range(len(by_index))):
            raise DatasetError(
                f"yolo: {data_yaml}: key 'names' must map 0..{len(names) - 1} to names, "
                f"got keys {list(names)}"
            )
        names = [by_index[i] for i in range(len(by_index))]
    if not isinstance(names, list) or not names:
        raise DatasetError(
            f"yolo: {data_yaml}: key 'names' must be a non-empty list or dict of class names "
            f"(or give 'nc'), got {names!r}"
        )
    if nc is not None and nc != len(names):
        raise DatasetError(f"yolo: {data_yaml}: 'nc' is {nc} but 'names' has {len(names)} "
                           f"entries; they must agree")  # fmt: skip
    return [str(n) for n in names]


def _split_path(root: Path, item: str) -> Path:
    """An entry of a split key: under ``root``; a missing ``../x`` falls back to ``x``."""
    p = Path(item)
    if p.is_absolute():
        return p
    resolved = root / p
    if not resolved.exists() and item.startswith("../"):
        fallback = root / item[3:]
        if fallback.exists():
            return fallback
    return resolved


def _split_images(
    data_yaml: Path, root: Path, split: str, entry: Any
) -> tuple[list[Path], list[Path]]:
    """Image files of a split and the image folders it names (for orphan label files)."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    folders: list[Path] = []
    for item in entries:
        p = _split_path(root, str(item))
        if p.is_dir():
            folders.append(p)
            images += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                if line.startswith("./"):
                    images.append(p.parent / line[2:])
                else:
                    q = Path(line)
                    images.append(q if q.is_absolute() else root / q)
        else:
            tried = f" (also tried {root / str(item)[3:]})" if str(item).startswith("../") else ""
            raise DatasetError(
                f"yolo: {data_yaml}: key {split!r}: {item!r} -> {p} is neither a folder nor a "
                f".txt list{tried}"
            )
    return images, folders


def _parse_labels(
    label: Path, width: int, height: int, report: DefectReport
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (xyxy px) and raw classes (-1 for a non-integer class) of one label file."""
    boxes, classes = [], []
    try:
        lines = label.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        report.add("bad_label")
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            report.add("bad_label")
            continue
        if len(values) == 5:
            xc, yc, w, h = values[1:]
            box = [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]
        elif len(values) >= 7 and len(values) % 2 == 1:
            xy = np.array(values[1:]).reshape(-1, 2)
            box = [*xy.min(0).tolist(), *xy.max(0).tolist()]
        else:
            report.add("bad_label")
            continue
        cls = values[0]
        boxes.append([box[0] * width, box[1] * height, box[2] * width, box[3] * height])
        classes.append(int(cls) if cls.is_integer() else -1)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(classes, dtype=np.int64)


def load_yolo(
    data_yaml: str | Path, split: str = "train", *, warn: bool = True
) -> DetectionDataset:
    """Load one split of a YOLO dataset.

    Args:
        data_yaml: The ``data.yaml`` file.
        split: Key of the split in the yaml (``train``, ``val``, ``test``).
        warn: Emit the one-line defect warning.

    Returns:
        The dataset (``root`` = the yaml's ``path``), image ids 1..N in file order.

    Raises:
        DatasetError: Bad yaml, missing split key or folder, or no readable image.
    """
    data_yaml = Path(data_yaml)
    data = read_data_yaml(data_yaml)
    if not data.get(split):
        raise DatasetError(
            f"yolo: {data_yaml} has no key {split!r} (keys: {sorted(map(str, data))})"
        )
    root, names = data["path"], data["names"]
    images, folders = _split_images(data_yaml, root, split, data[split])
    report = DefectReport()
    samples = []
    for path in images:
        size = checked_image_size(path, report)
        if size is None:
            continue
        label = image_to_label_path(path)
        if label.is_file():
            raw_boxes, raw_classes = _parse_labels(label, *size, report)
        else:
            raw_boxes, raw_classes = np.zeros((0, 4)), np.zeros(0, np.int64)
        boxes, classes = repair_boxes(raw_boxes, raw_classes, *size, len(names), report)
        samples.append(Sample(len(samples) + 1, path, size[0], size[1], boxes, classes))
    stems = {p.with_suffix("") for p in images}
    for folder in folders:
        label_dir = image_to_label_path(folder / "x.jpg").parent
        if label_dir.is_dir():
            orphans = [
                f
                for f in label_dir.rglob("*.txt")
                if (folder / f.relative_to(label_dir)).with_suffix("") not in stems
            ]
            report.add("label_without_image", len(orphans))
    return finish_dataset(
        names,
        samples,
        root,
        report,
        source=f"{data_yaml} [{split}]",
        no_image=f"yolo: {data_yaml}: split {split!r} has no readable image",
        nothing_counted="no images found",
        warn=warn,
    )
