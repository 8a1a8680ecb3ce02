"""Evaluation: decode -> NMS -> original pixels -> COCO results -> pycocotools ``COCOeval``.

``CocoEvaluator`` is the one small class around pycocotools (DETR style); ``evaluate`` runs a
detector over the validation cache and feeds it.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from nas.data.batches import iterate_batches
from nas.data.records import category_id
from nas.train.config import autocast
from nas.train.nms import non_max_suppression

if TYPE_CHECKING:
    from nas.data import PreparedData

__all__ = ["CocoEvaluator", "EvalResult", "evaluate"]


@dataclass(frozen=True)
class EvalResult:
    """COCO box metrics.

    Attributes:
        map50: AP at IoU 0.5 (all areas, ``max_det`` detections per image).
        map50_95: AP averaged over IoU 0.50:0.05:0.95.
        per_class_ap: AP50-95 per class name, for classes present in the ground truth.
    """

    map50: float
    map50_95: float
    per_class_ap: dict[str, float] = field(default_factory=dict)


class CocoEvaluator:
    """Accumulates detections per image, then scores them with ``COCOeval``.

    Detections are in original-image pixels; classes are class indices (the ground truth uses
    ``nas.data.records.category_id``: index + 1).

    Args:
        coco_gt: Ground truth as a COCO json dict (``DetectionDataset.to_coco()``).
        names: Class names, index i = category id ``category_id(i)``.
        max_det: Detections per image that count (``COCOeval`` ``maxDets`` last entry).

    Example:
        >>> gt = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [
        ...     {"id": 1, "name": "a"}], "annotations": [{"id": 1, "image_id": 1,
        ...     "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0}]}
        >>> ev = CocoEvaluator(gt, ["a"])
        >>> ev.update([1], [torch.tensor([[1.0, 1, 5, 5, 0.9, 0]])])
        >>> round(ev.summarize().map50, 6)
        1.0
    """

    def __init__(self, coco_gt: dict[str, Any], names: list[str], *, max_det: int = 100) -> None:
        self.names = list(names)
        self.max_det = max_det
        self._gt = copy.deepcopy(coco_gt)
        self._gt.setdefault("info", {})
        self._gt.setdefault("licenses", [])
        self._image_ids = {int(img["id"]) for img in self._gt["images"]}
        self._results: list[dict[str, Any]] = []

    def update(self, image_ids: list[int], detections: list[torch.Tensor]) -> None:
        """Add detections.

        Args:
            image_ids: COCO image id of each image.
            detections: Per image an ``(N, 6)`` tensor ``x1, y1, x2, y2, score, class_index``.
        """
        if len(image_ids) != len(detections):
            raise ValueError(f"{len(image_ids)} image ids but {len(detections)} detection sets")
        for image_id, det in zip(image_ids, detections, strict=True):
            if int(image_id) not in self._image_ids:
                raise KeyError(f"image id {image_id} is not in the ground truth")
            for x1, y1, x2, y2, score, cls in det.detach().cpu().double().tolist():
                if not 0 <= int(cls) < len(self.names):
                    raise ValueError(f"class index {int(cls)} outside 0..{len(self.names) - 1}")
                self._results.append(
                    {
                        "image_id": int(image_id),
                        "category_id": category_id(int(cls)),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )

    def summarize(self) -> EvalResult:
        """Run ``COCOeval`` on everything added so far."""
        if not self._results or not self._gt["annotations"]:
            return EvalResult(0.0, 0.0, {n: 0.0 for n in self._present_names()})
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = self._gt
            gt.createIndex()
            dt = gt.loadRes(self._results)
            ev = COCOeval(gt, dt, iouType="bbox")
            ev.params.maxDets = [1, 10, self.max_det]
            ev.evaluate()
            ev.accumulate()
        precision = ev.eval["precision"]  # (T iou, R recall, K class, A area, M maxDets)
        per_class = {}
        for k, cat in enumerate(ev.params.catIds):
            index = int(cat) - 1
            if 0 <= index < len(self.names) and self.names[index] in self._present_names():
                p = precision[:, :, k, 0, -1]
                per_class[self.names[index]] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
        # What COCOeval.summarize prints as AP and AP50, at maxDets = max_det (its stats[0]
        # is hard-wired to 100 detections).
        everything = precision[:, :, :, 0, -1]
        at50 = precision[0, :, :, 0, -1]  # iouThrs[0] == 0.5
        return EvalResult(
            map50=float(at50[at50 > -1].mean()) if (at50 > -1).any() else 0.0,
            map50_95=float(everything[everything > -1].mean()) if (everything > -1).any() else 0.0,
            per_class_ap=per_class,
        )

    def _present_names(self) -> list[str]:
        present = {int(a["category_id"]) - 1 for a in self._gt["annotations"]}
        return [n for i, n in enumerate(self.names) if i in present]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: PreparedData,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    batch_size: int = 16,
    amp: bool | None = None,
) -> EvalResult:
    """COCO mAP of ``model`` on the validation split of ``data``.

    The model runs in eval mode (its mode is restored afterwards) on its own device (the
    cache's images are moved there); detections are mapped from letterboxed to original-image
    pixels and scored against ``data.val_dataset.to_coco()``.

    Args:
        model: A detector whose eval forward returns ``(B, 4 + nc, A)`` (xywh px, scores).
        data: Prepared data (``val`` cache, ``names``, ``val_dataset``).
        conf: Score threshold before NMS.
        iou: NMS IoU threshold.
        max_det: Detections per image kept and scored.
        batch_size: Images per forward pass.
        amp: Autocast to ``amp_dtype(device)`` (default: when on CUDA; ``fit`` evaluates in
            float32 on the CPU, where bfloat16 would cost box precision).

    Returns:
        The :class:`EvalResult`.

    Example:
        >>> result = evaluate(model, data)  # doctest: +SKIP
        >>> result.map50, result.map50_95  # doctest: +SKIP
        (0.91, 0.67)
    """
    cache = data.val
    param = next(model.parameters(), None)
    device = param.device if param is not None else cache.device
    amp = device.type == "cuda" if amp is None else amp
    evaluator = CocoEvaluator(data.val_dataset.to_coco(), data.names, max_det=max_det)
    was_training = model.training
    model.eval()
    try:
        for batch in iterate_batches(cache, batch_size, shuffle=False, generator=None):
            images = batch.images.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                preds = model(images)
            detections = non_max_suppression(preds.float(), conf=conf, iou=iou, max_det=max_det)
            rows = batch.indices.tolist()
            originals = []
            for row, det in zip(rows, detections, strict=True):
                boxes = cache.to_original(row, det[:, :4])
                originals.append(torch.cat((boxes, det[:, 4:]), 1))
            evaluator.update(cache.image_ids[batch.indices].tolist(), originals)
    finally:
        model.train(was_training)
    return evaluator.summarize()
