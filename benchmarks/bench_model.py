"""Model builder figures: build + count time against ultralytics, and inference latency.

Run from the repository root::

    .venv/bin/python benchmarks/bench_model.py [--device cpu|cuda] [--threads 2] [--repeats 10]

1. Time to build yolov8n and count its parameters and GFLOPs, ours (``build_model`` +
   ``count_params`` + ``count_gflops``) against ultralytics (``DetectionModel`` + parameter sum +
   ``get_flops``) in the same process when ultralytics is installed; prints the ratio. Each side
   is run once to warm up, then timed ``--build-repeats`` times (median).
2. Forward latency (eval mode, ``torch.inference_mode``) of yolov8n, yolov8n-ghostnet and
   yolov8n-adown at batch 1 and 8, image size 640 and 320, with ``measure_latency``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from nas.model import build_model, count_gflops, count_params, measure_latency

MODELS = ("yolov8n.yaml", "yolov8n-ghostnet.yaml", "yolov8n-adown.yaml")


def _median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (imports, kernel registration)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_build(repeats: int, threads: int) -> None:
    """Build + count yolov8n: ours, then ultralytics' when importable."""

    def ours() -> tuple[int, float]:
        model = build_model("yolov8n.yaml")
        return count_params(model), count_gflops(model, 640)

    ours_s, (params, gflops) = _median_seconds(ours, repeats)
    print(f"{'build+count yolov8n (ours)':<44s} {ours_s * 1000:9.1f} ms  "
          f"params {params:,}  GFLOPs {gflops:.4f}")
    try:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "0")
        os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp())
        from ultralytics.nn.tasks import DetectionModel
        from ultralytics.utils.torch_utils import get_flops
    except ImportError:
        print("ultralytics not installed: no reference timing")
        return
    torch.set_num_threads(threads)  # importing ultralytics changes thread settings

    def theirs() -> tuple[int, float]:
        model = DetectionModel("yolov8n.yaml", verbose=False)
        return sum(p.numel() for p in model.parameters()), get_flops(model, 640)

    ref_s, (ref_params, ref_gflops) = _median_seconds(theirs, repeats)
    print(f"{'build+count yolov8n (ultralytics)':<44s} {ref_s * 1000:9.1f} ms  "
          f"params {ref_params:,}  GFLOPs {ref_gflops:.4f}")
    print(f"{'ratio ours / ultralytics':<44s} {ours_s / ref_s:9.2f} x")


def bench_latency(device: str, repeats: int, warmup: int) -> None:
    """Latency table of the reference models at batch 1 and 8, image size 640 and 320."""
    print(f"\nlatency on {device} ({torch.get_num_threads()} threads), median of {repeats}:")
    print(f"{'model':<24s}{'imgsz':>6s}{'batch':>6s}{'median ms':>11s}{'p90 ms':>9s}"
          f"{'img/s':>8s}")
    for name in MODELS:
        model = build_model(name).to(device)
        for imgsz in (640, 320):
            for batch in (1, 8):
                stats = measure_latency(model, imgsz=imgsz, batch=batch, device=device,
                                        warmup=warmup, repeats=repeats)
                print(f"{name:<24s}{imgsz:>6d}{batch:>6d}{stats.median_ms:>11.1f}"
                      f"{stats.p90_ms:>9.1f}{stats.images_per_second:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward passes")
    parser.add_argument("--build-repeats", type=int, default=3, help="timed builds per side")
    parser.add_argument("--skip-build", action="store_true", help="latency only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    print(f"torch {torch.__version__}, threads {args.threads}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(args.device)})" if args.device != "cpu" else ""))
    if not args.skip_build:
        bench_build(args.build_repeats, args.threads)
    bench_latency(args.device, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
