"""Model cost counters: parameters, GFLOPs (ultralytics' convention) and latency.

GFLOPs follow ultralytics (``get_flops`` through thop), on one ``3 x H x W`` image in eval mode:
``2 x (multiply-adds) / 1e9`` where a convolution costs ``out_elements * in_channels / groups *
kh * kw`` (bias not counted), a BatchNorm / GroupNorm / LayerNorm ``4 x input elements`` (2 without
affine parameters), and a Linear ``in_features x output elements``. Activations, pooling, nearest
upsampling, concatenation and additions cost zero.

Example:
    >>> from nas.model.detector import build_model
    >>> model = build_model("yolov8n.yaml")
    >>> count_params(model), round(count_gflops(model), 4)
    (3157200, 8.8551)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.func import functional_call

__all__ = [
    "LatencyStats",
    "count_gflops",
    "count_params",
    "count_trainable_params",
    "measure_latency",
]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def count_params(model: nn.Module) -> int:
    """All parameters (frozen ones included, e.g. the 16 DFL weights)."""
    return sum(p.numel() for p in model.parameters())


def count_trainable_params(model: nn.Module) -> int:
    """Parameters with ``requires_grad`` (ultralytics' "gradients")."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _image_size(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        h = w = imgsz
    elif isinstance(imgsz, tuple | list) and len(imgsz) == 2:
        h, w = int(imgsz[0]), int(imgsz[1])
    else:
        raise ValueError(f"imgsz must be an int or an (h, w) pair, got {imgsz!r}")
    if h < 1 or w < 1:
        raise ValueError(f"imgsz must be positive, got {imgsz!r}")
    return h, w


def _multiply_adds(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> int:
    """Multiply-adds of one leaf module call (0 for modules that cost nothing)."""
    kernel = module.weight[0, 0].numel() if isinstance(module, nn.modules.conv._ConvNd) else 0
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.modules.conv._ConvNd):  # transposed: scatter over the input
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, _NORMS):
        affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
        return inputs[0].numel() * (4 if affine else 2)
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel()
    return 0


def count_gflops(
    model: nn.Module, imgsz: int | tuple[int, int] = 640, *, on_meta: bool = True
) -> float:
    """GFLOPs of one forward pass on a ``3 x imgsz x imgsz`` (or ``(h, w)``) image.

    Runs the model once in eval mode without gradients. With ``on_meta`` (the default) the pass
    runs with the parameters and buffers swapped for tensors on PyTorch's ``meta`` device, which
    computes shapes only (fast at any image size); if the model cannot run there, it runs on the
    model's own device. Training flags are restored and BatchNorm statistics stay untouched.
    """
    h, w = _image_size(imgsz)
    if on_meta:
        try:
            return _count(model, h, w, meta=True)
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            pass  # an op without a meta kernel: count on the real device below
    return _count(model, h, w, meta=False)


def _identity(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return x


def _count(model: nn.Module, h: int, w: int, *, meta: bool) -> float:
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _multiply_adds(module, inputs, output)

    counted = (nn.modules.conv._ConvNd, nn.Linear, *_NORMS)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    modes = {m: m.training for m in model.modules()}
    param = next(model.parameters())
    in_channels = int(getattr(model, "in_channels", 3))
    device = torch.device("meta") if meta else param.device
    image = torch.zeros(1, in_channels, h, w, device=device, dtype=param.dtype)
    try:
        model.eval()
        with torch.no_grad():
            if meta:
                # Norm layers keep the shape; on ``meta`` their decomposition dominates the
                # pass, so they run as identities there (their hook still counts the input).
                for m in model.modules():
                    if isinstance(m, _NORMS):
                        m.forward = _identity
                tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
                swapped = {n: torch.empty_like(t, device="meta") for n, t in tensors.items()}
                functional_call(model, swapped, (image,), strict=True)
            else:
                model(image)
    finally:
        for handle in handles:
            handle.remove()
        for m in model.modules():
            if isinstance(m, _NORMS) and "forward" in vars(m):
                del m.forward
        for m, training in modes.items():
            m.training = training
    return 2 * total / 1e9


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock forward latency of a batch, in milliseconds."""

    median_ms: float
    mean_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    batch: int
    imgsz: int
    device: str

    @property
    def images_per_second(self) -> float:
        """Throughput at the median latency."""
        return 1000.0 * self.batch / self.median_ms


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    *,
    imgsz: int = 640,
    batch: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 5,
    repeats: int = 20,
) -> LatencyStats:
    """Median / mean / p90 latency of ``model(x)`` for a ``batch x 3 x imgsz x imgsz`` input.

    The model is moved to ``device`` and run in eval mode under ``torch.inference_mode``; on
    CUDA each timed call is bracketed by synchronisations. The model's training flags are
    restored afterwards (it stays on ``device``).

    Example:
        >>> stats = measure_latency(model, imgsz=320, batch=1, repeats=10)  # doctest: +SKIP
        >>> stats.median_ms  # doctest: +SKIP
    """
    if repeats < 1 or warmup < 0 or batch < 1 or imgsz < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, batch >= 1, imgsz >= 1; got repeats={repeats}, "
            f"warmup={warmup}, batch={batch}, imgsz={imgsz}"
        )
    device = torch.device(device)
    param = next(model.parameters())
    model.to(device)
    modes = {m: m.training for m in model.modules()}
    in_channels = int(getattr(model, "in_channels", 3))
    x = torch.zeros(batch, in_channels, imgsz, imgsz, device=device, dtype=param.dtype)
    times: list[float] = []
    try:
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            _sync(device)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                _sync(device)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        for m, training in modes.items():
            m.training = training
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return LatencyStats(
        median_ms=statistics.median(times),
        mean_ms=statistics.fmean(times),
        p90_ms=p90,
        min_ms=ordered[0],
        repeats=repeats,
        batch=batch,
        imgsz=imgsz,
        device=str(device),
    )
