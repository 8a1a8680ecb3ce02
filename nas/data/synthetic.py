"""The built-in synthetic dataset: coloured shapes on cluttered backgrounds, as COCO json + JPEG.

It is the default dataset, so searches and training run out of the box without downloads.
Everything is deterministic from ``SyntheticConfig`` (seed included): each image has its own
``numpy.random.Generator`` seeded with ``(seed, split, index)``, so the same parameters give the
same bytes whatever the number of worker threads.

Classes are shapes with class-typical but jittered colours (hue +-``hue_jitter`` degrees,
varied saturation and brightness): circle (red), square (blue), triangle (green), star (yellow),
cross (magenta); ``num_classes`` takes the first 3 to 5. Backgrounds are gradients or smooth
low-frequency texture in muted colours, plus pixel noise and distractor lines/arcs/outlines whose
amount grows with ``clutter`` (0 = clean, 1 = busy). Object sizes (longest side) are
log-uniform in ``[min_size, max_size * image_size]`` px; a new object may overlap earlier ones
up to ``max_overlap`` (intersection over the smaller box).

Cache on disk: ``<root>/<params-hash>/`` holding ``manifest.json`` (generator version +
parameters), ``images/{train,val}/*.jpg`` and ``annotations/{train,val}.json``. ``root``
defaults to ``data/synthetic`` under the current working directory (ignored by git). A folder is
regenerated only when the manifest is missing or differs; generation writes to a temporary
folder and renames it, so concurrent processes never see half a dataset.

Example:
    >>> cfg = SyntheticConfig(num_train=8, num_val=4)
    >>> folder = ensure_synthetic(cfg, "/tmp/syn")  # doctest: +SKIP
    >>> sorted(p.name for p in (folder / "annotations").iterdir())  # doctest: +SKIP
    ['train.json', 'val.json']
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nas.data.records import category_id

__all__ = [
    "DEFAULT_SYNTHETIC_ROOT",
    "GENERATOR_VERSION",
    "SHAPES",
    "SyntheticConfig",
    "ensure_synthetic",
    "generate_synthetic",
    "render_image",
]

GENERATOR_VERSION = 3
DEFAULT_SYNTHETIC_ROOT = Path("data") / "synthetic"
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
_HUES = (0.0, 220.0, 120.0, 55.0, 300.0)  # class-typical hue in degrees, one per shape
_SPLITS = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic dataset (every field is part of the cache key).

    Attributes:
        num_train: Training images.
        num_val: Validation images.
        image_size: Side of the square images in px.
        num_classes: Number of shape classes, 3 to 5 (first ones of ``SHAPES``).
        min_objects: Fewest objects per image.
        max_objects: Most objects per image.
        min_size: Smallest object (longest side) in px.
        max_size: Largest object as a fraction of ``image_size``.
        clutter: 0..1, amount of background noise and distractors.
        hue_jitter: Colour variation around the class hue, in degrees.
        max_overlap: Largest intersection over the smaller box between two objects.
        seed: Random seed.
        jpeg_quality: JPEG quality of the written images.
    """

    num_train: int = 400
    num_val: int = 100
    image_size: int = 320
    num_classes: int = 4
    min_objects: int = 2
    max_objects: int = 8
    min_size: float = 14.0
    max_size: float = 0.33
    clutter: float = 0.4
    hue_jitter: float = 15.0
    max_overlap: float = 0.35
    seed: int = 0
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        checks = {
            "num_train": self.num_train >= 1,
            "num_val": self.num_val >= 1,
            "image_size": self.image_size >= 32,
            "num_classes": 3 <= self.num_classes <= len(SHAPES),
            "min_objects": 0 <= self.min_objects <= self.max_objects,
            "min_size": 4 <= self.min_size <= self.max_size * self.image_size,
            "max_size": 0 < self.max_size <= 0.9,
            "clutter": 0 <= self.clutter <= 1,
            "hue_jitter": 0 <= self.hue_jitter <= 60,
            "max_overlap": 0 <= self.max_overlap <= 1,
            "jpeg_quality": 50 <= self.jpeg_quality <= 100,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"synthetic: invalid value for {bad}: {[getattr(self, k) for k in bad]} "
                "(num_classes 3..5, min_objects <= max_objects, 4 <= min_size <= max_size * "
                "image_size, 0 < max_size <= 0.9, clutter 0..1, hue_jitter 0..60, "
                "max_overlap 0..1, jpeg_quality 50..100)"
            )

    @property
    def names(self) -> list[str]:
        """Class names."""
        return list(SHAPES[: self.num_classes])

    def key(self) -> str:
        """Short hash of the generator version and parameters (the cache folder name)."""
        blob = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV (h in degrees, s and v in 0..1) to 8-bit RGB."""
    h = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = v - c
    return tuple(int(round(255 * (t + m))) for t in (r, g, b))  # type: ignore[return-value]


def _background(rng: np.random.Generator, size: int, clutter: float) -> np.ndarray:
    """Muted gradient or smooth texture, plus pixel noise: float32 (size, size, 3) in 0..255."""
    c0 = np.array(_hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.35), rng.uniform(0.2, 0.9)))
    c1 = np.array(_hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.35), rng.uniform(0.2, 0.9)))
    if rng.random() < 0.5:  # linear gradient at a random angle
        angle = rng.uniform(0, 2 * math.pi)
        t = np.linspace(-1, 1, size, dtype=np.float32)
        proj = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]
        w = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    else:  # smooth random texture: a small random grid upsampled bilinearly
        cells = int(rng.integers(2, 9))
        grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
        w = np.asarray(Image.fromarray(grid).resize((size, size), Image.BILINEAR), np.float32)
        w = w / 255.0
    img = c0[None, None, :] * (1 - w[..., None]) + c1[None, None, :] * w[..., None]
    sigma = 2.0 + 14.0 * clutter * rng.uniform(0.3, 1.0)
    img += rng.normal(0.0, sigma, (size, size, 1)).astype(np.float32)  # grey noise
    return np.clip(img, 0, 255).astype(np.float32)


def _distractors(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, clutter: float
) -> None:
    """Thin lines, arcs and unfilled outlines in random colours (not objects)."""
    for _ in range(int(rng.poisson(12 * clutter))):
        colour = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.8), rng.uniform(0.1, 1.0))
        width = int(rng.integers(1, 3))
        x0, y0, x1, y1 = (rng.uniform(-0.1, 1.1, 4) * size).tolist()
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
        else:
            box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
            if kind == 1:
                draw.arc(box, *sorted(rng.uniform(0, 360, 2).tolist()), fill=colour, width=width)
            else:
                draw.rectangle(box, outline=colour, width=width)


def _polygon(
    shape: str, cx: float, cy: float, r: float, aspect: float, angle: float
) -> list[tuple[float, float]] | None:
    """Vertices of a shape of radius ``r`` (None for the circle, which is an ellipse)."""
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * 0.75, y * 0.75) for x, y in pts]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in np.radians([-90, 30, 150])]
    elif shape == "star":
        pts = [
            (
                (1.0 if i % 2 == 0 else 0.45) * math.cos(a),
                (1.0 if i % 2 == 0 else 0.45) * math.sin(a),
            )
            for i, a in enumerate(np.radians(np.arange(10) * 36 - 90))
        ]
    elif shape == "cross":
        t = 0.3
        pts = [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t),
               (-1, t), (-1, -t), (-t, -t)]  # fmt: skip
    else:
        return None
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * aspect * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def _shape(
    shape: str, cx: float, cy: float, r: float, aspect: float, angle: float
) -> tuple[list[tuple[float, float]] | None, np.ndarray]:
    """Vertices (None for the ellipse) and the tight ``xyxy`` box of a shape."""
    pts = _polygon(shape, cx, cy, r, aspect, angle)
    if pts is None:  # ellipse with radii (r * aspect, r)
        return None, np.array([cx - r * aspect, cy - r, cx + r * aspect, cy + r])
    xy = np.array(pts)
    return pts, np.concatenate([xy.min(0), xy.max(0)])


def _inter_over_min(box: np.ndarray, boxes: np.ndarray) -> float:
    """Largest intersection over the smaller area between ``box`` and each of ``boxes``."""
    if not len(boxes):
        return 0.0
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return float((iw * ih / np.minimum(area, areas)).max())


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    pts: list[tuple[float, float]] | None,
    box: np.ndarray,
    colour: tuple[int, int, int],
    outline: tuple[int, ...] | None,
    size: int,
) -> list[float] | None:
    """Draw a shape; return the tight box of the pixels it lit (pixel edges, like COCO).

    The shape is drawn a second time into a small mask with the same rasteriser (shifted by
    whole pixels, which rasterises identically) and the mask's bounding box is the label, so
    sharp tips that light no pixel do not inflate the box.
    """
    ox, oy = max(int(box[0]) - 2, 0), max(int(box[1]) - 2, 0)
    mask = Image.new("L", (min(int(box[2]) + 3, size) - ox, min(int(box[3]) + 3, size) - oy))
    mdraw = ImageDraw.Draw(mask)
    # PIL coordinates are pixel centres, boxes are pixel edges (COCO): shift by half a pixel
    if pts is None:
        xyxy = (box - 0.5).tolist()
        draw.ellipse(xyxy, fill=colour, outline=outline)
        mdraw.ellipse([xyxy[0] - ox, xyxy[1] - oy, xyxy[2] - ox, xyxy[3] - oy], fill=255)
    else:
        draw.polygon([(x - 0.5, y - 0.5) for x, y in pts], fill=colour, outline=outline)
        mdraw.polygon([(x - 0.5 - ox, y - 0.5 - oy) for x, y in pts], fill=255, outline=255)
    lit = mask.getbbox()
    if lit is None:
        return None
    return [float(lit[0] + ox), float(lit[1] + oy), float(lit[2] + ox), float(lit[3] + oy)]


def render_image(
    cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Draw one image.

    Returns:
        ``(RGB image, boxes (N, 4) float32 xyxy px, classes (N,) int64)``.
    """
    size = cfg.image_size
    img = Image.fromarray(_background(rng, size, cfg.clutter).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    _distractors(draw, rng, size, cfg.clutter)
    boxes: list[list[float]] = []
    classes: list[int] = []
    lo, hi = math.log(cfg.min_size), math.log(cfg.max_size * size)
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        cls = int(rng.integers(0, cfg.num_classes))
        shape = SHAPES[cls]
        side = math.exp(rng.uniform(lo, hi))
        aspect = rng.uniform(0.8, 1.25)
        angle = rng.uniform(-0.35, 0.35) if shape in ("square", "cross") else rng.uniform(0, 6.3)
        for _try in range(20):
            cx, cy = rng.uniform(0, size, 2).tolist()
            pts, box = _shape(shape, cx, cy, side / 2, aspect, angle)
            # rescale so that the longest side of the box is exactly the sampled size
            scale = max(box[2] - box[0], box[3] - box[1]) / side
            pts, box = _shape(shape, cx, cy, side / 2 / scale, aspect, angle)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= size and box[3] <= size
            if inside and _inter_over_min(box, np.array(boxes).reshape(-1, 4)) <= cfg.max_overlap:
                break
        else:
            continue
        hue = _HUES[cls] + rng.uniform(-cfg.hue_jitter, cfg.hue_jitter)
        colour = _hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
        outline = tuple(int(c * 0.5) for c in colour) if rng.random() < 0.5 else None
        drawn = _draw_shape(draw, pts, box, colour, outline, size)
        if drawn is None:  # too thin to light any pixel
            continue
        boxes.append(drawn)
        classes.append(cls)
    return (
        img,
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(classes, dtype=np.int64),
    )


def _write_split(cfg: SyntheticConfig, folder: Path, split: str, count: int) -> None:
    """Render ``count`` images of ``split`` into ``folder`` and write its COCO json."""
    image_dir = folder / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> dict:
        rng = np.random.default_rng([cfg.seed, _SPLITS[split], index])
        img, boxes, classes = render_image(cfg, rng)
        name = f"{index:06d}.jpg"
        img.save(image_dir / name, quality=cfg.jpeg_quality)
        return {"index": index, "name": name, "boxes": boxes, "classes": classes}

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        rendered = list(pool.map(one, range(count)))
    images, annotations = [], []
    for r in rendered:
        image_id = r["index"] + 1
        images.append(
            {"id": image_id, "file_name": r["name"], "width": cfg.image_size,
             "height": cfg.image_size}
        )  # fmt: skip
        for box, cls in zip(r["boxes"].tolist(), r["classes"].tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id,
                 "category_id": category_id(cls), "bbox": [box[0], box[1], w, h],
                 "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": category_id(i), "name": n} for i, n in enumerate(cfg.names)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations").mkdir(exist_ok=True)
    (folder / "annotations" / f"{split}.json").write_text(json.dumps(coco))


def _manifest(cfg: SyntheticConfig) -> dict:
    return {"generator_version": GENERATOR_VERSION, "params": asdict(cfg)}


def generate_synthetic(cfg: SyntheticConfig, folder: str | Path) -> Path:
    """Write the dataset into ``folder`` (created; existing content is overwritten)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_split(cfg, folder, "train", cfg.num_train)
    _write_split(cfg, folder, "val", cfg.num_val)
    (folder / "manifest.json").write_text(json.dumps(_manifest(cfg), indent=1, sort_keys=True))
    return folder


def is_current(cfg: SyntheticConfig, folder: Path) -> bool:
    """Whether ``folder`` holds a complete dataset for exactly these parameters."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest == json.loads(json.dumps(_manifest(cfg), sort_keys=True))


def ensure_synthetic(cfg: SyntheticConfig, root: str | Path | None = None) -> Path:
    """The cached dataset folder for ``cfg``, generating it first when needed.

    Args:
        cfg: Generator parameters.
        root: Cache root; default ``data/synthetic`` under the current working directory.

    Returns:
        ``<root>/<cfg.key()>`` with ``images/``, ``annotations/`` and ``manifest.json``.
    """
    root = Path(root) if root is not None else Path.cwd() / DEFAULT_SYNTHETIC_ROOT
    folder = root / cfg.key()
    if is_current(cfg, folder):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.key()}-", dir=root))
    try:
        generate_synthetic(cfg, tmp)
        if folder.exists():  # stale (other version) or written meanwhile by another process
            if is_current(cfg, folder):
                return folder
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its copy first
            if not is_current(cfg, folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
