"""Deterministic subset sampler that keeps every class represented.

Algorithm (``subset_indices``):
    1. Shuffle the image indices with ``numpy.random.default_rng(seed)``.
    2. Greedy class cover: repeatedly take the image that contains the most classes not yet
       covered (ties: the earliest in the shuffled order), until every class present in the
       dataset is covered or ``n`` images are taken.
    3. Fill up to ``n`` with the remaining images in shuffled order (background images included).
    The result is sorted (dataset order). The same (dataset, n, seed) always gives the same
    subset; if ``n`` is smaller than the cover needs, as many classes as fit are covered.

Example:
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from nas.data.records import DetectionDataset, Sample
    >>> s = [Sample(i, Path(f"{i}.jpg"), 8, 8, np.array([[0, 0, 4, 4]]), np.array([i % 3]))
    ...      for i in range(9)]
    >>> ds = DetectionDataset(["a", "b", "c"], s)
    >>> sorted({int(ds[i].classes[0]) for i in subset_indices(ds, 3, seed=0)})
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np

from nas.data.records import DetectionDataset

__all__ = ["subset", "subset_indices"]


def subset_indices(dataset: DetectionDataset, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` images covering every class present (see module docstring).

    Args:
        dataset: The dataset to sample from.
        n: Number of images (``n >= len(dataset)`` gives all indices).
        seed: Seed of the ``numpy.random.Generator``.
    """
    if n < 1:
        raise ValueError(f"subset: n must be >= 1, got {n}")
    total = len(dataset)
    if n >= total:
        return np.arange(total)
    order = np.random.default_rng(seed).permutation(total)
    has = np.zeros((total, max(dataset.num_classes, 1)), dtype=bool)
    for i, s in enumerate(dataset.samples):
        has[i, s.classes] = True
    has = has[order]  # rows in shuffled order
    uncovered = has.any(0)
    chosen = np.zeros(total, dtype=bool)
    taken = 0
    while uncovered.any() and taken < n:
        gain = (has & uncovered).sum(1)
        gain[chosen] = -1
        best = int(np.argmax(gain))  # first maximum = earliest in shuffled order
        if gain[best] <= 0:
            break
        chosen[best] = True
        uncovered &= ~has[best]
        taken += 1
    rest = np.flatnonzero(~chosen)[: n - taken]
    chosen[rest] = True
    return np.sort(order[chosen])


def subset(dataset: DetectionDataset, n: int | None, seed: int = 0) -> DetectionDataset:
    """The ``subset_indices`` images of ``dataset`` (all of it when ``n`` is None)."""
    if n is None or n >= len(dataset):
        return dataset
    return dataset.select(subset_indices(dataset, n, seed))
