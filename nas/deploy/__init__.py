"""Deployment after the search: ONNX export, onnxruntime latency, INT8, pruning, evaluation.

Needs the optional ``[deploy]`` extra (onnx, onnxruntime, torch-pruning): importing this
package without it raises ``MissingExtraError`` naming ``pip install -e '.[deploy]'``. The
core search never imports it unless asked for onnxruntime latency.

Example:
    >>> from nas.deploy.latency import measure_ort_latency  # doctest: +SKIP
    >>> measure_ort_latency(model, imgsz=320, threads=2).median_ms  # doctest: +SKIP
"""

from __future__ import annotations

from nas.deploy._extra import EXTRA_HINT, MissingExtraError, require

require("onnx")
require("onnxruntime")

__all__ = ["EXTRA_HINT", "MissingExtraError", "require"]
