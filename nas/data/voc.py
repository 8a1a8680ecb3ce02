"""Pascal VOC loader: ``Annotations/<id>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

Boxes are read as given (``xmin ymin xmax ymax`` used directly as pixel coordinates, the
torchvision convention), so a box with ``xmin == xmax`` is a zero-size box. ``difficult``
objects are kept. The image is ``JPEGImages/<filename>`` from the XML (default ``<id>.jpg``);
its size is read from the image file, not the XML. An id without an XML file is a background
image; an XML whose image is missing counts as a label file without an image.

Class names: given explicitly (``names=``) or, by default, the sorted set of object names over
**all** XML files in ``Annotations/``, so every split gets the same class indices.

Example:
    >>> ds = load_voc("bccd", "train")  # doctest: +SKIP
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from nas.data.defects import (
    DatasetError,
    DefectReport,
    checked_image_size,
    finish_dataset,
    repair_boxes,
)
from nas.data.records import DetectionDataset, Sample

__all__ = ["load_voc", "voc_class_names"]


def _parse(xml: Path) -> tuple[str | None, list[tuple[str, list[float] | None]]]:
    """``(filename or None, [(class name, [xmin, ymin, xmax, ymax] or None if malformed)])``."""
    root = ET.parse(xml).getroot()
    objects: list[tuple[str, list[float] | None]] = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        try:
            coords = [float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, ValueError):
            coords = None
        objects.append((name, coords))
    filename = (root.findtext("filename") or "").strip() or None
    return filename, objects


def voc_class_names(root: str | Path) -> list[str]:
    """Sorted object names over every readable XML file of ``root/Annotations``."""
    found: set[str] = set()
    for xml in sorted(Path(root, "Annotations").glob("*.xml")):
        try:
            found.update(name for name, _ in _parse(xml)[1] if name)
        except (ET.ParseError, OSError):
            continue
    return sorted(found)


def load_voc(
    root: str | Path,
    split: str = "train",
    *,
    names: list[str] | None = None,
    warn: bool = True,
) -> DetectionDataset:
    """Load one split of a Pascal VOC folder.

    Args:
        root: Folder holding ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/``.
        split: Split name: ``ImageSets/Main/<split>.txt`` lists the image ids.
        names: Class names in index order (default: ``voc_class_names(root)``). Objects of
            other names are counted as unknown classes.
        warn: Emit the one-line defect warning.

    Returns:
        The dataset (``root`` = ``root/JPEGImages``), image ids 1..N in list order.

    Raises:
        DatasetError: Missing folder or split list, no classes, or no readable image.
    """
    root = Path(root)
    for sub in ("Annotations", "JPEGImages"):
        if not (root / sub).is_dir():
            raise DatasetError(f"voc: {root} has no {sub}/ folder")
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt"))
        raise DatasetError(
            f"voc: split {split!r}: {split_file} does not exist (splits: {available})"
        )
    names = list(names) if names is not None else voc_class_names(root)
    if not names:
        raise DatasetError(f"voc: {root}/Annotations holds no object names (no classes)")
    index_of = {n: i for i, n in enumerate(names)}
    report = DefectReport()
    samples = []
    image_dir = root / "JPEGImages"
    for line in split_file.read_text().splitlines():
        image_id = line.split()[0] if line.split() else ""
        if not image_id:
            continue
        xml = root / "Annotations" / f"{image_id}.xml"
        objects: list[tuple[str, list[float] | None]] = []
        filename = None
        if xml.is_file():
            try:
                filename, objects = _parse(xml)
            except (ET.ParseError, OSError):
                report.add("bad_label")
                continue
        path = image_dir / (filename or f"{image_id}.jpg")
        if not path.is_file() and filename:  # XML filename stale: fall back to the id
            path = image_dir / f"{image_id}.jpg"
        missing = "label_without_image" if xml.is_file() else "missing_image"
        size = checked_image_size(path, report, missing)
        if size is None:
            continue
        report.add("bad_label", sum(1 for _, c in objects if c is None))
        good = [(n, c) for n, c in objects if c is not None]
        raw_boxes = np.array([c for _, c in good], dtype=np.float64).reshape(-1, 4)
        raw_classes = np.array([index_of.get(n, -1) for n, _ in good], dtype=np.int64)
        boxes, classes = repair_boxes(raw_boxes, raw_classes, *size, len(names), report)
        samples.append(Sample(len(samples) + 1, path, size[0], size[1], boxes, classes))
    return finish_dataset(
        names,
        samples,
        image_dir,
        report,
        source=f"{root} [{split}]",
        no_image=f"voc: split {split!r} of {root} has no readable image",
        nothing_counted="empty split list",
        warn=warn,
    )
