"""Anchor points and distance <-> box conversions, shared by Detect and the loss (pure)."""

from __future__ import annotations

import torch

__all__ = ["bbox2dist", "dist2bbox", "make_anchors"]


def make_anchors(
    feats: list[torch.Tensor], strides: torch.Tensor | list[float], offset: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres in grid units and their strides, for a list of feature maps.

    Returns:
        ``(points (A, 2) as x, y in grid cells of each level, stride (A, 1))``, A = sum of H*W.
    """
    points, stride_list = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for feat, stride in zip(feats, strides, strict=True):
        h, w = feat.shape[-2:]
        sx = torch.arange(w, device=device, dtype=dtype) + offset
        sy = torch.arange(h, device=device, dtype=dtype) + offset
        gy, gx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(stride), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_list)


def dist2bbox(
    distance: torch.Tensor, anchor_points: torch.Tensor, xywh: bool = True, dim: int = -1
) -> torch.Tensor:
    """(left, top, right, bottom) distances from anchor points -> boxes (xywh or xyxy)."""
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)
    return torch.cat((x1y1, x2y2), dim)


def bbox2dist(anchor_points: torch.Tensor, bbox: torch.Tensor, reg_max: float) -> torch.Tensor:
    """xyxy boxes -> (l, t, r, b) distances from anchor points, clamped to [0, reg_max - 0.01]."""
    x1y1, x2y2 = bbox.chunk(2, -1)
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, reg_max - 0.01)
