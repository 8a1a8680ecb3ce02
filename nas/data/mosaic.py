"""Mosaic augmentation, batched in torch on the device the image cache lives on.

As ultralytics' ``Mosaic`` (n=4): an image and 3 others drawn uniformly from the whole dataset
tile a ``2S x 2S`` canvas around a random centre ``(xc, yc)`` uniform in ``[S/2, 3S/2]``, and
the central ``S x S`` window is kept. Equivalently (what is done here): the 4 letterboxed
``S x S`` images tile a 2x2 grid, the image itself top-left, and an ``S x S`` window at an
integer offset ``(ox, oy)`` uniform in ``[0, S]`` is cut out of it (``ox = 3S/2 - xc``).
One difference: ultralytics tiles the resized images without their padding, whereas the cache
holds letterboxed images, so their grey 114 bands (the canvas fill in ultralytics) are tiled
with them.

The windows of the whole batch are cut by index arithmetic: one ``index_select`` of image rows
and one ``gather`` of columns (no loop over pixels or images). Boxes are shifted by their
quadrant's offset minus ``(ox, oy)``, clipped to the window and dropped by the
``box_candidates`` rule of ``random_affine`` (``nas.data.augment.clip_boxes``). All random
numbers are drawn on the CPU from the ``torch.Generator`` passed in, so results are
deterministic given its seed.

Example:
    >>> import torch
    >>> images = torch.stack([torch.full((3, 4, 4), v, dtype=torch.uint8) for v in (1, 2, 3, 4)])
    >>> targets = [torch.zeros(0, 5)] * 4
    >>> out, tg = compose_mosaic(images, targets, torch.tensor([[0, 1, 2, 3]]),
    ...                          torch.tensor([[2, 2]]))
    >>> out[0, 0]
    tensor([[1, 1, 2, 2],
            [1, 1, 2, 2],
            [3, 3, 4, 4],
            [3, 3, 4, 4]], dtype=torch.uint8)
"""

from __future__ import annotations

import torch

from nas.data.augment import clip_boxes
from nas.data.cache import ImageCache

__all__ = ["compose_mosaic", "mosaic_batch"]


def _cut_windows(
    images: torch.Tensor, sources: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """The ``(B, C, S, S)`` windows at ``offsets`` of the 2x2 grids of ``images[sources]``.

    Separable: whole image rows are picked by one ``index_select`` (for each window row, the row
    of its left and of its right source image), then the window's columns by one ``gather``.
    """
    n, c, size, _ = images.shape
    b = sources.shape[0]
    grid = torch.arange(size, device=images.device)
    gy = offsets[:, 1, None] + grid  # (B, S) row in the 2S-high grid
    qy = (gy >= size).long()
    pair = torch.stack((sources.gather(1, 2 * qy), sources.gather(1, 2 * qy + 1)), 1)  # (B, 2, S)
    channel = torch.arange(c, device=images.device)[:, None]
    rows = (pair[:, :, None] * c + channel) * size + (gy - size * qy)[:, None, None]  # (B,2,C,S)
    bands = images.reshape(n * c * size, size).index_select(0, rows.flatten())
    wide = bands.view(b, 2, c, size, size).permute(0, 2, 3, 1, 4).reshape(b, c, size, 2 * size)
    gx = offsets[:, 0, None] + grid  # (B, S) column in the 2S-wide grid
    return wide.gather(3, gx[:, None, None, :].expand(b, c, size, size))


def compose_mosaic(
    images: torch.Tensor,
    targets: list[torch.Tensor],
    sources: torch.Tensor,
    offsets: torch.Tensor,
    *,
    min_box_size: float = 2.0,
    min_area_ratio: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut one ``S x S`` window out of the 2x2 grid of 4 source images, for each batch row.

    Pure: no randomness (``mosaic_batch`` draws ``sources`` and ``offsets``).

    Args:
        images: ``(N, 3, S, S)`` source images (any dtype, e.g. ``ImageCache.images``).
        targets: Per source image a ``(n_i, 5)`` tensor ``(class, x1, y1, x2, y2)`` in pixels.
        sources: ``(B, 4)`` int64 rows of ``images`` tiled top-left, top-right, bottom-left,
            bottom-right.
        offsets: ``(B, 2)`` int64 ``(ox, oy)`` in ``[0, S]``: the window's top-left corner in
            the ``2S x 2S`` grid.
        min_box_size: A clipped box thinner than this (px) is dropped.
        min_area_ratio: A box keeping no more than this fraction of its area is dropped.

    Returns:
        ``(images (B, 3, S, S) same dtype and device, targets (M, 6) (batch_index, class, x1,
        y1, x2, y2))``; targets grouped by batch row (then by quadrant), all inside
        ``[0, S]``.
    """
    size = images.shape[-1]
    b = sources.shape[0]
    if sources.shape != (b, 4) or offsets.shape != (b, 2):
        raise ValueError(
            f"compose_mosaic: sources must be (B, 4) and offsets (B, 2), got "
            f"{tuple(sources.shape)} and {tuple(offsets.shape)}"
        )
    if len(offsets) and (offsets.min() < 0 or offsets.max() > size):
        raise ValueError(f"compose_mosaic: offsets must lie in [0, {size}]")
    device = images.device
    source_rows, offset_rows = sources.tolist(), offsets.tolist()  # before the device copy
    out = _cut_windows(images, sources.long().to(device), offsets.long().to(device))

    parts, owners, shifts = [], [], []
    for k, (rows, (ox, oy)) in enumerate(zip(source_rows, offset_rows, strict=True)):
        for quadrant, i in enumerate(rows):
            parts.append(targets[i])
            owners.append(k)
            shifts.append((size * (quadrant % 2) - ox, size * (quadrant // 2) - oy))
    if not parts:
        return out, torch.zeros(0, 6, device=device)
    counts = torch.tensor([len(p) for p in parts], device=device)
    boxes = torch.cat(parts).to(device)
    shift = torch.tensor(shifts, dtype=boxes.dtype, device=device).repeat(1, 2)
    shift = torch.repeat_interleave(shift, counts, 0)
    owner = torch.repeat_interleave(torch.tensor(owners, device=device), counts)
    xyxy, keep = clip_boxes(
        boxes[:, 1:5] + shift,
        size,
        size,
        min_box_size=min_box_size,
        min_area_ratio=min_area_ratio,
    )
    rows_out = torch.cat((owner[:, None].to(boxes.dtype), boxes[:, :1], xyxy), 1)
    return out, rows_out[keep]


def mosaic_batch(
    cache: ImageCache,
    indices: torch.Tensor,
    p: float,
    generator: torch.Generator,
    *,
    min_box_size: float = 2.0,
    min_area_ratio: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather cache rows ``indices``, each replaced by a mosaic with probability ``p``.

    A mosaic row tiles its own image (top-left) and 3 images drawn uniformly from the whole
    cache, then cuts a window at a uniform offset (``compose_mosaic``). The other rows are the
    plain cached images and targets, exactly as ``iterate_batches`` gathers them without mosaic.
    Always draws the same random numbers from ``generator`` (B uniforms, B x 3 rows, B x 2
    offsets), whatever rows are chosen.

    Args:
        cache: Letterboxed images and targets (on any device).
        indices: ``(B,)`` int64 cache rows of the batch.
        p: Probability that a row becomes a mosaic, in ``[0, 1]``.
        generator: CPU ``torch.Generator`` all randomness comes from.
        min_box_size: A mosaic box thinner than this (px) after clipping is dropped.
        min_area_ratio: A mosaic box keeping no more than this fraction of its area is dropped.

    Returns:
        ``(uint8 images (B, 3, S, S), targets (M, 6) (batch_index, class, x1, y1, x2, y2))`` on
        the cache's device, targets sorted by batch index.

    Example:
        >>> import torch
        >>> cache = ImageCache(torch.zeros(3, 3, 32, 32, dtype=torch.uint8),
        ...     [torch.tensor([[0, 1.0, 2.0, 9.0, 9.0]]), torch.zeros(0, 5), torch.zeros(0, 5)],
        ...     torch.ones(3), torch.zeros(3, 2), torch.full((3, 2), 32), torch.arange(3), 32)
        >>> g = torch.Generator().manual_seed(0)
        >>> images, targets = mosaic_batch(cache, torch.tensor([0, 1]), 1.0, g)
        >>> images.shape, targets.shape[1]
        (torch.Size([2, 3, 32, 32]), 6)
    """
    if not 0 <= p <= 1:
        raise ValueError(f"mosaic_batch: p={p} outside [0, 1]")
    device, size = cache.device, cache.imgsz
    rows = indices.long().cpu()
    b = len(rows)
    chosen = torch.rand(b, generator=generator) < p
    others = torch.randint(len(cache), (b, 3), generator=generator)
    offsets = torch.randint(size + 1, (b, 2), generator=generator)

    plain = (~chosen).nonzero()[:, 0]
    plain_images, targets = cache.gather(rows[plain])
    targets[:, 0] = plain.to(device)[targets[:, 0].long()].to(targets.dtype)  # -> batch rows
    mixed = chosen.nonzero()[:, 0]
    if not len(mixed):
        return plain_images, targets

    sources = torch.cat((rows[:, None], others), 1)[mixed]
    mosaic, mosaic_targets = compose_mosaic(
        cache.images,
        cache.targets,
        sources,
        offsets[mixed],
        min_box_size=min_box_size,
        min_area_ratio=min_area_ratio,
    )
    if len(plain):
        images = mosaic.new_empty((b, *mosaic.shape[1:]))
        images[plain.to(device)] = plain_images
        images[mixed.to(device)] = mosaic
    else:
        images = mosaic
    owner = mixed.to(device)[mosaic_targets[:, 0].long()]
    mosaic_targets = torch.cat((owner[:, None].to(targets.dtype), mosaic_targets[:, 1:]), 1)
    targets = torch.cat((targets, mosaic_targets))
    order = torch.sort(targets[:, 0], stable=True).indices
    return images, targets[order]
