"""INT8 post-training static quantization with onnxruntime's quantizer (QDQ, per channel).

Calibration reads N letterboxed training images of the prepared data (the images the model was
trained on, preprocessed exactly as at evaluation). The head's decoding (every node of the
``Detect`` row outside its two convolution branches: the DFL softmax/integral, anchors,
strides, box arithmetic, concatenations and the class sigmoid) is kept in float by node name
through ``nodes_to_exclude``: distances and pixel coordinates do not survive an 8-bit scale.
Activations are unsigned 8-bit and weights signed (onnxruntime's U8S8, its default on x86):
on this project's x86 CPU (AVX-512 VNNI) signed activations (S8S8) ran 1.5x slower than FP32,
U8S8 about 2x faster.

Example:
    >>> result = quantize_int8("yolov8n.onnx", "yolov8n-int8.onnx", data)  # doctest: +SKIP
    >>> len(result.excluded_nodes)  # doctest: +SKIP
    84
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.deploy._extra import require
from nas.deploy.errors import DeployError

if TYPE_CHECKING:
    from nas.data import ImageCache

__all__ = ["CALIBRATION_METHODS", "QuantizeResult", "head_decode_nodes", "quantize_int8"]

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_HEAD_BRANCHES = ("cv2.", "cv3.")  # Detect's box and class convolution branches


@dataclass(frozen=True)
class QuantizeResult:
    """What ``quantize_int8`` wrote.

    Attributes:
        path: The INT8 (QDQ) model.
        excluded_nodes: Node names kept in float (the head's decoding).
        calibration_images: Images the activation ranges were calibrated on.
    """

    path: Path
    excluded_nodes: tuple[str, ...]
    calibration_images: int


def head_decode_nodes(model: Any) -> list[str]:
    """Names of the decoding nodes of the last ``Detect`` row of an exported detector.

    The TorchScript exporter names nodes after module paths (``/layers.22/dfl/Softmax``,
    ``/layers.22/cv2.0/cv2.0.2/Conv``); the head is the highest ``layers.N``. Its nodes outside
    the ``cv2``/``cv3`` branches are the decoding.

    Args:
        model: An ``onnx.ModelProto``.
    """
    rows = [n.name.split("/")[1] for n in model.graph.node if n.name.startswith("/layers.")]
    if not rows:
        raise DeployError("no /layers.N/ node names: not a detector exported by nas.deploy")
    head = max({int(r.split(".")[1]) for r in rows if r.split(".")[-1].isdigit()})
    prefix = f"/layers.{head}/"
    return [
        n.name
        for n in model.graph.node
        if n.name.startswith(prefix) and not n.name[len(prefix) :].startswith(_HEAD_BRANCHES)
    ]


def _calibration_reader(cache: ImageCache, count: int, batch: int) -> Any:
    """A ``CalibrationDataReader`` over the first ``count`` cache rows, ``batch`` at a time."""
    quantization = require("onnxruntime.quantization")

    class CacheReader(quantization.CalibrationDataReader):  # type: ignore[misc,name-defined]
        """Feeds float images in 0..1, as evaluation does."""

        def __init__(self, input_name: str) -> None:
            self.input_name = input_name
            self._batches: Iterator[dict[str, Any]] = self._iterate()

        def _iterate(self) -> Iterator[dict[str, Any]]:
            for start in range(0, count - count % batch, batch):
                images = cache.images[start : start + batch].float().div(255.0)
                yield {self.input_name: images.cpu().numpy()}

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

        def rewind(self) -> None:
            self._batches = self._iterate()

    return CacheReader


def quantize_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    calibration: ImageCache,
    *,
    num_images: int = 64,
    per_channel: bool = True,
    method: str = "minmax",
    exclude_head_decoding: bool = True,
) -> QuantizeResult:
    """Quantize an exported detector to INT8 (QDQ; uint8 activations, int8 weights).

    Args:
        fp32_path: The float model (``export_onnx``).
        int8_path: Where to write the quantized model.
        calibration: Letterboxed images at the model's input size (``PreparedData.train``).
        num_images: Calibration images (the first N rows; at most the cache's length and a
            multiple of the graph's static batch).
        per_channel: Per-output-channel weight scales.
        method: Activation calibration, one of ``CALIBRATION_METHODS``.
        exclude_head_decoding: Keep ``head_decode_nodes`` in float.

    Returns:
        The :class:`QuantizeResult`.
    """
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    if method not in CALIBRATION_METHODS:
        raise DeployError(f"calibration method {method!r}: choose one of {CALIBRATION_METHODS}")
    model = onnx.load(str(fp32_path))
    spec = model.graph.input[0]
    shape = [d.dim_value for d in spec.type.tensor_type.shape.dim]
    if tuple(calibration.images.shape[1:]) != tuple(shape[1:]):
        raise DeployError(f"calibration images {tuple(calibration.images.shape[1:])} do not "
                          f"match the graph's input {tuple(shape[1:])}")  # fmt: skip
    count = min(num_images, len(calibration))
    if count < shape[0]:
        raise DeployError(f"need at least {shape[0]} calibration images, got {count}")
    excluded = head_decode_nodes(model) if exclude_head_decoding else []
    reader = _calibration_reader(calibration, count, shape[0])(spec.name)
    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="liteyolo-quant-") as tmp:
        # shape inference only: graph optimisation would rename the nodes excluded by name
        prepared = Path(tmp) / "prepared.onnx"
        quantization.shape_inference.quant_pre_process(
            str(fp32_path), str(prepared), skip_optimization=True, skip_symbolic_shape=True
        )
        with torch.no_grad():
            quantization.quantize_static(
                str(prepared),
                str(int8_path),
                reader,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method={
                    "minmax": quantization.CalibrationMethod.MinMax,
                    "entropy": quantization.CalibrationMethod.Entropy,
                    "percentile": quantization.CalibrationMethod.Percentile,
                }[method],
                nodes_to_exclude=excluded,
            )
    logger.info("quantized %s -> %s (%d calibration images, %d nodes kept in float)",
                fp32_path, int8_path, count, len(excluded))  # fmt: skip
    return QuantizeResult(int8_path, tuple(excluded), count - count % shape[0])
