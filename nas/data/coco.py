"""COCO json loader (through pycocotools' ``COCO``).

Category ids may be arbitrary (COCO uses 1-90 with gaps): categories are sorted by id and
mapped to contiguous class indices 0..C-1, names kept. ``DetectionDataset.to_coco()`` then
writes category id = class index + 1, so a dataset written by ``to_coco`` and reloaded gives
identical samples. Image ids are kept. Every category of the json is a class, even one without
annotations. Defects are handled by ``nas.data.defects``'s policy; crowd annotations
(``iscrowd=1``) are skipped from the targets and counted.

Example:
    >>> ds = load_coco("annotations/instances_val.json", "images/val")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from nas.data.defects import (
    DatasetError,
    DefectReport,
    checked_image_size,
    finish_dataset,
    repair_boxes,
)
from nas.data.records import DetectionDataset, Sample

__all__ = ["load_coco", "save_coco"]


def _read(annotation_file: Path) -> COCO:
    if not annotation_file.is_file():
        raise DatasetError(f"coco: annotation file {annotation_file} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(annotation_file))
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise DatasetError(f"coco: {annotation_file} is not a COCO json file: {e}") from e
    for key in ("images", "categories"):
        if key not in coco.dataset:
            raise DatasetError(f"coco: {annotation_file} has no {key!r} key")
    if not coco.dataset["categories"]:
        raise DatasetError(f"coco: {annotation_file} has no categories ('categories' is empty)")
    return coco


def load_coco(
    annotation_file: str | Path, image_dir: str | Path, *, warn: bool = True
) -> DetectionDataset:
    """Load a COCO detection json whose ``file_name`` entries are relative to ``image_dir``.

    Args:
        annotation_file: The COCO json.
        image_dir: Folder the image ``file_name`` entries are relative to (absolute
            ``file_name`` entries are used as they are).
        warn: Emit the one-line defect warning.

    Returns:
        The dataset (``root = image_dir``), images sorted by image id.

    Raises:
        DatasetError: The json or the image folder is missing or unusable, or no image is
            readable.
    """
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    coco = _read(annotation_file)
    if not image_dir.is_dir():
        raise DatasetError(f"coco: image folder {image_dir} does not exist ({annotation_file})")
    cat_ids = sorted(int(c["id"]) for c in coco.dataset["categories"])
    index_of = {cid: i for i, cid in enumerate(cat_ids)}
    names = [str(coco.cats[c]["name"]) for c in cat_ids]
    report = DefectReport()
    known_images = set(coco.imgs)
    report.add(
        "label_without_image",
        sum(1 for a in coco.dataset.get("annotations", []) if a["image_id"] not in known_images),
    )
    samples = []
    for image_id in sorted(coco.imgs):
        info = coco.imgs[image_id]
        path = image_dir / str(info["file_name"])
        size = checked_image_size(path, report)
        if size is None:
            continue
        width, height = size
        boxes, classes = [], []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                report.add("crowd")
                continue
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                cls = index_of.get(int(ann["category_id"]), -1)
            except (KeyError, TypeError, ValueError):
                report.add("bad_label")
                continue
            boxes.append([x, y, x + w, y + h])
            classes.append(cls)
        b, c = repair_boxes(np.array(boxes), np.array(classes), width, height, len(names), report)
        samples.append(Sample(int(image_id), path, width, height, b, c))
    return finish_dataset(
        names,
        samples,
        image_dir,
        report,
        source=annotation_file,
        no_image=f"coco: no readable image of {annotation_file} found under {image_dir}",
        nothing_counted="no images listed",
        warn=warn,
    )


def save_coco(dataset: DetectionDataset, annotation_file: str | Path) -> Path:
    """Write ``dataset.to_coco()`` to a json file (``file_name`` relative to ``dataset.root``)."""
    annotation_file = Path(annotation_file)
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    annotation_file.write_text(json.dumps(dataset.to_coco()))
    return annotation_file
