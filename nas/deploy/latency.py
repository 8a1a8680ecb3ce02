"""Deployment latency: onnxruntime's CPU execution provider on a static-shape export.

``measure_ort_latency`` is the onnxruntime counterpart of ``nas.model.counting.
measure_latency``: same result fields (``LatencyResult`` extends ``LatencyStats``) plus the
interquartile range, so the search can switch runtimes without other changes.

Example:
    >>> from nas.model import build_model
    >>> model = build_model("yolov8n.yaml", nc=4)
    >>> r = measure_ort_latency(model, imgsz=320, threads=2)  # doctest: +SKIP
    >>> r.median_ms, r.iqr_ms  # doctest: +SKIP
    (21.3, 0.4)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn as nn
from scipy import stats

from nas.deploy.errors import DeployError
from nas.deploy.onnx_export import export_onnx
from nas.deploy.session import default_threads, make_session
from nas.model.counting import LatencyStats

__all__ = [
    "LatencyResult",
    "compare_latency",
    "measure_ort_latency",
    "measure_session_latency",
]


@dataclass(frozen=True)
class LatencyResult(LatencyStats):
    """``LatencyStats`` of an onnxruntime session, plus the spread and the threads used.

    Attributes:
        iqr_ms: Interquartile range (75th - 25th percentile) of the timed runs.
        threads: Intra-op threads of the session.
    """

    iqr_ms: float = 0.0
    threads: int = 1


def measure_session_latency(
    path: str | Path,
    *,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
) -> LatencyResult:
    """Latency of one ``.onnx`` file (static input shape) in a pinned CPU session.

    Runs ``warmup`` untimed calls, then ``repeats`` timed ones, sequentially, on zeros of the
    graph's input shape.
    """
    if repeats < 1 or warmup < 0:
        raise DeployError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    threads = default_threads() if threads is None else threads
    session = make_session(path, threads=threads)
    spec = session.get_inputs()[0]
    shape = [int(d) for d in spec.shape]
    feed = {spec.name: np.zeros(shape, dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return _result(times, shape, threads)


def _result(times: list[float], shape: list[int], threads: int) -> LatencyResult:
    ordered = sorted(times)
    return LatencyResult(
        median_ms=statistics.median(times),
        mean_ms=statistics.fmean(times),
        p90_ms=float(np.percentile(times, 90)),
        min_ms=ordered[0],
        repeats=len(times),
        batch=shape[0],
        imgsz=shape[-1],
        device="onnxruntime-cpu",
        iqr_ms=float(stats.iqr(times)),
        threads=threads,
    )


def measure_ort_latency(
    model: nn.Module | str | Path,
    imgsz: int = 640,
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
) -> LatencyResult:
    """onnxruntime CPU latency of a model: exported (static shape) then timed.

    Args:
        model: A ``Detector`` (exported to a temporary file) or a path to an ``.onnx`` file
            (then ``imgsz`` and ``batch`` come from the file).
        imgsz: Square input side of the export.
        batch: Static batch of the export.
        threads: Intra-op threads (None: the cores this process may use).
        warmup: Untimed runs first.
        repeats: Timed runs (median, IQR, p90 over these).

    Returns:
        The :class:`LatencyResult` (milliseconds).
    """
    if isinstance(model, str | Path):
        return measure_session_latency(model, threads=threads, warmup=warmup, repeats=repeats)
    with tempfile.TemporaryDirectory(prefix="liteyolo-ort-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", imgsz=imgsz, batch=batch)
        return measure_session_latency(path, threads=threads, warmup=warmup, repeats=repeats)


def compare_latency(
    paths: dict[str, str | Path],
    *,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
) -> dict[str, LatencyResult]:
    """Latency of several ``.onnx`` files measured in the same conditions: one session each,
    warmed up, then timed round-robin (run ``i`` of every model before run ``i + 1`` of any),
    so a change of machine load over the measurement affects them alike.

    Returns:
        One :class:`LatencyResult` per key of ``paths``.
    """
    if repeats < 1 or warmup < 0:
        raise DeployError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    threads = default_threads() if threads is None else threads
    runs = {}
    for name, path in paths.items():
        session = make_session(path, threads=threads)
        spec = session.get_inputs()[0]
        shape = [int(d) for d in spec.shape]
        runs[name] = (session, {spec.name: np.zeros(shape, dtype=np.float32)}, shape)
    for session, feed, _ in runs.values():
        for _ in range(warmup):
            session.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (session, feed, _) in runs.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: _result(times[name], shape, threads) for name, (_, _, shape) in runs.items()}
