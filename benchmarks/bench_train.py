"""Our trainer vs ultralytics, side by side: same model, data, image size, epochs and threads.

Trains yolov8n on BCCD (Pascal VOC, train 205 / val 87 images from ``../shared/data/bccd``)
with ``nas.train.fit`` and then with ultralytics (optional extra, imported inside its function;
skipped with a message if missing), and prints both runs' mAP50, mAP50-95, wall seconds and
training images per second, and the ratios ours / ultralytics.

Recipe, the same for both where the engines allow: SGD lr0 0.01, momentum 0.937, weight decay
5e-4, 3 warm-up epochs, linear decay to 1 %, EMA, flips + scale 0.25 + translate 0.1 + HSV
jitter, no mosaic unless ``--mosaic P`` (probability, both engines; ``--close-mosaic K`` turns
it off for the last K epochs), an optimizer step every batch (ultralytics ``nbs`` = batch; pass
``--nbs 64`` for ultralytics' default accumulation). Each engine reports its own mAP
(ours: pycocotools COCOeval; ultralytics: its own AP integration), on the same val images.
Wall time covers data caching, training and the final evaluation; images/s counts training
steps only.

ultralytics gets a YOLO-format copy of the data (label files plus links to the images) written
into a temporary folder; nothing is written into the repository. It runs offline:
YOLO_OFFLINE=1, YOLO_AUTOINSTALL=0, a temporary YOLO_CONFIG_DIR holding a TTF copied as
Arial.ttf (ultralytics otherwise downloads its fonts).

Usage:
    python benchmarks/bench_train.py --epochs 3 --imgsz 320 --threads 2 --batch 16
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.data import AugmentConfig, DataConfig, DetectionDataset, load_splits, prepare_data  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.train import TrainConfig, fit  # noqa: E402

BCCD = REPO.parent / "shared" / "data" / "bccd"


def write_yolo_copy(train: DetectionDataset, val: DetectionDataset, folder: Path) -> Path:
    """Write a YOLO-format dataset (image links + label txt files + data.yaml) into ``folder``."""
    for split, ds in (("train", train), ("val", val)):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for s in ds.samples:
            link = folder / "images" / split / s.path.name
            if not link.exists():
                link.symlink_to(s.path.resolve())
            lines = []
            for (x1, y1, x2, y2), c in zip(s.boxes.tolist(), s.classes.tolist(), strict=True):
                cx, cy = (x1 + x2) / 2 / s.width, (y1 + y2) / 2 / s.height
                w, h = (x2 - x1) / s.width, (y2 - y1) / s.height
                lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            (folder / "labels" / split / f"{s.path.stem}.txt").write_text("\n".join(lines))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(train.names))
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(
        f"path: {folder}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return data_yaml


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The shared hyperparameters, in ultralytics' names."""
    return {
        "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "lr0": 0.01,
        "lrf": 0.01, "momentum": 0.937, "weight_decay": 5e-4, "warmup_epochs": 3.0,
        "warmup_bias_lr": 0.1, "warmup_momentum": 0.8, "fliplr": 0.5, "scale": 0.25,
        "translate": 0.1, "hsv_h": 0.015, "hsv_s": 0.4, "hsv_v": 0.3, "seed": 0,
        "mosaic": args.mosaic, "close_mosaic": args.close_mosaic,
    }  # fmt: skip


def run_ours(args: argparse.Namespace, amp: bool | str | None = None) -> dict[str, float]:
    """Prepare data, build yolov8n and fit it with our engine (``amp``: ``TrainConfig.amp``)."""
    r = recipe(args)
    data_cfg = DataConfig.from_dict({
        "format": "voc", "path": str(BCCD), "train": "train", "val": "val",
    })  # fmt: skip
    augment = AugmentConfig(fliplr=r["fliplr"], scale=r["scale"], translate=r["translate"],
                            hsv_h=r["hsv_h"], hsv_s=r["hsv_s"], hsv_v=r["hsv_v"],
                            mosaic=r["mosaic"])  # fmt: skip
    cfg = TrainConfig(
        augment=augment,
        epochs=args.epochs, imgsz=args.imgsz, batch_size=args.batch, optimizer="sgd",
        lr0=r["lr0"], lrf=r["lrf"], schedule="linear", momentum=r["momentum"],
        weight_decay=r["weight_decay"], warmup_epochs=r["warmup_epochs"],
        warmup_bias_lr=r["warmup_bias_lr"], warmup_momentum=r["warmup_momentum"],
        close_mosaic=r["close_mosaic"], device=args.device, threads=args.threads, seed=r["seed"],
        amp=amp,
    )  # fmt: skip
    start = time.perf_counter()
    data = prepare_data(data_cfg, args.imgsz, args.device)
    torch.manual_seed(cfg.seed)
    model = build_model("yolov8n.yaml", nc=len(data.names))
    result = fit(model, data, cfg, progress=not args.quiet)
    return {
        "map50": result.map50,
        "map50_95": result.map50_95,
        "wall_s": time.perf_counter() - start,
        "train_img_s": result.images_per_second,
    }


def run_ultralytics(args: argparse.Namespace, work: Path) -> dict[str, float] | None:
    """The same run with ultralytics (None when it is not installed)."""
    config_dir = work / "yolo_config"
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(config_dir))
    try:
        import matplotlib
        import ultralytics
        import ultralytics.utils.torch_utils as torch_utils
        from ultralytics import YOLO
    except ImportError as e:
        print(f"ultralytics not available ({e}); skipping the reference run "
              "(pip install 'liteyolo-nas[ultralytics]')")  # fmt: skip
        return None
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    shutil.copy(font, config_dir / "Ultralytics" / "Arial.ttf")
    torch_utils.NUM_THREADS = args.threads
    train, val = load_splits(DataConfig(format="voc", path=str(BCCD)))
    data_yaml = write_yolo_copy(train, val, work / "bccd_yolo")

    model = YOLO("yolov8n.yaml")
    train_time = {"total": 0.0, "start": 0.0, "images": 0}

    def epoch_start(trainer: Any) -> None:
        train_time["start"] = time.perf_counter()

    def epoch_end(trainer: Any) -> None:
        train_time["total"] += time.perf_counter() - train_time["start"]
        train_time["images"] += len(trainer.train_loader.dataset)

    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_epoch_end", epoch_end)
    start = time.perf_counter()
    model.train(
        data=str(data_yaml), device=args.device, workers=0, cache="ram", project=str(work),
        name="ul", exist_ok=True, plots=False, optimizer="SGD", nbs=args.nbs or args.batch,
        amp=args.device != "cpu", deterministic=True,
        verbose=not args.quiet, **recipe(args),
    )  # fmt: skip
    wall = time.perf_counter() - start
    box = model.trainer.validator.metrics.box
    print(f"(ultralytics {ultralytics.__version__})")
    return {
        "map50": float(box.map50),
        "map50_95": float(box.map),
        "wall_s": wall,
        "train_img_s": train_time["images"] / max(train_time["total"], 1e-9),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run both engines, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--nbs", type=int, default=0,
                        help="ultralytics nominal batch size (0: = --batch, no accumulation)")
    parser.add_argument("--mosaic", type=float, default=0.0, help="mosaic probability")
    parser.add_argument("--close-mosaic", type=int, default=0,
                        help="last epochs without mosaic")
    parser.add_argument("--amp", action="store_true",
                        help="also train ours with amp=auto (bfloat16 on a CPU with AVX512-BF16 "
                             "/ AMX) and print its ratios to ours in float32")  # fmt: skip
    parser.add_argument("--skip-ultralytics", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not (BCCD / "Annotations").is_dir():
        print(f"BCCD not found at {BCCD}; nothing to benchmark")
        return
    print(f"yolov8n on BCCD, {args.epochs} epochs at {args.imgsz} px, batch {args.batch}, "
          f"{args.threads} threads, device {args.device}, mosaic {args.mosaic} "
          f"(off for the last {args.close_mosaic} epochs)")  # fmt: skip
    ours = run_ours(args)
    low = run_ours(args, amp="auto") if args.amp else None
    theirs = None
    if not args.skip_ultralytics:
        with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
            theirs = run_ultralytics(args, Path(tmp))
    rows = [("ours", ours)] + ([("ours amp", low)] if low else []) + (
        [("ultralytics", theirs)] if theirs else [])
    print(f"{'engine':<12} {'mAP50':>7} {'mAP50-95':>9} {'wall s':>8} {'train img/s':>12}")
    for name, r in rows:
        print(f"{name:<12} {r['map50']:7.4f} {r['map50_95']:9.4f} {r['wall_s']:8.1f} "
              f"{r['train_img_s']:12.2f}")  # fmt: skip
    pairs = [("o/u", ours, theirs), ("amp/o", low, ours), ("amp/u", low, theirs)]
    for label, a, b in pairs:
        if a is None or b is None:
            continue

        def ratio(key: str, a: dict = a, b: dict = b) -> str:
            return f"{a[key] / b[key]:.2f}" if b[key] else "n/a"

        print(f"{'ratio ' + label:<12} {ratio('map50'):>7} {ratio('map50_95'):>9} "
              f"{ratio('wall_s'):>8} {ratio('train_img_s'):>12}")  # fmt: skip


if __name__ == "__main__":
    main()
