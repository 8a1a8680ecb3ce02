"""Task-aligned label assignment (TOOD, arXiv 2108.07755) as used by the YOLOv8 loss.

For every ground-truth box the anchors whose centres lie inside it are ranked by the alignment
metric ``score^alpha * CIoU^beta`` (score: the predicted probability of the box's class; CIoU
between the predicted and the true box); the ``topk`` best become positives. An anchor claimed
by several boxes keeps the one it overlaps most. Soft class targets are the alignment metric
normalised per box so that its best anchor gets the box's best IoU.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from nas.ops.boxes import bbox_iou, xywh2xyxy, xyxy2xywh

__all__ = ["Assignment", "TaskAlignedAssigner"]


class Assignment(NamedTuple):
    """Per-anchor targets. B = batch, A = anchors, C = classes.

    Attributes:
        labels: ``(B, A)`` int64 class of the assigned box (0 for background anchors).
        boxes: ``(B, A, 4)`` xyxy pixels of the assigned box (meaningless where not ``fg``).
        scores: ``(B, A, C)`` soft one-hot class targets (zero for background anchors).
        fg: ``(B, A)`` bool, True for positive anchors.
        gt_index: ``(B, A)`` int64 index of the assigned box within its image.
    """

    labels: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor
    fg: torch.Tensor
    gt_index: torch.Tensor


class TaskAlignedAssigner:
    """Assigns ground-truth boxes to anchors by the task-aligned metric.

    Args:
        num_classes: Number of classes C.
        topk: Candidates kept per ground-truth box.
        alpha: Exponent of the classification score in the metric.
        beta: Exponent of the CIoU in the metric.
        min_side: Boxes with a side shorter than this (pixels) are widened to it, about their
            centre, when choosing anchor candidates, so that tiny boxes still own an anchor
            (ultralytics 8.4 uses the middle stride). 0 disables it.
        eps: Numerical guard.

    Example:
        >>> assigner = TaskAlignedAssigner(num_classes=2)
        >>> anchors = torch.tensor([[4.0, 4.0], [12.0, 4.0]])
        >>> out = assigner(
        ...     torch.full((1, 2, 2), 0.5), torch.tensor([[[0.0, 0, 8, 8], [8.0, 0, 16, 8]]]),
        ...     anchors, torch.tensor([[[1.0]]]), torch.tensor([[[0.0, 0, 8, 8]]]),
        ...     torch.ones(1, 1, 1, dtype=torch.bool))
        >>> out.fg.tolist()
        [[True, False]]
    """

    def __init__(
        self,
        num_classes: int,
        *,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        min_side: float = 16.0,
        eps: float = 1e-9,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.min_side = min_side
        self.eps = eps

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        anchor_points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
    ) -> Assignment:
        """Assign targets.

        Args:
            pred_scores: ``(B, A, C)`` predicted class probabilities (after sigmoid).
            pred_boxes: ``(B, A, 4)`` predicted xyxy boxes in pixels.
            anchor_points: ``(A, 2)`` anchor centres in pixels.
            gt_labels: ``(B, M, 1)`` classes of the (padded) ground-truth boxes.
            gt_boxes: ``(B, M, 4)`` xyxy pixels of the ground-truth boxes.
            gt_mask: ``(B, M, 1)`` True for real (not padding) boxes.

        Returns:
            The :class:`Assignment`.
        """
        batch, num_anchors, _ = pred_scores.shape
        num_gt = gt_boxes.shape[1]
        device = pred_scores.device
        if num_gt == 0:
            return Assignment(
                labels=torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
                boxes=torch.zeros_like(pred_boxes),
                scores=torch.zeros_like(pred_scores),
                fg=torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
                gt_index=torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
            )
        gt_mask = gt_mask.bool()
        inside = self._anchors_inside(anchor_points, gt_boxes) & gt_mask  # (B, M, A)
        metric, overlaps = self._metrics(pred_scores, pred_boxes, gt_labels, gt_boxes, inside)
        positive = self._topk(metric, gt_mask) & inside  # (B, M, A)
        positive = self._resolve_conflicts(positive, overlaps)
        fg = positive.any(1)  # (B, A)
        gt_index = positive.float().argmax(1)  # (B, A)

        labels = gt_labels.squeeze(-1).long().gather(1, gt_index)  # (B, A)
        boxes = gt_boxes.gather(1, gt_index.unsqueeze(-1).expand(-1, -1, 4))
        labels = labels.clamp(min=0).masked_fill(~fg, 0)

        # Soft targets: per box, metric rescaled so its best anchor gets its best IoU.
        metric = metric * positive
        overlaps = overlaps * positive
        best_metric = metric.amax(-1, keepdim=True)
        best_overlap = overlaps.amax(-1, keepdim=True)
        norm = (metric * best_overlap / (best_metric + self.eps)).amax(1)  # (B, A)
        scores = torch.zeros(batch, num_anchors, self.num_classes, device=device)
        scores.scatter_(2, labels.unsqueeze(-1), 1.0)
        scores = scores * (norm * fg).unsqueeze(-1)
        return Assignment(labels, boxes, scores.to(pred_scores.dtype), fg, gt_index)

    def _anchors_inside(self, points: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
        """``(B, M, A)`` True where the anchor centre lies strictly inside the (widened) box."""
        if self.min_side > 0:
            xywh = xyxy2xywh(gt_boxes)
            xywh[..., 2:] = xywh[..., 2:].clamp(min=self.min_side)
            gt_boxes = xywh2xyxy(xywh)
        lt, rb = gt_boxes[:, :, None, :2], gt_boxes[:, :, None, 2:]
        deltas = torch.cat((points[None, None] - lt, rb - points[None, None]), -1)
        return deltas.amin(-1) > self.eps

    def _metrics(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        candidates: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Alignment metric and CIoU, ``(B, M, A)`` each, zero outside ``candidates``."""
        b, m, a = candidates.nonzero(as_tuple=True)
        overlaps = torch.zeros(candidates.shape, dtype=pred_boxes.dtype, device=pred_boxes.device)
        metric = torch.zeros_like(overlaps)
        cls = gt_labels[b, m, 0].long()
        iou = bbox_iou(gt_boxes[b, m], pred_boxes[b, a], ciou=True).squeeze(-1).clamp(min=0)
        overlaps[b, m, a] = iou
        metric[b, m, a] = pred_scores[b, a, cls].pow(self.alpha) * iou.pow(self.beta)
        return metric, overlaps

    def _topk(self, metric: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
        """``(B, M, A)`` True for each real box's ``topk`` anchors by metric."""
        k = min(self.topk, metric.shape[-1])
        index = metric.topk(k, dim=-1).indices  # (B, M, k)
        chosen = torch.zeros(metric.shape, dtype=torch.bool, device=metric.device)
        chosen.scatter_(-1, index, True)
        return chosen & gt_mask

    @staticmethod
    def _resolve_conflicts(positive: torch.Tensor, overlaps: torch.Tensor) -> torch.Tensor:
        """An anchor claimed by several boxes keeps only the box it overlaps most."""
        multi = positive.sum(1, keepdim=True) > 1  # (B, 1, A)
        best = overlaps.argmax(1, keepdim=True)  # (B, 1, A)
        only_best = torch.zeros_like(positive).scatter_(1, best, True)
        return torch.where(multi, only_best, positive)
