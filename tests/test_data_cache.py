"""Letterbox, the image cache, batches and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from nas.data import (
    AugmentConfig,
    DetectionDataset,
    ImageCache,
    Sample,
    augment_batch,
    cache_images,
    colour_jitter,
    iterate_batches,
    letterbox_image,
    letterbox_params,
    unletterbox,
)


def _drawn(tmp: Path, name: str, size: tuple[int, int], rect: tuple[int, int, int, int]):
    """A black image with a white rectangle covering pixels [x1, x2) x [y1, y2)."""
    img = Image.new("RGB", size, (0, 0, 0))
    x1, y1, x2, y2 = rect
    ImageDraw.Draw(img).rectangle([x1, y1, x2 - 1, y2 - 1], fill=(255, 255, 255))
    path = tmp / name
    img.save(path)
    return Sample(len(name), path, size[0], size[1], np.array([rect]), np.array([0]))


def _inside_outside(img: torch.Tensor, box, margin: float = 1.5):
    """Mean brightness strictly inside the box (shrunk) and of a ring just outside it."""
    grey = img.float().mean(0)
    h, w = grey.shape
    x1, y1, x2, y2 = box
    inner = grey[int(y1 + margin) : int(y2 - margin), int(x1 + margin) : int(x2 - margin)]
    ox1, oy1 = max(int(x1 - margin - 2), 0), max(int(y1 - margin - 2), 0)
    ox2, oy2 = min(int(x2 + margin + 3), w), min(int(y2 + margin + 3), h)
    ring = torch.ones_like(grey, dtype=torch.bool)
    ring[int(y1 - margin) : int(y2 + margin) + 1, int(x1 - margin) : int(x2 + margin) + 1] = False
    region = torch.zeros_like(ring)
    region[oy1:oy2, ox1:ox2] = True
    return inner.min().item(), grey[ring & region].max().item()


# ---------------------------------------------------------------- letterbox


@pytest.mark.parametrize(
    ("w", "h", "s", "ratio", "pad", "new"),
    [
        (640, 480, 320, 0.5, (0, 40), (320, 240)),
        (480, 640, 320, 0.5, (40, 0), (240, 320)),
        (100, 100, 64, 0.64, (0, 0), (64, 64)),
        (50, 20, 128, 2.56, (0, 38), (128, 51)),  # upscaled; dh = 38.5 -> top 38
        (333, 517, 256, 256 / 517, (45, 0), (165, 256)),  # dw = 45.5 -> left 45
    ],
)
def test_letterbox_params(w, h, s, ratio, pad, new):
    lb = letterbox_params(w, h, s)
    assert lb.ratio == pytest.approx(ratio) and lb.pad == pad and lb.new_size == new


def test_letterbox_geometry_matches_ultralytics():
    augment = pytest.importorskip("ultralytics.data.augment")
    for w, h in [(640, 480), (333, 517), (50, 20), (200, 199)]:
        white = np.full((h, w, 3), 255, np.uint8)
        ref = augment.LetterBox(new_shape=(128, 128), auto=False, center=True)(image=white)
        ours, _ = letterbox_image(Image.fromarray(white), 128)
        np.testing.assert_array_equal(ours.transpose(1, 2, 0) > 200, ref > 200)
        np.testing.assert_array_equal(ours[:, ref[..., 0] < 200], 114)


def test_drawn_rectangle_lands_on_letterboxed_box(tmp_path):
    sample = _drawn(tmp_path, "r.png", (200, 120), (50, 30, 90, 70))
    img, lb = letterbox_image(Image.open(sample.path), 128)
    box = sample.boxes[0] * lb.ratio + np.array(lb.pad * 2)
    inner, ring = _inside_outside(torch.from_numpy(img), box.tolist())
    assert inner > 240 and ring < 20
    back = unletterbox(torch.tensor(box), lb.ratio, lb.pad)
    torch.testing.assert_close(back, torch.tensor(sample.boxes[0], dtype=back.dtype))


# ---------------------------------------------------------------- cache


def _dataset(tmp_path) -> DetectionDataset:
    samples = [
        _drawn(tmp_path, "a.png", (200, 120), (50, 30, 90, 70)),
        _drawn(tmp_path, "bb.png", (90, 160), (10, 100, 40, 150)),
        _drawn(tmp_path, "ccc.png", (64, 64), (20, 20, 44, 44)),
    ]
    samples[2] = Sample(3, samples[2].path, 64, 64, np.zeros((0, 4)), np.zeros(0))
    return DetectionDataset(["box"], samples, tmp_path)


def test_cache_images_letterboxes_images_and_targets(tmp_path):
    ds = _dataset(tmp_path)
    cache = cache_images(ds, 96, "cpu", workers=2, progress=False)
    assert cache.images.shape == (3, 3, 96, 96) and cache.images.dtype == torch.uint8
    assert cache.imgsz == 96 and len(cache) == 3 and cache.device == torch.device("cpu")
    assert cache.image_ids.tolist() == [s.image_id for s in ds.samples]
    assert cache.sizes.tolist() == [[200, 120], [90, 160], [64, 64]]
    assert [len(t) for t in cache.targets] == [1, 1, 0]
    for i in range(2):
        cls, *box = cache.targets[i][0].tolist()
        assert cls == 0
        inner, ring = _inside_outside(cache.images[i], box)
        assert inner > 240 and ring < 20, (i, inner, ring)
        back = cache.to_original(i, cache.targets[i][:, 1:])
        torch.testing.assert_close(back, torch.tensor(ds[i].boxes), atol=1e-4, rtol=0)
    assert torch.all(cache.images[0, :, :18] == 114)  # 200x120 -> 96x58, top pad 19
    with pytest.raises(ValueError, match="multiple of 32"):
        cache_images(ds, 100)


# ---------------------------------------------------------------- batches


def _cache(n: int = 5, s: int = 64) -> ImageCache:
    images = torch.zeros(n, 3, s, s, dtype=torch.uint8)
    targets = []
    for i in range(n):
        x = 4 + 6 * i
        images[i, :, 10:30, x : x + 20] = 255
        targets.append(torch.tensor([[i % 2, x, 10.0, x + 20, 30.0]] * (i % 3)))
    targets = [t.reshape(-1, 5) for t in targets]
    return ImageCache(
        images, targets, torch.ones(n), torch.zeros(n, 2), torch.full((n, 2), s),
        torch.arange(10, 10 + n), s,
    )  # fmt: skip


def test_iterate_batches_covers_every_row_once():
    cache = _cache()
    batches = list(iterate_batches(cache, 2, shuffle=False, generator=None))
    assert [b.indices.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    b = batches[1]
    assert b.images.dtype == torch.float32 and b.images.shape == (2, 3, 64, 64)
    assert b.images.max() == 1.0 and b.images.min() == 0.0
    # row 2 has 2 targets, row 3 has 0: batch_index 0, 0
    assert b.targets.shape == (2, 6) and b.targets[:, 0].tolist() == [0, 0]
    torch.testing.assert_close(b.targets[:, 1:], cache.targets[2])
    g = torch.Generator().manual_seed(3)
    rows = [i for b in iterate_batches(cache, 2, shuffle=True, generator=g) for i in b.indices]
    assert sorted(int(i) for i in rows) == list(range(5))
    drop = list(iterate_batches(cache, 2, shuffle=False, generator=None, drop_last=True))
    assert len(drop) == 2


def test_iterate_batches_is_deterministic_given_the_generator():
    cache = _cache()

    def run(seed: int):
        g = torch.Generator().manual_seed(seed)
        it = iterate_batches(cache, 3, shuffle=True, generator=g, augment=AugmentConfig())
        return [(b.indices.clone(), b.images.clone(), b.targets.clone()) for b in it]

    a, b, c = run(0), run(0), run(1)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert torch.equal(u, v)
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_iterate_batches_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(_cache(), 0, shuffle=False, generator=None))
    with pytest.raises(ValueError, match="Generator"):
        next(iterate_batches(_cache(), 2, shuffle=True, generator=None))


# ---------------------------------------------------------------- augmentation


def test_augment_keeps_boxes_on_the_drawn_objects():
    s = 96
    images = torch.zeros(8, 3, s, s)
    rows = []
    for i in range(8):
        x1, y1 = 10 + 7 * i, 20 + 3 * i
        images[i, :, y1 : y1 + 24, x1 : x1 + 16] = 1.0
        rows.append([i, i % 3, x1, y1, x1 + 16, y1 + 24])
    targets = torch.tensor(rows, dtype=torch.float32)
    cfg = AugmentConfig(fliplr=0.5, scale=0.3, translate=0.1, hsv_h=0, hsv_s=0, hsv_v=0)
    g = torch.Generator().manual_seed(0)
    out, tg = augment_batch(images, targets, cfg, g)
    assert out.shape == images.shape and len(tg) == 8  # all boxes stay inside at 10% shift
    torch.testing.assert_close(tg[:, :2], targets[:, :2])
    moved = 0
    for row in tg:
        i = int(row[0])
        inner, ring = _inside_outside(out[i] * 255, row[2:].tolist(), margin=1.5)
        assert inner > 240 and ring < 15, (i, inner, ring, row)
        moved += int(not torch.allclose(row[2:], targets[i, 2:]))
    assert moved >= 6


def test_augment_uint8_nearest_path_matches_the_float_path():
    s = 96
    images = torch.zeros(8, 3, s, s, dtype=torch.uint8)
    rows = []
    for i in range(8):
        x1, y1 = 12 + 6 * i, 18 + 4 * i
        images[i, :, y1 : y1 + 20, x1 : x1 + 18] = 255
        rows.append([i, 0, x1, y1, x1 + 18, y1 + 20])
    targets = torch.tensor(rows, dtype=torch.float32)
    cfg = AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0)
    out8, tg8 = augment_batch(images, targets, cfg, torch.Generator().manual_seed(4))
    outf, tgf = augment_batch(images.float() / 255, targets, cfg, torch.Generator().manual_seed(4))
    assert out8.dtype == torch.float32 and out8.max() <= 1
    torch.testing.assert_close(tg8, tgf)  # same random draws, same boxes
    assert (out8 - outf).abs().mean() < 0.02  # nearest vs bilinear: edges differ only
    for row in tg8:
        inner, ring = _inside_outside(out8[int(row[0])] * 255, row[2:].tolist(), margin=1.5)
        assert inner > 250 and ring < 120, (inner, ring)  # ring may hold the grey 114 fill


def test_augment_flip_only_mirrors_boxes_and_pads_grey():
    s = 64
    images = torch.zeros(1, 3, s, s)
    images[0, :, 8:20, 4:14] = 1.0
    targets = torch.tensor([[0, 0, 4.0, 8.0, 14.0, 20.0]])
    cfg = AugmentConfig(fliplr=1.0, scale=0, translate=0, hsv_h=0, hsv_s=0, hsv_v=0)
    out, tg = augment_batch(images, targets, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(tg, torch.tensor([[0, 0, 50.0, 8.0, 60.0, 20.0]]))
    torch.testing.assert_close(out, images.flip(-1))
    shrink = AugmentConfig(fliplr=0, scale=0.5, translate=0, hsv_h=0, hsv_s=0, hsv_v=0)
    out, _ = augment_batch(torch.zeros(4, 3, s, s), targets[:0], shrink, torch.Generator())
    assert out.shape == (4, 3, s, s)
    corner = out[:, :, 0, 0]  # shrunk images show the grey 114 fill in the corners
    assert ((corner - 114 / 255).abs() < 1e-4).any()


def test_augment_drops_boxes_pushed_out_of_the_image():
    s = 64
    images = torch.zeros(16, 3, s, s)
    # tiny boxes at the very edge: any translation towards the border removes them
    targets = torch.tensor([[i, 0, 0.0, 0.0, 3.0, 3.0] for i in range(16)])
    cfg = AugmentConfig(fliplr=0, scale=0.2, translate=0.2, hsv_h=0, hsv_s=0, hsv_v=0)
    _, tg = augment_batch(images, targets, cfg, torch.Generator().manual_seed(0))
    assert len(tg) < 16
    assert torch.all(tg[:, 2:] >= 0) and torch.all(tg[:, 2:] <= s)
    assert torch.all(tg[:, 4] - tg[:, 2] > cfg.min_box_size)


def test_colour_jitter_keeps_grey_grey_and_stays_in_range():
    g = torch.Generator().manual_seed(0)
    grey = torch.full((4, 3, 8, 8), 0.5)
    out = colour_jitter(grey, AugmentConfig(hsv_v=0), g)
    torch.testing.assert_close(out, grey)  # hue and saturation do not move grey
    colour = torch.rand(4, 3, 8, 8, generator=g)
    out = colour_jitter(colour, AugmentConfig(hsv_h=0.5, hsv_s=1.0, hsv_v=1.0), g)
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, colour)
    same = AugmentConfig(enabled=False)
    assert augment_batch(colour, torch.zeros(0, 6), same, g)[0] is colour
    with pytest.raises(ValueError, match="fliplr"):
        AugmentConfig(fliplr=2)
