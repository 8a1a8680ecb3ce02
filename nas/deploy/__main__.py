"""``python -m nas.deploy``: export a model YAML + weights to ONNX (optionally INT8), time it.

Usage::

    python -m nas.deploy MODEL.yaml [--weights W.pt] [--nc N] [--imgsz 320] [--out m.onnx]
                         [--int8 --data NAME --calibration-images 64] [--threads T]

Writes the FP32 graph (and ``<out stem>-int8.onnx`` with ``--int8``, calibrated on the
``conf/data`` option's training images), then prints the onnxruntime latency of each.
``--weights`` may be a pruned checkpoint from ``nas.compress`` (then MODEL.yaml may be ``-``).
Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nas.deploy.errors import DeployError

__all__ = ["main"]


def _run(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.deploy",
                                     description=(__doc__ or "").split("\n\n")[0])  # fmt: skip
    parser.add_argument("model", help="model YAML (path or models/ name), or - for a checkpoint")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--nc", type=int, default=None, help="classes (default: the YAML's)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--out", default=None, help="default: <model stem>.onnx")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--data", default="synthetic", help="conf/data option (calibration)")
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    from nas.deploy.checkpoint import load_detector
    from nas.deploy.latency import compare_latency
    from nas.deploy.onnx_export import export_onnx

    yaml = None if args.model == "-" else args.model
    if args.weights is not None and not Path(args.weights).is_file():
        raise DeployError(f"--weights {args.weights}: no such file")
    model = load_detector(yaml, args.weights, nc=args.nc).eval()
    out = Path(args.out or f"{Path(args.model if yaml else args.weights).stem}.onnx")
    paths = {"fp32": export_onnx(model, out, imgsz=args.imgsz)}
    if args.int8:
        from nas.compress.__main__ import _compose
        from nas.data import DataConfig, prepare_data
        from nas.deploy.quantize import quantize_int8

        data_values, _ = _compose(args.data, "brief")
        data = prepare_data(DataConfig.from_dict(data_values), args.imgsz, progress=False)
        if data.num_classes != model.nc:
            raise DeployError(f"--data {args.data} has {data.num_classes} classes, the model "
                              f"{model.nc} (give --nc)")  # fmt: skip
        paths["int8"] = quantize_int8(paths["fp32"], out.with_name(f"{out.stem}-int8.onnx"),
                                      data.train, num_images=args.calibration_images).path
    for name, result in compare_latency(paths, threads=args.threads).items():
        print(f"{name}: {paths[name]}  onnxruntime {result.median_ms:.2f} ms "
              f"(IQR {result.iqr_ms:.2f}, batch 1, {args.imgsz} px, {result.threads} threads)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input (a file, a flag, a value, a missing extra; ``nas.errors.UserError``)
    -> one line on stderr and exit code 2 (``nas.cli.run_cli``); anything else is a bug and keeps
    its traceback."""
    from nas.cli import run_cli

    return run_cli(lambda: _run(argv))


if __name__ == "__main__":
    raise SystemExit(main())
