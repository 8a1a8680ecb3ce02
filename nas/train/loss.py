"""The YOLOv8 detection loss: task-aligned assignment, BCE classes, CIoU + DFL boxes.

Same definition as ultralytics' ``v8DetectionLoss``: class BCE summed over every anchor and
class and divided by the sum of the soft targets; box terms weighted per positive anchor by its
soft target; gains box 7.5, cls 0.5, dfl 1.5; the total is multiplied by the batch size (so
ultralytics learning rates keep their meaning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from nas.ops.anchors import bbox2dist, dist2bbox, make_anchors
from nas.ops.boxes import bbox_iou
from nas.train.assigner import TaskAlignedAssigner

__all__ = ["DetectionLoss", "LossGains", "LossOutput", "NonFiniteLossError", "dfl_loss"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite.

    Attributes:
        epoch: 0-based epoch in which it happened.
        step: 0-based batch index within that epoch.
    """

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(
            f"non-finite training loss {value} at epoch {epoch}, step {step}: lower the learning "
            "rate or check the data (boxes, image values)"
        )
        self.epoch = epoch
        self.step = step


@dataclass(frozen=True)
class LossGains:
    """Multipliers of the loss terms (ultralytics hyperparameters ``box``, ``cls``, ``dfl``)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5


class LossOutput(NamedTuple):
    """Loss of one batch.

    Attributes:
        total: Scalar to back-propagate: ``(box + cls + dfl) * batch_size``, gains applied.
        box: Detached CIoU term (gain applied, per image).
        cls: Detached BCE term (gain applied, per image).
        dfl: Detached DFL term (gain applied, per image).
    """

    total: torch.Tensor
    box: torch.Tensor
    cls: torch.Tensor
    dfl: torch.Tensor


def dfl_loss(pred_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss (Li et al., arXiv 2006.04388) of each side.

    The continuous target ``t`` between bins ``floor(t)`` and ``floor(t) + 1`` is the
    cross-entropy to both neighbours, weighted by closeness. Its minimum over the logits is
    the binary entropy of those weights, reached when the predicted distribution puts exactly
    those weights on the two bins.

    Args:
        pred_logits: ``(N, 4, R)`` logits over R distance bins for the four sides.
        target: ``(N, 4)`` distances in bins, in ``[0, R - 1)``.

    Returns:
        ``(N,)`` loss per box, averaged over its four sides.
    """
    bins = pred_logits.shape[-1]
    target = target.clamp(0, bins - 1 - 0.01)
    left = target.long()
    w_left = left + 1 - target
    log_p = F.log_softmax(pred_logits.float(), dim=-1)
    loss_left = log_p.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    loss_right = log_p.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return -(loss_left * w_left + loss_right * (1 - w_left)).mean(-1)


class DetectionLoss:
    """YOLOv8 loss for a head with per-level maps ``(B, 4 * reg_max + nc, H, W)``.

    Args:
        num_classes: Number of classes.
        strides: Stride of each level, e.g. ``[8, 16, 32]``.
        reg_max: DFL bins per side (16 in YOLOv8).
        gains: Loss-term multipliers.
        topk: Assigner candidates per box.

    Example:
        >>> loss_fn = DetectionLoss(2, [8.0, 16.0, 32.0])
        >>> feats = [torch.zeros(1, 66, s, s) for s in (8, 4, 2)]
        >>> targets = torch.tensor([[0.0, 1.0, 8.0, 8.0, 40.0, 40.0]])
        >>> out = loss_fn(feats, targets)
        >>> bool(out.total > 0)
        True
    """

    def __init__(
        self,
        num_classes: int,
        strides: torch.Tensor | list[float],
        *,
        reg_max: int = 16,
        gains: LossGains | None = None,
        topk: int = 10,
    ) -> None:
        self.num_classes = num_classes
        self.strides = [float(s) for s in strides]
        self.reg_max = reg_max
        self.gains = gains or LossGains()
        middle = self.strides[len(self.strides) // 2] if len(self.strides) > 1 else self.strides[0]
        self.assigner = TaskAlignedAssigner(
            num_classes, topk=topk, alpha=0.5, beta=6.0, min_side=middle
        )

    def __call__(self, feats: list[torch.Tensor], targets: torch.Tensor) -> LossOutput:
        """Compute the loss.

        Args:
            feats: Per-level raw head outputs ``(B, 4 * reg_max + nc, H, W)``.
            targets: ``(M, 6)`` rows ``(batch_index, class, x1, y1, x2, y2)`` in input pixels.

        Returns:
            The :class:`LossOutput`.
        """
        channels = 4 * self.reg_max + self.num_classes
        if feats[0].shape[1] != channels:
            raise ValueError(
                f"head output has {feats[0].shape[1]} channels, expected 4 * reg_max + nc = "
                f"{channels} (reg_max={self.reg_max}, nc={self.num_classes})"
            )
        batch = feats[0].shape[0]
        flat = torch.cat([f.flatten(2) for f in feats], 2).transpose(1, 2)  # (B, A, no)
        pred_dist, pred_logits = flat.split((4 * self.reg_max, self.num_classes), -1)
        pred_dist = pred_dist.reshape(batch, -1, 4, self.reg_max)
        anchors, stride = make_anchors(feats, self.strides, 0.5)  # grid units, (A, 1)
        bins = torch.arange(self.reg_max, device=flat.device, dtype=torch.float32)
        pred_boxes = dist2bbox(pred_dist.float().softmax(-1) @ bins, anchors.float(), xywh=False)

        gt_labels, gt_boxes, gt_mask = self._pad_targets(targets.to(flat.device), batch)
        assigned = self.assigner(
            pred_logits.detach().sigmoid().float(),
            pred_boxes.detach() * stride,
            anchors * stride,
            gt_labels,
            gt_boxes,
            gt_mask,
        )
        score_sum = assigned.scores.sum().clamp(min=1)
        loss_cls = (
            F.binary_cross_entropy_with_logits(
                pred_logits.float(), assigned.scores.float(), reduction="sum"
            )
            / score_sum
        )

        fg = assigned.fg
        weight = assigned.scores[fg].sum(-1)  # (P,)
        target_boxes = assigned.boxes / stride  # grid units
        iou = bbox_iou(pred_boxes[fg], target_boxes[fg], ciou=True).squeeze(-1)
        loss_box = ((1.0 - iou) * weight).sum() / score_sum
        target_dist = bbox2dist(anchors, target_boxes, self.reg_max - 1)
        loss_dfl = (dfl_loss(pred_dist[fg], target_dist[fg]) * weight).sum() / score_sum

        box = loss_box * self.gains.box
        cls = loss_cls * self.gains.cls
        dfl = loss_dfl * self.gains.dfl
        total = (box + cls + dfl) * batch
        return LossOutput(total, box.detach(), cls.detach(), dfl.detach())

    def _pad_targets(
        self, targets: torch.Tensor, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, 6) rows -> labels (B, N, 1), boxes (B, N, 4), mask (B, N, 1), N = most per image."""
        if targets.ndim != 2 or targets.shape[-1] != 6:
            raise ValueError(
                f"targets must be (M, 6) rows (batch_index, class, x1, y1, x2, y2), "
                f"got shape {tuple(targets.shape)}"
            )
        image = targets[:, 0].long()
        if len(image) and (image.min() < 0 or image.max() >= batch):
            raise ValueError(
                f"target batch indices must lie in [0, {batch}), got values from "
                f"{int(image.min())} to {int(image.max())}"
            )
        counts = torch.bincount(image, minlength=batch)
        most = int(counts.max()) if len(image) else 0
        order = torch.argsort(image, stable=True)
        image, rows = image[order], targets[order]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(image), device=targets.device) - starts[image]
        padded = torch.zeros(batch, most, 5, device=targets.device, dtype=torch.float32)
        mask = torch.zeros(batch, most, 1, device=targets.device, dtype=torch.bool)
        padded[image, slot] = rows[:, 1:].float()
        mask[image, slot] = True
        return padded[..., :1], padded[..., 1:], mask
