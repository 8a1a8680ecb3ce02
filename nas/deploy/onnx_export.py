"""ONNX export of a detector (or any block): static shapes, opset >= 17, TorchScript exporter.

The classic TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) needs nothing
beyond ``onnx``; the model is traced in eval mode, so ``Detect`` exports its inference output
``(B, 4 + nc, A)`` (xywh in input pixels, class probabilities) with its decoding (DFL, anchors,
strides) in the graph. PConv exports in its split/concat form (``forward_mode="split_cat"``,
set for the export and restored afterwards).

Example:
    >>> from nas.model import build_model
    >>> model = build_model("yolov8n.yaml", nc=4)
    >>> path = export_onnx(model, "yolov8n.onnx", imgsz=320)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn as nn

from nas.blocks.pconv import PConv
from nas.deploy._extra import require
from nas.deploy.errors import DeployError

__all__ = ["INPUT_NAME", "MIN_OPSET", "OUTPUT_NAME", "export_module", "export_onnx"]

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "output0"
MIN_OPSET = 17


@contextlib.contextmanager
def _export_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode and PConv's split/concat form for the duration of an export (then restored)."""
    modes = {m: m.training for m in module.modules()}
    pconv = {m: m.forward_mode for m in module.modules() if isinstance(m, PConv)}
    try:
        module.eval()
        for m in pconv:
            m.forward_mode = "split_cat"
        yield
    finally:
        for m, training in modes.items():
            m.training = training
        for m, mode in pconv.items():
            m.forward_mode = mode


def export_module(
    module: nn.Module,
    inputs: Sequence[torch.Tensor | list[torch.Tensor]],
    path: str | Path,
    *,
    opset: int = MIN_OPSET,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Path:
    """Export ``module(*inputs)`` to ``path`` with the shapes of ``inputs`` fixed.

    Args:
        module: Any module; exported in eval mode on the CPU tensors given.
        inputs: Positional arguments of ``forward`` (a list argument becomes several inputs).
        path: Output ``.onnx`` file (parent folders are created).
        opset: ONNX opset, at least ``MIN_OPSET``.
        input_names: Graph input names (default: the exporter's).
        output_names: Graph output names (default: the exporter's).

    Returns:
        ``path``, after ``onnx.checker`` accepted the file.

    Raises:
        ValueError: ``opset`` is below ``MIN_OPSET``.
    """
    if opset < MIN_OPSET:
        raise DeployError(f"opset must be >= {MIN_OPSET}, got {opset}")
    onnx = require("onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _export_mode(module), warnings.catch_warnings(), torch.no_grad():
        # the legacy exporter's deprecation notice and tracing notes about constant shapes
        # (anchors and strides are constants of a static-shape graph) are expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(inputs),
            str(path),
            input_names=list(input_names) if input_names else None,
            output_names=list(output_names) if output_names else None,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    logger.info("exported %s (opset %d)", path, opset)
    return path


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    imgsz: int = 640,
    batch: int = 1,
    opset: int = MIN_OPSET,
) -> Path:
    """Export a detector to ONNX with input ``images (batch, 3, imgsz, imgsz)``.

    The graph's output ``output0`` is ``Detect``'s inference output ``(batch, 4 + nc, A)``.
    The model is exported on the CPU (a copy when it lives elsewhere) and its modes restored.

    Args:
        model: A ``Detector`` (or any module with that input and output).
        path: Output ``.onnx`` file.
        imgsz: Square input side.
        batch: Static batch size.
        opset: ONNX opset (>= 17).

    Returns:
        ``path``.
    """
    if imgsz < 32 or imgsz % 32 or batch < 1:
        raise DeployError(f"need imgsz a multiple of 32 and batch >= 1, got {imgsz}, {batch}")
    param = next(model.parameters())
    if param.device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    in_channels = int(getattr(model, "in_channels", 3))
    x = torch.zeros(batch, in_channels, imgsz, imgsz, dtype=torch.float32)
    return export_module(
        model, (x,), path, opset=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME]
    )
