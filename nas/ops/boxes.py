"""Box conversions and IoU variants (pure tensor functions).

All boxes are ``(..., 4)`` tensors; ``xyxy`` is (x1, y1, x2, y2) corners and ``xywh`` is
(centre x, centre y, width, height), both in pixels.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bbox_iou", "box_area", "box_iou", "xywh2xyxy", "xyxy2xywh"]


def xywh2xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2).

    Example:
        >>> xywh2xyxy(torch.tensor([[5.0, 5.0, 4.0, 2.0]]))
        tensor([[3., 4., 7., 6.]])
    """
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return torch.cat((xy - wh / 2, xy + wh / 2), -1)


def xyxy2xywh(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h).

    Example:
        >>> xyxy2xywh(torch.tensor([[3.0, 4.0, 7.0, 6.0]]))
        tensor([[5., 5., 4., 2.]])
    """
    x1y1, x2y2 = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(..., 4)`` xyxy boxes, shape ``(...)``; inverted boxes count as zero."""
    wh = (boxes[..., 2:4] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes.

    Args:
        boxes1: ``(N, 4)`` xyxy boxes.
        boxes2: ``(M, 4)`` xyxy boxes.
        eps: Added to the union to avoid division by zero.

    Returns:
        ``(N, M)`` IoU matrix (float32 or wider).

    Example:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
        tensor([[0.3333]])
    """
    a, b = boxes1.float(), boxes2.float()
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter + eps)


def bbox_iou(
    box1: torch.Tensor,
    box2: torch.Tensor,
    *,
    xywh: bool = False,
    ciou: bool = False,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Element-wise IoU (or Complete IoU) of two broadcastable sets of boxes.

    CIoU (Zheng et al., arXiv 1911.08287) = IoU - centre distance^2 / enclosing diagonal^2
    - alpha * v, where v measures the aspect-ratio mismatch and alpha = v / (1 - IoU + v) is
    treated as a constant (no gradient), as in the YOLOv8 loss.

    Args:
        box1: ``(..., 4)`` boxes.
        box2: ``(..., 4)`` boxes, broadcastable against ``box1``.
        xywh: Boxes are (cx, cy, w, h) instead of xyxy.
        ciou: Return CIoU instead of plain IoU.
        eps: Numerical guard for divisions.

    Returns:
        ``(..., 1)`` tensor of IoU or CIoU values.

    Example:
        >>> b = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
        >>> round(bbox_iou(b, b, ciou=True).item(), 4)
        1.0
    """
    if xywh:
        box1, box2 = xywh2xyxy(box1), xywh2xyxy(box2)
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps

    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(min=0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not ciou:
        return iou

    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)  # enclosing box width
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps  # enclosing diagonal squared
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - (rho2 / c2 + v * alpha)
