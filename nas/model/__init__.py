"""Model descriptions (``Architecture``), the builder (``build_model``) and cost counters."""

from nas.model.arch import (
    ArchError,
    Architecture,
    Row,
    dump_arch,
    load_arch,
    resolve_model_path,
    save_arch,
)
from nas.model.counting import (
    LatencyStats,
    count_gflops,
    count_params,
    count_trainable_params,
    measure_latency,
)
from nas.model.detector import Detector, LayerInfo, build_model

__all__ = [
    "ArchError",
    "Architecture",
    "Detector",
    "LatencyStats",
    "LayerInfo",
    "Row",
    "build_model",
    "count_gflops",
    "count_params",
    "count_trainable_params",
    "dump_arch",
    "load_arch",
    "measure_latency",
    "resolve_model_path",
    "save_arch",
]
