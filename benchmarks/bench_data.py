"""Data pipeline figures: synthetic generation, caching, batching and augmentation speed.

Run from the repository root::

    .venv/bin/python benchmarks/bench_data.py [--imgsz 256] [--batch 16] [--threads 2]

Prints one line per measurement. Generation runs into a fresh temporary folder (the on-disk
cache is not used), so it measures the real cost of a first run with the default parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import torch

from nas.data import (
    DataConfig,
    DataWarning,
    SyntheticConfig,
    cache_images,
    generate_synthetic,
    iterate_batches,
    load_coco,
    load_voc,
    load_yolo,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{label:<48s} {time.perf_counter() - start:8.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", DataWarning)
    cfg = DataConfig().synthetic
    assert isinstance(cfg, SyntheticConfig)
    with tempfile.TemporaryDirectory() as tmp:
        n = cfg.num_train + cfg.num_val
        folder = _timed(
            f"generate synthetic ({n} images, {cfg.image_size} px)", generate_synthetic, cfg, tmp
        )
        train = load_coco(folder / "annotations" / "train.json", folder / "images" / "train")
        print(
            f"synthetic train: {len(train)} images, {train.num_boxes} boxes, "
            f"{train.num_boxes / len(train):.2f} per image, class counts "
            f"{train.class_counts().tolist()}"
        )
        cache = _timed(
            f"cache train at {args.imgsz} px", cache_images, train, args.imgsz, progress=False
        )
    default = DataConfig().augment
    runs = {
        "no augmentation": None,
        "with augmentation": default,
        "augmentation + mosaic 1.0": dataclasses.replace(default, mosaic=1.0),
    }
    per_image = {}
    for label, augment in runs.items():
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for _ in iterate_batches(cache, args.batch, shuffle=True, generator=g, augment=augment):
            pass
        seconds = time.perf_counter() - start
        per_image[label] = 1000 * seconds / len(cache)
        print(
            f"one epoch of batches, {label:<26s}{seconds:8.2f} s "
            f"({per_image[label]:.2f} ms/image)"
        )
    extra = per_image["augmentation + mosaic 1.0"] - per_image["with augmentation"]
    print(
        f"mosaic cost: +{extra:.2f} ms/image, "
        f"ratio {per_image['augmentation + mosaic 1.0'] / per_image['with augmentation']:.2f}x"
    )
    if (SHARED / "coco128").is_dir():
        _timed("load coco128 (YOLO txt)", load_yolo, SHARED / "coco128" / "coco128.yaml")
        _timed(
            "load coco128 (COCO json)",
            load_coco,
            SHARED / "coco128" / "annotations" / "instances_train2017.json",
            SHARED / "coco128" / "images" / "train2017",
        )
    if (SHARED / "bccd").is_dir():
        _timed("load bccd train (VOC XML)", load_voc, SHARED / "bccd", "train")


if __name__ == "__main__":
    main()
