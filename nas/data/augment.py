"""Batched augmentation in torch, on the device the batch lives on.

One random affine per image (horizontal flip, scale and translation jitter) applied over the
whole batch at once: to float images with one ``affine_grid`` + ``grid_sample`` (bilinear), to
uint8 images (what ``iterate_batches`` passes, before its conversion to float) with separable
nearest-neighbour gathers, about 3x cheaper on CPU; the area uncovered by the shifted image is
grey 114. Boxes transformed exactly (no rotation, so boxes stay tight),
clipped to the image and dropped when smaller than ``min_box_size`` px on a side or when less
than ``min_area_ratio`` of their transformed area is left inside the image (ultralytics'
``box_candidates`` rule: ``clip_boxes``, shared with ``nas.data.mosaic``). Then an optional
HSV-like colour jitter as one 3x3 colour matrix per image (hue = rotation about the grey axis,
saturation = distance from grey, value = gain).

Mosaic (``AugmentConfig.mosaic``) is not applied here but when the batch is gathered from the
cache (``nas.data.mosaic.mosaic_batch``, called by ``iterate_batches``), before the affine.

All random numbers are drawn on the CPU from the ``torch.Generator`` passed in, so results are
deterministic given its seed (then moved to the batch's device).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> imgs = torch.rand(2, 3, 64, 64)
    >>> tg = torch.tensor([[0, 1, 10.0, 10.0, 30.0, 30.0]])
    >>> out, tg2 = augment_batch(imgs, tg, AugmentConfig(), g)
    >>> out.shape
    torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.errors import ConfigError

__all__ = ["AugmentConfig", "augment_batch", "clip_boxes", "colour_jitter", "random_affine"]

_GREY = 114 / 255


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (applied per batch; ``enabled=False`` turns it all off).

    Attributes:
        enabled: Master switch.
        fliplr: Probability of a horizontal flip.
        scale: Scale gain drawn uniformly in ``[1 - scale, 1 + scale]``.
        translate: Shift drawn uniformly in ``+-translate * S`` px on each axis.
        hsv_h: Hue rotation in ``+-hsv_h`` turns (0.015 = +-5.4 degrees).
        hsv_s: Saturation gain in ``[1 - hsv_s, 1 + hsv_s]``.
        hsv_v: Brightness gain in ``[1 - hsv_v, 1 + hsv_v]``.
        min_box_size: Boxes thinner than this (px) after the affine or mosaic are dropped.
        min_area_ratio: Boxes keeping less than this fraction of their area are dropped
            (after the affine or mosaic).
        mosaic: Probability that an image of a batch is replaced by a mosaic of itself and 3
            random images of the cache (``nas.data.mosaic``; applied by ``iterate_batches``
            when the batch is gathered, before the affine; 0 = off).
    """

    enabled: bool = True
    fliplr: float = 0.5
    scale: float = 0.25
    translate: float = 0.1
    hsv_h: float = 0.015
    hsv_s: float = 0.4
    hsv_v: float = 0.3
    min_box_size: float = 2.0
    min_area_ratio: float = 0.1
    mosaic: float = 0.0

    def __post_init__(self) -> None:
        ranges = {
            "fliplr": (0, 1),
            "scale": (0, 0.9),
            "translate": (0, 0.5),
            "hsv_h": (0, 0.5),
            "hsv_s": (0, 1),
            "hsv_v": (0, 1),
            "min_box_size": (0, 1e9),
            "min_area_ratio": (0, 1),
            "mosaic": (0, 1),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ConfigError(f"{name}={value} outside [{lo}, {hi}]")


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _warp_bilinear(
    images: torch.Tensor, flip: torch.Tensor, s: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """Float images: one batched ``affine_grid`` + ``grid_sample`` (bilinear), grey fill."""
    b, _, h, w = images.shape
    # output -> input sampling grid in normalised coords (align_corners=False: -1, 1 = edges)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / (flip * s)
    theta[:, 0, 2] = -(2 * tx / w) / (flip * s)
    theta[:, 1, 1] = 1 / s
    theta[:, 1, 2] = -(2 * ty / h) / s
    grid = F.affine_grid(theta.to(images.device, images.dtype), [b, 3, h, w], align_corners=False)
    out = F.grid_sample(
        images - _GREY, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return (out + _GREY).clamp_(0, 1)


def _warp_nearest(
    images: torch.Tensor, flip: torch.Tensor, s: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """uint8 images: separable nearest-neighbour gathers (about 3x cheaper on CPU), grey fill."""
    b, c, h, w = images.shape
    device = images.device
    # output pixel centre j + 0.5 samples the input at u = w/2 + (j + 0.5 - w/2 - tx) / (f s)
    u = w / 2 + ((torch.arange(w) + 0.5)[None] - w / 2 - tx[:, None]) / (flip * s)[:, None]
    v = h / 2 + ((torch.arange(h) + 0.5)[None] - h / 2 - ty[:, None]) / s[:, None]
    cols, rows = u.floor().long(), v.floor().long()
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    cols = cols.clamp(0, w - 1).to(device)[:, None, None, :].expand(b, c, h, w)
    rows = rows.clamp(0, h - 1).to(device)[:, None, :, None].expand(b, c, h, w)
    out = images.gather(3, cols).gather(2, rows)
    fill = torch.tensor(round(_GREY * 255), dtype=images.dtype, device=device)
    return torch.where(valid.to(device)[:, None], out, fill)


def clip_boxes(
    boxes: torch.Tensor,
    width: float,
    height: float,
    *,
    min_box_size: float,
    min_area_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip transformed boxes to the image and say which to keep (``box_candidates`` rule).

    Args:
        boxes: ``(M, 4)`` xyxy pixels (``x1 <= x2``, ``y1 <= y2``), possibly outside the image.
        width: Image width ``W``; boxes are clipped to ``[0, W]``.
        height: Image height ``H``; boxes are clipped to ``[0, H]``.
        min_box_size: A clipped box thinner than this (px) on either side is dropped.
        min_area_ratio: A box keeping no more than this fraction of its area is dropped.

    Returns:
        ``(clipped boxes (M, 4), keep (M,) bool)``.

    Example:
        >>> b = torch.tensor([[-5.0, 0.0, 15.0, 10.0], [-9.0, 0.0, 1.0, 10.0]])
        >>> clip_boxes(b, 32, 32, min_box_size=2.0, min_area_ratio=0.1)
        (tensor([[ 0.,  0., 15., 10.],
                [ 0.,  0.,  1., 10.]]), tensor([ True, False]))
    """
    full_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    x1, x2 = boxes[:, 0].clamp(0, width), boxes[:, 2].clamp(0, width)
    y1, y2 = boxes[:, 1].clamp(0, height), boxes[:, 3].clamp(0, height)
    bw, bh = x2 - x1, y2 - y1
    keep = (
        (bw > min_box_size)
        & (bh > min_box_size)
        & (bw * bh > min_area_ratio * full_area.clamp(min=1e-9))
    )
    return torch.stack((x1, y1, x2, y2), 1), keep


def random_affine(
    images: torch.Tensor,
    targets: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip / scale / translate each image and its boxes.

    Args:
        images: ``(B, 3, S, S)`` float in 0..1 (bilinear resampling) or uint8 (nearest
            neighbour, cheaper on CPU); the dtype is kept.
        targets: ``(M, 6)`` ``(batch_index, class, x1, y1, x2, y2)`` in pixels.
        cfg: Augmentation parameters.
        generator: CPU random generator.

    Returns:
        ``(images, targets)`` transformed; targets may have fewer rows.
    """
    b, _, h, w = images.shape
    device = images.device
    flip = torch.where(torch.rand(b, generator=generator) < cfg.fliplr, -1.0, 1.0)
    s = _uniform(b, 1 - cfg.scale, 1 + cfg.scale, generator)
    tx = _uniform(b, -cfg.translate, cfg.translate, generator) * w
    ty = _uniform(b, -cfg.translate, cfg.translate, generator) * h
    warp = _warp_nearest if images.dtype == torch.uint8 else _warp_bilinear
    out = warp(images, flip, s, tx, ty)
    if not len(targets):
        return out, targets
    # boxes: x' = w/2 + flip * s * (x - w/2) + tx, y' = h/2 + s * (y - h/2) + ty
    dtype = targets.dtype
    bi = targets[:, 0].long()
    fs, ss = (flip * s).to(device, dtype)[bi], s.to(device, dtype)[bi]
    tx, ty = tx.to(device, dtype)[bi], ty.to(device, dtype)[bi]
    x1 = w / 2 + fs * (targets[:, 2] - w / 2) + tx
    x2 = w / 2 + fs * (targets[:, 4] - w / 2) + tx
    y1 = h / 2 + ss * (targets[:, 3] - h / 2) + ty
    y2 = h / 2 + ss * (targets[:, 5] - h / 2) + ty
    boxes = torch.stack((torch.minimum(x1, x2), y1, torch.maximum(x1, x2), y2), 1)
    boxes, keep = clip_boxes(
        boxes, w, h, min_box_size=cfg.min_box_size, min_area_ratio=cfg.min_area_ratio
    )
    return out, torch.cat((targets[:, :2], boxes), 1)[keep]


def colour_jitter(
    images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """HSV-like jitter of ``(B, 3, H, W)`` images in 0..1 with one 3x3 matrix per image."""
    b = images.shape[0]
    angle = _uniform(b, -cfg.hsv_h, cfg.hsv_h, generator) * 2 * math.pi
    sat = _uniform(b, 1 - cfg.hsv_s, 1 + cfg.hsv_s, generator)
    val = _uniform(b, 1 - cfg.hsv_v, 1 + cfg.hsv_v, generator)
    # rotation by `angle` about the grey axis (1, 1, 1)/sqrt(3) (Rodrigues' formula)
    k = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    grey = torch.outer(k, k)  # projection onto the grey axis
    eye = torch.eye(3)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    rot = cos * eye + sin * cross + (1 - cos) * grey
    # c' = val * (grey c + sat * R (c - grey c)); R commutes with the grey projection
    mat = val[:, None, None] * (grey + sat[:, None, None] * (rot - grey))
    mat = mat.to(images.device, images.dtype)
    return torch.einsum("bij,bjhw->bihw", mat, images).clamp_(0, 1)


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``random_affine`` then ``colour_jitter`` (when enabled) to a batch.

    Args:
        images: ``(B, 3, S, S)`` on any device: float in 0..1, or uint8 in 0..255 (then the
            affine resamples nearest-neighbour before the conversion to float, which is what
            ``iterate_batches`` does: about 3x cheaper than bilinear on CPU).
        targets: ``(M, 6)`` ``(batch_index, class, x1, y1, x2, y2)`` in pixels.
        cfg: Augmentation parameters.
        generator: CPU ``torch.Generator`` all randomness comes from.

    Returns:
        ``(float images in 0..1, targets)``.
    """
    if cfg.enabled and (cfg.fliplr or cfg.scale or cfg.translate):
        images, targets = random_affine(images, targets, cfg, generator)
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    if cfg.enabled and (cfg.hsv_h or cfg.hsv_s or cfg.hsv_v):
        images = colour_jitter(images, cfg, generator)
    return images, targets
