"""bfloat16 against float32 training on the CPU, at the search's top-rung recipe.

Trains yolov8n on the synthetic default as the default search's top rung does (the brief
recipe, 200 training / 60 validation images, 160 px, 10 epochs, one thread) twice: in float32
(``train.amp=false``) and with ``train.amp=auto`` (bfloat16 autocast where the CPU has native
bfloat16). Prints each run's wall seconds, training images/s and mAP50-95 (``fit`` evaluates in
float32), the ratios amp / float32, and the amp-trained model evaluated again with bfloat16
autocast, to show what evaluating in bfloat16 would cost.

Run:
    python benchmarks/bench_amp.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.data import DataConfig, prepare_data  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.train import TrainConfig, fit  # noqa: E402
from nas.train.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    brief = yaml.safe_load((ROOT / "conf/train/brief.yaml").read_text())
    brief.update(epochs=args.epochs, imgsz=args.imgsz, threads=args.threads, seed=0)
    data = prepare_data(DataConfig.from_dict({"train_subset": 200, "val_subset": 60}),
                        imgsz=args.imgsz, progress=False)  # fmt: skip
    torch.set_num_threads(args.threads)
    runs = {}
    for name, amp in (("float32", False), ("amp=auto", "auto")):
        torch.manual_seed(0)
        model = build_model("yolov8n.yaml", nc=len(data.names))
        start = time.perf_counter()
        result = fit(model, data, TrainConfig.from_dict({**brief, "amp": amp}), progress=False)
        runs[name] = (time.perf_counter() - start, result, model)
    print(f"yolov8n, {len(data.train)} images at {args.imgsz} px, {args.epochs} epochs, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"{'training':<10} {'wall s':>7} {'img/s':>7} {'mAP50-95':>9}")
    for name, (wall, result, _) in runs.items():
        print(f"{name:<10} {wall:7.1f} {result.images_per_second:7.2f} {result.map50_95:9.4f}")
    (w32, r32, _), (wlo, rlo, model) = runs.values()
    print(f"ratio amp/float32: wall {wlo / w32:.2f}, img/s "
          f"{rlo.images_per_second / r32.images_per_second:.2f}")  # fmt: skip
    low = evaluate(model, data, batch_size=32, amp=True)
    print(f"the amp-trained model evaluated in float32 {rlo.map50_95:.4f}, in bfloat16 "
          f"{low.map50_95:.4f} (ratio {low.map50_95 / max(rlo.map50_95, 1e-9):.3f})")


if __name__ == "__main__":
    main()
