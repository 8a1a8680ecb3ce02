"""Defects of real datasets: repair or skip, count, and report them in one warning line.

Policy (the same for every format):
    - box partly outside the image: clipped to the image ("repaired"); counted when it
      overshoots by more than ``CLIP_TOLERANCE`` px (sub-pixel overshoot is clipped silently);
    - box entirely outside the image (nothing left after clipping): dropped;
    - zero-size box (width or height <= 0 as annotated): dropped;
    - unknown class id / class name: box dropped;
    - crowd annotation (COCO ``iscrowd=1``): not a training target, dropped;
    - label file (or annotation) without an image: ignored;
    - image missing on disk, unreadable or corrupt: the image is skipped;
    - malformed label line / unreadable annotation file: line ignored / image skipped;
    - images without labels are background images: kept with zero boxes (not a defect).

A loader fills one ``DefectReport`` and ends with ``finish_dataset``, which raises
``DatasetError`` if no image was readable, else emits the report as a single ``DataWarning``
such as ``"data: /sets/x: repaired 3 boxes outside the image, skipped 2 zero-size boxes, 2 label
files without an image, 1 unreadable image"`` and builds the ``DetectionDataset``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from nas.errors import UserError

if TYPE_CHECKING:
    from nas.data.records import DetectionDataset, Sample

__all__ = [
    "CLIP_TOLERANCE",
    "DEFECT_KINDS",
    "DataWarning",
    "DatasetError",
    "DefectReport",
    "finish_dataset",
    "image_size",
    "repair_boxes",
]

CLIP_TOLERANCE = 1.0  # px a box may exceed the image before its clipping counts as a repair

# kind -> phrase of the report line, in report order ("{n}" is the count).
DEFECT_KINDS: dict[str, str] = {
    "clipped": "repaired {n} boxes outside the image",
    "outside": "dropped {n} boxes entirely outside the image",
    "zero_size": "skipped {n} zero-size boxes",
    "unknown_class": "skipped {n} boxes of unknown classes",
    "crowd": "skipped {n} crowd annotations",
    "label_without_image": "{n} label files without an image",
    "missing_image": "{n} listed images missing on disk",
    "unreadable_image": "{n} unreadable images",
    "bad_label": "{n} malformed label lines or files",
}


class DataWarning(UserWarning):
    """A dataset had defects that were repaired or skipped."""


class DatasetError(UserError, ValueError):
    """A dataset is unusable as a whole; the message names the path and the key."""


@dataclass
class DefectReport:
    """Counts of repaired / skipped defects, by kind (keys of ``DEFECT_KINDS``).

    Example:
        >>> r = DefectReport()
        >>> r.add("zero_size", 2)
        >>> r.line("/data/x")
        'data: /data/x: skipped 2 zero-size boxes'
    """

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, n: int = 1) -> None:
        """Count ``n`` defects of ``kind``."""
        if kind not in DEFECT_KINDS:
            raise KeyError(f"unknown defect kind {kind!r}; valid: {sorted(DEFECT_KINDS)}")
        if n:
            self.counts[kind] += int(n)

    def __getitem__(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def merge(self, other: DefectReport) -> None:
        """Add the counts of ``other``."""
        self.counts.update(other.counts)

    def summary(self) -> str:
        """The counts as comma-separated phrases (empty string when nothing was counted)."""
        return ", ".join(
            phrase.format(n=self.counts[k]) for k, phrase in DEFECT_KINDS.items() if self[k]
        )

    def line(self, source: str | Path) -> str:
        """The one-line summary (empty string when there is nothing to report)."""
        summary = self.summary()
        return f"data: {source}: {summary}" if summary else ""

    def warn(self, source: str | Path, stacklevel: int = 3) -> None:
        """Emit the summary as one ``DataWarning`` if anything was counted."""
        text = self.line(source)
        if text:
            warnings.warn(text, DataWarning, stacklevel=stacklevel)


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a readable image, None if missing, unreadable or corrupt.

    Cheap: PIL reads the header and ``verify()`` checks the file structure without decoding
    the pixels (a truncated JPEG may still pass; the decoder in the cache handles that).
    """
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if size[0] <= 0 or size[1] <= 0:
        return None
    return int(size[0]), int(size[1])


def checked_image_size(
    path: Path, report: DefectReport, missing: str = "missing_image"
) -> tuple[int, int] | None:
    """``image_size(path)``, counting a missing file as ``missing`` and a bad one as unreadable."""
    if not path.is_file():
        report.add(missing)
        return None
    size = image_size(path)
    if size is None:
        report.add("unreadable_image")
    return size


def repair_boxes(
    boxes: np.ndarray,
    classes: np.ndarray,
    width: int,
    height: int,
    num_classes: int,
    report: DefectReport,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the box policy to one image's ``xyxy`` boxes and count what was done.

    Args:
        boxes: ``(N, 4)`` xyxy pixels as annotated.
        classes: ``(N,)`` class indices (any int; out of range means unknown).
        width: Image width.
        height: Image height.
        num_classes: Number of valid classes.
        report: Counts are added here.

    Returns:
        ``(boxes float32 (M, 4), classes int64 (M,))``, M <= N.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    known = (classes >= 0) & (classes < num_classes)
    report.add("unknown_class", int((~known).sum()))
    finite = np.isfinite(boxes).all(1)
    report.add("bad_label", int((known & ~finite).sum()))
    keep = known & finite
    boxes, classes = boxes[keep], classes[keep]
    positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    report.add("zero_size", int((~positive).sum()))
    boxes, classes = boxes[positive], classes[positive]
    limits = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.clip(boxes, 0.0, limits)
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    report.add("outside", int((~inside).sum()))
    moved = np.abs(clipped - boxes).max(1, initial=0.0) > CLIP_TOLERANCE
    report.add("clipped", int((moved & inside).sum()))
    return clipped[inside].astype(np.float32), classes[inside]


def finish_dataset(
    names: list[str],
    samples: list[Sample],
    root: Path,
    report: DefectReport,
    *,
    source: str | Path,
    no_image: str,
    nothing_counted: str,
    warn: bool = True,
) -> DetectionDataset:
    """The common end of every loader: check that an image was kept, warn once, build.

    Args:
        names: Class names.
        samples: The readable images.
        root: ``DetectionDataset.root``.
        report: The loader's defect counts (kept as ``DetectionDataset.defects``).
        source: What was loaded, named in the warning line (``report.line(source)``).
        no_image: The ``DatasetError`` message when ``samples`` is empty, naming the file and
            key; the defect summary (or ``nothing_counted`` when no defect was counted) is
            appended in parentheses.
        nothing_counted: Why there is no image when no defect explains it.
        warn: Emit the one-line defect warning (it points at the loader's caller).

    Returns:
        ``DetectionDataset(names, samples, root, report)``.

    Raises:
        DatasetError: ``samples`` is empty.
    """
    from nas.data.records import DetectionDataset  # records imports this module

    if not samples:
        raise DatasetError(f"{no_image} ({report.summary() or nothing_counted})")
    ds = DetectionDataset(names, samples, root, report)
    if warn:
        report.warn(source, stacklevel=4)  # warn -> finish_dataset -> loader -> its caller
    return ds
