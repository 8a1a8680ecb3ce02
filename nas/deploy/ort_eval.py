"""Evaluate an ONNX detector with this project's pycocotools path (``nas.train.evaluate``).

``OnnxDetector`` wraps an onnxruntime session as a parameter-free ``nn.Module`` whose forward
returns what a ``Detector`` returns in eval mode, ``(B, 4 + nc, A)``; ``evaluate_onnx`` hands it
to ``nas.train.evaluate.evaluate``, so NMS, the mapping back to original pixels and COCOeval
are the same code for the PyTorch, FP32 ONNX and INT8 models.

Example:
    >>> result = evaluate_onnx("yolov8n-int8.onnx", data, threads=2)  # doctest: +SKIP
    >>> result.map50  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from nas.deploy.errors import DeployError
from nas.deploy.session import make_session
from nas.train.evaluate import EvalResult, evaluate

if TYPE_CHECKING:
    from nas.data import PreparedData

__all__ = ["OnnxDetector", "evaluate_onnx"]


class OnnxDetector(nn.Module):
    """An ``.onnx`` detector behind the ``Detector`` eval-mode interface.

    The graph's batch is static: a batch of another size is run in chunks of it (the last
    chunk zero-padded, its padding rows dropped).

    Args:
        path: An ``.onnx`` file from ``nas.deploy.onnx_export.export_onnx``.
        threads: Intra-op threads of the session.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = make_session(self.path, threads=threads)
        spec = self.session.get_inputs()[0]
        self.input_name = spec.name
        self.input_shape = tuple(int(d) for d in spec.shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` float images in 0..1 -> ``(B, 4 + nc, A)`` on the images' device."""
        size = self.input_shape[0]
        if tuple(images.shape[1:]) != self.input_shape[1:]:
            raise DeployError(
                f"{self.path}: the graph takes images of shape {self.input_shape[1:]}, got "
                f"{tuple(images.shape[1:])} (export at the evaluation image size)"
            )
        array = images.detach().float().cpu().numpy()
        outputs = []
        for start in range(0, len(array), size):
            chunk = array[start : start + size]
            n = len(chunk)
            if n < size:
                padding = np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(chunk)})[0]
            outputs.append(out[:n])
        return torch.from_numpy(np.concatenate(outputs)).to(images.device)


def evaluate_onnx(
    path: str | Path,
    data: PreparedData,
    *,
    threads: int | None = None,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    batch_size: int = 16,
) -> EvalResult:
    """COCO mAP of an ``.onnx`` detector on ``data.val`` (as ``nas.train.evaluate.evaluate``)."""
    detector = OnnxDetector(path, threads=threads)
    return evaluate(
        detector, data, conf=conf, iou=iou, max_det=max_det, batch_size=batch_size, amp=False
    )
