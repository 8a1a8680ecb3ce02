"""``python -m nas.info MODEL.yaml``: per-layer table and parameter / GFLOPs summary of a model.

MODEL is a path or a name from the shipped ``models/`` folder (``nas.resources``); a scaled
name picks the scale as ultralytics does (``yolov8n.yaml`` -> ``models/yolov8.yaml`` at scale
n). A bad model or argument is one line on stderr and exit code 2.

Example:
    $ python -m nas.info yolov8n.yaml --nc 1
    $ python -m nas.info models/yolov8-ghostnet.yaml --scale s --json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.cli import run_cli
from nas.model.arch import guess_scale, load_arch
from nas.model.counting import count_gflops, count_params, count_trainable_params
from nas.model.detector import Detector, build_model

__all__ = ["main", "model_summary", "summary_line"]


def model_summary(model: Detector, imgsz: int = 640) -> dict[str, Any]:
    """Counts and per-layer rows of a built model, as JSON-ready data.

    Returns:
        ``{"params", "trainable_params", "gflops", "imgsz", "modules", "scale", "nc",
        "layers": [{"index", "from", "repeats", "module", "params", "args", "channels"}]}``.
    """
    layers = [
        {
            "index": info.index,
            "from": list(info.frm) if isinstance(info.frm, tuple) else info.frm,
            "repeats": info.repeats,
            "module": info.module,
            "params": info.params,
            "args": _jsonable(info.args),
            "channels": _jsonable(info.channels),
        }
        for info in model.layer_table()
    ]
    return {
        "params": count_params(model),
        "trainable_params": count_trainable_params(model),
        "gflops": count_gflops(model, imgsz),
        "imgsz": imgsz,
        "modules": len(list(model.modules())),
        "scale": model.arch.scale,
        "nc": model.nc,
        "layers": layers,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def summary_line(name: str, summary: dict[str, Any]) -> str:
    """ultralytics-style one-line summary (``layers`` counts every ``nn.Module`` in the model)."""
    return (
        f"{name} summary: {summary['modules']} layers, {summary['params']:,} parameters, "
        f"{summary['trainable_params']:,} gradients, {summary['gflops']:.1f} GFLOPs "
        f"({summary['gflops']:.4f} at {summary['imgsz']}x{summary['imgsz']})"
    )


def format_table(summary: dict[str, Any]) -> str:
    """The per-layer table: index, from, repeats, params, module, args."""
    lines = [f"{'':>3}{'from':>20}{'n':>3}{'params':>11}  {'module':<16}{'arguments'}"]
    for row in summary["layers"]:
        lines.append(
            f"{row['index']:>3}{str(row['from']):>20}{row['repeats']:>3}{row['params']:>11,}  "
            f"{row['module']:<16}{row['args']}"
        )
    return "\n".join(lines)


def _display_name(model_arg: str, scale: str | None) -> str:
    stem = Path(model_arg).stem
    if scale and guess_scale(model_arg) is None:
        return f"{stem} (scale {scale})"
    return stem


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a bad model or argument)."""
    return run_cli(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.info", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="model YAML path or name in models/ (e.g. yolov8n.yaml)")
    parser.add_argument("--nc", type=int, default=None, help="number of classes (default: YAML)")
    parser.add_argument("--scale", default=None, help="scale letter (default: from the name)")
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs")
    parser.add_argument("--json", action="store_true", help="print only JSON on stdout")
    args = parser.parse_args(argv)
    if args.imgsz < 1:
        parser.error(f"--imgsz must be >= 1, got {args.imgsz}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arch = load_arch(args.model, nc=args.nc, scale=args.scale)  # UserError: one line
        model = build_model(arch)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    summary = model_summary(model, args.imgsz)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(format_table(summary))
    print(summary_line(_display_name(args.model, model.arch.scale), summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
