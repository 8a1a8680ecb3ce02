"""Mini-batches from an ``ImageCache``: float images on the cache's device plus flat targets.

With augmentation, the uint8 images are gathered from the cache (each replaced by a mosaic with
probability ``AugmentConfig.mosaic``, ``nas.data.mosaic.mosaic_batch``), then
``augment_batch`` applies the affine (nearest neighbour, on uint8) and the colour jitter.

Example:
    >>> import torch
    >>> from nas.data.cache import ImageCache
    >>> cache = ImageCache(torch.zeros(3, 3, 32, 32, dtype=torch.uint8),
    ...     [torch.tensor([[0, 1.0, 2.0, 9.0, 9.0]]), torch.zeros(0, 5), torch.zeros(0, 5)],
    ...     torch.ones(3), torch.zeros(3, 2), torch.full((3, 2), 32), torch.arange(3), 32)
    >>> [b.targets.shape[0] for b in iterate_batches(cache, 2, shuffle=False, generator=None)]
    [1, 0]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nas.data.augment import AugmentConfig, augment_batch
from nas.data.cache import ImageCache
from nas.data.mosaic import mosaic_batch

__all__ = ["Batch", "collate", "iterate_batches"]


@dataclass
class Batch:
    """One mini-batch.

    Attributes:
        images: ``(B, 3, S, S)`` float32 in 0..1 on the cache's device.
        targets: ``(M, 6)`` float32 ``(batch_index, class, x1, y1, x2, y2)`` in letterboxed
            pixels, same device.
        indices: ``(B,)`` int64 rows of the cache (``cache.image_ids[indices]`` gives the
            COCO image ids), same device.
    """

    images: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor


def collate(cache: ImageCache, indices: torch.Tensor) -> Batch:
    """The batch of cache rows ``indices`` (no augmentation)."""
    images, targets = cache.gather(indices)
    return Batch(images.float().div_(255), targets, indices.to(cache.device))


def iterate_batches(
    cache: ImageCache,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    augment: AugmentConfig | None = None,
    drop_last: bool = False,
) -> Iterator[Batch]:
    """Yield the batches of one pass over ``cache``.

    Args:
        cache: Letterboxed images and targets.
        batch_size: Images per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: Visit rows in a random order drawn from ``generator``.
        generator: CPU ``torch.Generator`` for the order and the augmentation (required when
            ``shuffle`` or ``augment`` is used; results are deterministic given its seed).
        augment: Augmentation applied on the device to each batch (None: none): mosaic when
            the batch is gathered (``augment.mosaic > 0``), then affine and colour jitter.
        drop_last: Skip a final incomplete batch.
    """
    if batch_size < 1:
        raise ValueError(f"iterate_batches: batch_size must be >= 1, got {batch_size}")
    use_augment = augment is not None and augment.enabled
    if generator is None and (shuffle or use_augment):
        raise ValueError("iterate_batches: shuffle/augment need a torch.Generator")
    n = len(cache)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        indices = order[start : start + batch_size]
        if use_augment:
            assert augment is not None and generator is not None
            if augment.mosaic > 0:
                images, targets = mosaic_batch(
                    cache,
                    indices,
                    augment.mosaic,
                    generator,
                    min_box_size=augment.min_box_size,
                    min_area_ratio=augment.min_area_ratio,
                )
            else:
                images, targets = cache.gather(indices)
            # augmented as uint8 (mosaic, affine), then converted to float
            images, targets = augment_batch(images, targets, augment, generator)
            yield Batch(images, targets, indices.to(cache.device))
        else:
            yield collate(cache, indices)
