"""onnxruntime sessions pinned for measurement: CPU execution provider, fixed threads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nas.deploy._extra import require
from nas.deploy.errors import DeployError

__all__ = ["default_threads", "make_session"]


def default_threads() -> int:
    """Intra-op threads when none are given: the CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_session(path: str | Path, *, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU execution provider.

    Intra-op threads are set explicitly (``threads`` or ``default_threads()``), inter-op to 1,
    execution is sequential and every graph optimisation is on, so two measurements of one
    file on one machine run the same kernels on the same threads.

    Args:
        path: An ``.onnx`` file.
        threads: Intra-op threads (>= 1); None: ``default_threads()``.
    """
    ort = require("onnxruntime")
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise DeployError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
