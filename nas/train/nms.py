"""Detection post-processing: confidence filter and class-aware non-maximum suppression."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from nas.ops.boxes import xywh2xyxy

__all__ = ["non_max_suppression"]


def non_max_suppression(
    preds: torch.Tensor,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    max_candidates: int = 30000,
    multi_label: bool = True,
) -> list[torch.Tensor]:
    """Class-aware NMS over the eval output of a detector.

    Args:
        preds: ``(B, 4 + C, A)``: xywh boxes in pixels, then class probabilities.
        conf: Minimum class probability kept.
        iou: IoU above which the lower-scored box of the same class is suppressed.
        max_det: Detections kept per image.
        max_candidates: Highest-scored candidates that enter NMS per image (bounds its cost).
        multi_label: Keep every class above ``conf`` for a box (as COCO evaluation wants);
            otherwise only its best class.

    Returns:
        One ``(N, 6)`` tensor per image: ``x1, y1, x2, y2, score, class``, highest score first.

    Example:
        >>> p = torch.tensor([[[10.0], [10.0], [4.0], [4.0], [0.9]]])
        >>> non_max_suppression(p)[0].tolist()  # doctest: +ELLIPSIS
        [[8.0, 8.0, 12.0, 12.0, 0.89999..., 0.0]]
    """
    if preds.ndim != 3 or preds.shape[1] < 5:
        raise ValueError(f"preds must be (B, 4 + C, A) with C >= 1, got {tuple(preds.shape)}")
    out = []
    for image_preds in preds.transpose(1, 2):  # (A, 4 + C)
        boxes = xywh2xyxy(image_preds[:, :4].float())
        scores = image_preds[:, 4:].float()
        if multi_label:
            anchor, cls = (scores > conf).nonzero(as_tuple=True)
            score = scores[anchor, cls]
        else:
            score, cls = scores.max(1)
            anchor = (score > conf).nonzero(as_tuple=True)[0]
            score, cls = score[anchor], cls[anchor]
        if len(score) > max_candidates:
            top = score.topk(max_candidates).indices
            anchor, cls, score = anchor[top], cls[top], score[top]
        kept_boxes = boxes[anchor]
        keep = batched_nms(kept_boxes, score, cls, iou)[:max_det]
        out.append(torch.cat((kept_boxes[keep], score[keep, None], cls[keep, None].float()), 1))
    return out
