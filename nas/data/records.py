"""The one internal form of a detection dataset: ``Sample`` and ``DetectionDataset``.

Every loader (COCO json, YOLO txt, Pascal VOC XML, the synthetic generator) produces a
``DetectionDataset``; everything downstream (subset, cache, batches, evaluation) reads only this.

Conventions:
    - Boxes are ``xyxy`` float32 pixels of the original (stored) image, classes are contiguous
      int64 indices into ``names``.
    - Images without boxes are background images: kept, with ``(0, 4)`` boxes.
    - ``to_coco()`` writes **category id = class index + 1** (see ``category_id``), image ids
      = ``Sample.image_id``, ``file_name`` relative to ``root`` when the image lies below it.
      Predictions given to pycocotools must use ``category_id(class_index)`` too.

Example:
    >>> import numpy as np
    >>> s = Sample(1, Path("a.jpg"), 64, 48, np.array([[1, 2, 11, 12]]), np.array([0]))
    >>> ds = DetectionDataset(["cat"], [s], None)
    >>> ds.to_coco()["annotations"][0]["bbox"]
    [1.0, 2.0, 10.0, 10.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.defects import DefectReport

__all__ = ["DetectionDataset", "Sample", "category_id", "class_index"]


def category_id(class_index: int) -> int:
    """COCO category id written by ``DetectionDataset.to_coco`` for a class index (index + 1)."""
    return int(class_index) + 1


def class_index(category: int) -> int:
    """Inverse of ``category_id``: the class index of a category id written by ``to_coco``."""
    return int(category) - 1


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its boxes.

    Attributes:
        image_id: Unique integer id within its dataset (COCO image id).
        path: Image file.
        width: Image width in pixels (as stored; EXIF orientation is not applied).
        height: Image height in pixels.
        boxes: ``(N, 4)`` float32 ``xyxy`` pixels of the original image.
        classes: ``(N,)`` int64 class indices.
    """

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if len(boxes) != len(classes):
            raise ValueError(f"Sample {self.path}: {len(boxes)} boxes but {len(classes)} classes")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Sample {self.path}: bad image size {self.width}x{self.height}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "image_id", int(self.image_id))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        return (
            self.image_id == other.image_id
            and self.path == other.path
            and (self.width, self.height) == (other.width, other.height)
            and np.array_equal(self.boxes, other.boxes)
            and np.array_equal(self.classes, other.classes)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside: not hashable

    @property
    def num_boxes(self) -> int:
        """Number of boxes (0 for a background image)."""
        return len(self.boxes)


@dataclass(eq=False)
class DetectionDataset:
    """A list of samples plus class names.

    Attributes:
        names: Class names; class index ``i`` is ``names[i]``.
        samples: The images, in a stable order.
        root: Folder the image paths are relative to in ``to_coco`` (None: absolute paths).
        defects: What the loader repaired or skipped (see ``nas.data.defects``).
    """

    names: list[str]
    samples: list[Sample]
    root: Path | None = None
    defects: DefectReport = field(default_factory=DefectReport)

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        if self.root is not None:
            self.root = Path(self.root)
        ids = [s.image_id for s in self.samples]
        if len(set(ids)) != len(ids):
            raise ValueError(f"dataset {self.root}: duplicate image ids")
        nc = len(self.names)
        for s in self.samples:
            if s.num_boxes and (s.classes.min() < 0 or s.classes.max() >= nc):
                raise ValueError(
                    f"dataset {self.root}: {s.path} has class ids outside 0..{nc - 1}"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(names)``)."""
        return len(self.names)

    @property
    def num_boxes(self) -> int:
        """Total number of boxes."""
        return sum(s.num_boxes for s in self.samples)

    @property
    def num_backgrounds(self) -> int:
        """Number of images without any box."""
        return sum(1 for s in self.samples if s.num_boxes == 0)

    def class_counts(self) -> np.ndarray:
        """Boxes per class, ``(num_classes,)`` int64."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for s in self.samples:
            np.add.at(counts, s.classes, 1)
        return counts

    def select(self, indices: list[int] | np.ndarray) -> DetectionDataset:
        """A dataset with the samples at ``indices`` (same names, root and defect report)."""
        return DetectionDataset(
            self.names, [self.samples[int(i)] for i in indices], self.root, self.defects
        )

    def _file_name(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(path)

    def to_coco(self) -> dict[str, Any]:
        """The dataset as a COCO json dict (ground truth for pycocotools).

        Category id = class index + 1 (``category_id``); annotation ids run from 1; ``area`` is
        the box area; ``iscrowd`` is 0 (crowd regions are not kept by the loaders).
        """
        images, annotations = [], []
        for s in self.samples:
            images.append(
                {
                    "id": s.image_id,
                    "file_name": self._file_name(s.path),
                    "width": s.width,
                    "height": s.height,
                }
            )
            for box, cls in zip(s.boxes.tolist(), s.classes.tolist(), strict=True):
                x1, y1, x2, y2 = box
                w, h = x2 - x1, y2 - y1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": s.image_id,
                        "category_id": category_id(cls),
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        categories = [{"id": category_id(i), "name": n} for i, n in enumerate(self.names)]
        return {"images": images, "annotations": annotations, "categories": categories}
