"""Mosaic augmentation: the pure window geometry, the random batch gather, the wiring."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nas.data import (
    AugmentConfig,
    ImageCache,
    collate,
    compose_mosaic,
    iterate_batches,
    mosaic_batch,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
S = 64
WHITE = 255


def _cache(targets: list[torch.Tensor], images: torch.Tensor | None = None) -> ImageCache:
    n = len(targets)
    if images is None:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n, 3, S, S), dtype=torch.uint8, generator=g)
    return ImageCache(
        images,
        targets,
        torch.ones(n),
        torch.zeros(n, 2),
        torch.full((n, 2), S),
        torch.arange(n),
        S,
    )


def _random_cache(n: int = 12, seed: int = 0, device: str = "cpu") -> ImageCache:
    """Random images, 0 to 4 random boxes per image (some images without any)."""
    g = torch.Generator().manual_seed(seed)
    targets = []
    for i in range(n):
        k = int(torch.randint(0, 5, (1,), generator=g)) if i % 4 else 0
        xy = torch.rand(k, 2, generator=g) * (S - 12)
        wh = 3 + torch.rand(k, 2, generator=g) * 20
        boxes = torch.cat((xy, (xy + wh).clamp(max=S)), 1)
        classes = torch.randint(0, 3, (k, 1), generator=g).float()
        targets.append(torch.cat((classes, boxes), 1).to(device))
    images = torch.randint(0, 256, (n, 3, S, S), dtype=torch.uint8, generator=g)
    cache = _cache(targets, images.to(device))
    return dataclasses.replace(cache, ratio=cache.ratio.to(device), pad=cache.pad.to(device))


def _painted() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """4 images of distinct constant colours, their boxes painted white."""
    boxes = [
        [[0, 30.0, 20.0, 50.0, 40.0]],  # top-left: fully inside the window below
        [[1, 4.0, 10.0, 16.0, 30.0], [9, 18.5, 30.0, 28.5, 40.0]],  # top-right; 2nd: thin
        [[2, 10.0, 0.0, 30.0, 20.0]],  # bottom-left: crosses the window's left edge
        [[3, 30.0, 30.0, 50.0, 50.0], [3, 0.0, 4.0, 12.0, 60.0]],  # outside; 7% inside
    ]
    images = torch.empty(4, 3, S, S, dtype=torch.uint8)
    for i, rows in enumerate(boxes):
        colour = torch.tensor([20 + 50 * i, 100, 200 - 40 * i], dtype=torch.uint8)
        images[i] = colour[:, None, None]
        for _, x1, y1, x2, y2 in rows:
            images[i, :, int(y1) : int(y2), int(x1) : int(x2)] = WHITE
    return images, [torch.tensor(r) for r in boxes]


# ---------------------------------------------------------------- pure geometry


def test_compose_mosaic_places_quadrants_and_boxes_exactly():
    images, targets = _painted()
    ox, oy = 20, 8  # window [20, 84) x [8, 72) of the 128 x 128 grid: borders at 44 and 56
    out, tg = compose_mosaic(
        images, targets, torch.tensor([[0, 1, 2, 3]]), torch.tensor([[ox, oy]])
    )
    assert out.shape == (1, 3, S, S) and out.dtype == torch.uint8
    cx, cy = S - ox, S - oy
    assert torch.equal(out[0, :, :cy, :cx], images[0, :, oy:, ox:])
    assert torch.equal(out[0, :, :cy, cx:], images[1, :, oy:, :ox])
    assert torch.equal(out[0, :, cy:, :cx], images[2, :, :oy, ox:])
    assert torch.equal(out[0, :, cy:, cx:], images[3, :, :oy, :ox])
    expected = torch.tensor(
        [
            [0, 0, 10.0, 12.0, 30.0, 32.0],  # (30, 20, 50, 40) - (20, 8)
            [0, 1, 48.0, 2.0, 60.0, 22.0],  # (4, 10, 16, 30) + (44, -8)
            [0, 2, 0.0, 56.0, 10.0, 64.0],  # (-10, 56, 10, 76) clipped, 20% of it kept
        ]
    )  # dropped: class 9 clipped to 1.5 px wide, class 3 outside or 7% inside
    torch.testing.assert_close(tg, expected)
    for _, _, x1, y1, x2, y2 in tg.tolist():
        patch = out[0, :, int(y1) : int(y2), int(x1) : int(x2)]
        assert patch.numel() and bool((patch == WHITE).all())  # the box sits on its object
    window = (images, targets, torch.tensor([[0, 1, 2, 3]]), torch.tensor([[ox, oy]]))
    tighter = compose_mosaic(*window, min_area_ratio=0.25)[1]
    assert tighter[:, 1].tolist() == [0, 1]  # 20% left of class 2 is now too little
    looser = compose_mosaic(*window, min_box_size=1.0)[1]
    assert looser[:, 1].tolist() == [0, 1, 9, 2]  # 1.5 px (15% of it) now wide enough
    torch.testing.assert_close(looser[2], torch.tensor([0, 9, 62.5, 22.0, 64.0, 32.0]))


def test_compose_mosaic_extreme_offsets_give_single_images_and_rows_stay_grouped():
    images, targets = _painted()
    sources = torch.tensor([[3, 0, 0, 0], [2, 2, 2, 1], [0, 1, 2, 3]])
    offsets = torch.tensor([[0, 0], [S, S], [S, 0]])
    out, tg = compose_mosaic(images, targets, sources, offsets)
    assert torch.equal(out[0], images[3])  # window = top-left tile
    assert torch.equal(out[1], images[1])  # window = bottom-right tile
    assert torch.equal(out[2], images[1])  # window = top-right tile
    assert tg[:, 0].tolist() == [0, 0, 1, 1, 2, 2]  # grouped by batch row
    torch.testing.assert_close(tg[:2, 1:], targets[3])  # unchanged when fully inside
    torch.testing.assert_close(tg[2:4, 1:], targets[1])
    torch.testing.assert_close(tg[4:, 1:], targets[1])


def test_compose_mosaic_matches_cropping_the_tiled_grid():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, S, S), dtype=torch.uint8, generator=g)
    sources = torch.randint(0, 5, (9, 4), generator=g)
    offsets = torch.randint(0, S + 1, (9, 2), generator=g)
    offsets[:4] = torch.tensor([[0, 0], [S, S], [0, S], [S - 1, 1]])
    empty = [torch.zeros(0, 5)] * 5
    out, _ = compose_mosaic(images, empty, sources, offsets)
    for k, ((a, b, c, d), (ox, oy)) in enumerate(
        zip(sources.tolist(), offsets.tolist(), strict=True)
    ):
        top = torch.cat((images[a], images[b]), 2)
        grid = torch.cat((top, torch.cat((images[c], images[d]), 2)), 1)  # (3, 2S, 2S)
        assert torch.equal(out[k], grid[:, oy : oy + S, ox : ox + S]), (k, ox, oy)


def test_compose_mosaic_without_boxes_and_rejects_bad_offsets():
    images = torch.zeros(2, 3, S, S, dtype=torch.uint8)
    empty = [torch.zeros(0, 5), torch.zeros(0, 5)]
    out, tg = compose_mosaic(images, empty, torch.tensor([[0, 1, 1, 0]]), torch.tensor([[5, 9]]))
    assert out.shape == (1, 3, S, S) and tg.shape == (0, 6)
    with pytest.raises(ValueError, match="offsets"):
        compose_mosaic(images, empty, torch.tensor([[0, 1, 1, 0]]), torch.tensor([[S + 1, 0]]))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        compose_mosaic(images, empty, torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))


# ---------------------------------------------------------------- random batch gather


@pytest.mark.parametrize("device", DEVICES)
def test_mosaic_batch_p0_is_exactly_the_plain_gather(device: str):
    cache = _random_cache(device=device)
    indices = torch.tensor([5, 0, 4, 11, 3, 8])
    images, targets = mosaic_batch(cache, indices, 0.0, torch.Generator().manual_seed(0))
    plain = collate(cache, indices)
    assert images.dtype == torch.uint8
    assert torch.equal(images.float() / 255, plain.images)
    assert torch.equal(targets, plain.targets)


@pytest.mark.parametrize("device", DEVICES)
def test_mosaic_batch_p1_shape_dtype_device_and_boxes_inside(device: str):
    cache = _random_cache(device=device)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        indices = torch.randperm(len(cache), generator=g)[:6]
        images, targets = mosaic_batch(cache, indices, 1.0, g, min_box_size=2.0)
        assert images.shape == (6, 3, S, S) and images.dtype == torch.uint8
        assert images.device == cache.device and targets.device == cache.device
        assert targets.shape[1] == 6 and targets.dtype == torch.float32
        bi = targets[:, 0]
        assert torch.equal(bi, bi.sort().values) and bool(((bi >= 0) & (bi < 6)).all())
        box = targets[:, 2:]
        assert bool(((box >= 0) & (box <= S)).all())
        assert bool((box[:, 2:] - box[:, :2] > 2.0).all())
        assert set(targets[:, 1].tolist()) <= {0.0, 1.0, 2.0}
        plain = cache.images[indices.to(device)]
        assert not torch.equal(images, plain)  # random images: some window moved
    # a single-image cache: the mosaic tiles the image with itself
    one = _cache([torch.zeros(0, 5)], cache.images[:1].cpu())
    out, tg = mosaic_batch(one, torch.tensor([0]), 1.0, g)
    assert out.shape == (1, 3, S, S) and tg.shape == (0, 6)


def test_mosaic_batch_is_deterministic_given_the_generator():
    cache = _random_cache()
    indices = torch.arange(8)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return mosaic_batch(cache, indices, 0.5, torch.Generator().manual_seed(seed))

    (a, ta), (b, tb), (c, _) = run(3), run(3), run(4)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(a, c)


def test_mosaic_batch_mixes_plain_and_mosaic_rows():
    images, targets = _painted()
    cache = _cache(targets, images)
    g = torch.Generator().manual_seed(0)
    seen_plain = seen_mosaic = 0
    for _ in range(10):
        out, tg = mosaic_batch(cache, torch.tensor([0, 1, 2, 3]), 0.5, g)
        assert torch.equal(tg[:, 0], tg[:, 0].sort().values)
        for k in range(4):
            rows = tg[tg[:, 0] == k, 1:]
            if torch.equal(out[k], images[k]) and torch.equal(rows, targets[k]):
                seen_plain += 1
            else:
                seen_mosaic += 1
            for _, x1, y1, x2, y2 in rows.tolist():  # every box still sits on white pixels
                patch = out[k, :, int(y1 + 0.5) : int(y2), int(x1 + 0.5) : int(x2)]
                assert bool((patch == WHITE).all())
    assert seen_plain > 5 and seen_mosaic > 5


def test_augment_config_validates_mosaic():
    assert AugmentConfig().mosaic == 0.0
    assert dataclasses.replace(AugmentConfig(mosaic=1.0), mosaic=0.0).mosaic == 0.0
    with pytest.raises(ValueError, match="mosaic=1.5"):
        AugmentConfig(mosaic=1.5)
    with pytest.raises(ValueError, match="mosaic"):
        mosaic_batch(_random_cache(), torch.arange(2), -0.1, torch.Generator())


# ---------------------------------------------------------------- wiring


def test_iterate_batches_applies_mosaic_before_the_other_augmentation():
    cache = _random_cache()
    only = AugmentConfig(
        mosaic=1.0, fliplr=0, scale=0, translate=0, hsv_h=0, hsv_s=0, hsv_v=0
    )  # nothing but the mosaic: the batches equal mosaic_batch's output, as float
    g, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for batch in iterate_batches(cache, 5, shuffle=False, generator=g, augment=only):
        images, targets = mosaic_batch(cache, batch.indices, 1.0, ref)
        assert torch.equal(batch.images, images.float() / 255)
        assert torch.equal(batch.targets, targets)
    full = dataclasses.replace(AugmentConfig(), mosaic=0.5)
    g = torch.Generator().manual_seed(0)
    for batch in iterate_batches(cache, 5, shuffle=True, generator=g, augment=full):
        assert batch.images.dtype == torch.float32 and batch.images.max() <= 1
        assert bool(((batch.targets[:, 2:] >= 0) & (batch.targets[:, 2:] <= S)).all())
