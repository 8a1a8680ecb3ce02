"""The training loop: ``fit`` = ``train_one_epoch`` + ``evaluate``, with EMA, warm-up and decay.

One optimizer step per batch (no accumulation), per-step learning-rate schedule (linear warm-up,
then cosine or linear decay), ultralytics-style parameter groups (decay on conv weights only),
an EMA of the weights that is evaluated and, at the end, copied into the model. CPU runs are
deterministic given ``cfg.seed``; CUDA runs use AMP and channels-last by default.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from nas.data.augment import AugmentConfig
from nas.data.batches import iterate_batches
from nas.errors import ConfigError
from nas.train.config import TrainConfig, autocast, grad_scaler, use_amp, use_channels_last
from nas.train.distill import Distiller, build_distiller
from nas.train.evaluate import EvalResult, evaluate
from nas.train.loss import DetectionLoss, NonFiniteLossError

if TYPE_CHECKING:
    from nas.data import ImageCache, PreparedData

__all__ = [
    "EpochResult",
    "FitResult",
    "ModelEMA",
    "build_optimizer",
    "fit",
    "schedule_at",
    "set_schedule",
    "train_one_epoch",
    "training_runtime",
]


@dataclass(frozen=True)
class EpochResult:
    """What one epoch did (losses are per-image means over its batches, gains applied)."""

    epoch: int
    loss_box: float
    loss_cls: float
    loss_dfl: float
    map50: float | None
    map50_95: float | None
    seconds: float


@dataclass(frozen=True)
class FitResult:
    """Outcome of ``fit``.

    Attributes:
        map50: Final mAP50 (of the EMA weights when EMA is on).
        map50_95: Final mAP50-95.
        per_class_ap: Final AP50-95 per class name.
        epochs: Epochs run.
        train_seconds: Wall time of the whole fit, evaluations included.
        images_per_second: Training images per second of training steps (evaluation excluded).
        history: One ``EpochResult`` per epoch.
    """

    map50: float
    map50_95: float
    per_class_ap: dict[str, float]
    epochs: int
    train_seconds: float
    images_per_second: float
    history: list[EpochResult] = field(default_factory=list)


class ModelEMA:
    """Exponential moving average of a model's floating-point state (weights and BN stats).

    ``decay_t = decay * (1 - exp(-t / tau))`` after t updates, so early averages follow the
    model closely (as in ultralytics).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0
        self._names = [k for k, v in self.module.state_dict().items() if v.is_floating_point()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current state into the average.

        Two fused ``_foreach`` kernels over all floating-point tensors (one launch each on CUDA
        instead of two per tensor); the arithmetic is the same as ``v.mul_(d).add_(s, 1 - d)``.
        """
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        own, source = self.module.state_dict(), model.state_dict()
        targets = [own[k] for k in self._names]
        torch._foreach_mul_(targets, d)
        torch._foreach_add_(targets, [source[k].detach() for k in self._names], alpha=1 - d)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW with three groups: decayed weights, BN weights, biases.

    Group order is fixed (weights, bn, biases); ``schedule_at`` returns learning rates in it.
    """
    decay, no_decay, biases = [], [], []
    norm_types = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias":
                biases.append(param)
            elif isinstance(module, norm_types):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": biases, "weight_decay": 0.0},
    ]
    # the fused kernels (CPU and CUDA): one pass over every tensor instead of a Python loop of
    # per-tensor ops (torch's CPU default); the same update up to float rounding
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr0, momentum=cfg.momentum, nesterov=True,
                               fused=True)  # fmt: skip
    return torch.optim.AdamW(groups, lr=cfg.lr0, betas=(cfg.momentum, 0.999), fused=True)


def schedule_at(
    step: int, total_steps: int, warmup_steps: int, cfg: TrainConfig
) -> tuple[float, float, float]:
    """Learning rates and momentum for optimizer step ``step`` (0-based); a pure function.

    Decay factor ``f`` runs from 1 at step 0 to ``lrf`` at ``total_steps`` (cosine or linear).
    During warm-up the weights' rate rises linearly from 0 to ``lr0 * f``, the biases' falls
    from ``warmup_bias_lr`` (SGD; 0 for AdamW) to it, and momentum rises from
    ``warmup_momentum`` to ``momentum``.

    Returns:
        ``(weights_lr, bias_lr, momentum)``.

    Example:
        >>> schedule_at(100, 100, 0, TrainConfig(lr0=0.01, lrf=0.1))
        (0.001, 0.001, 0.937)
    """
    t = min(step / max(total_steps, 1), 1.0)
    if cfg.schedule == "cosine":
        factor = cfg.lrf + (1 - cfg.lrf) * (1 + math.cos(math.pi * t)) / 2
    else:
        factor = 1 - (1 - cfg.lrf) * t
    lr = cfg.lr0 * factor
    if step >= warmup_steps:
        return round(lr, 12), round(lr, 12), cfg.momentum
    x = step / warmup_steps
    bias_start = cfg.warmup_bias_lr if cfg.optimizer == "sgd" else 0.0
    momentum = cfg.warmup_momentum + (cfg.momentum - cfg.warmup_momentum) * x
    return lr * x, bias_start + (lr - bias_start) * x, momentum


def set_schedule(optimizer: torch.optim.Optimizer, lrs: tuple[float, float, float]) -> None:
    """Apply ``schedule_at``'s (weights lr, bias lr, momentum) to the three groups."""
    weights_lr, bias_lr, momentum = lrs
    for i, group in enumerate(optimizer.param_groups):
        group["lr"] = bias_lr if i == 2 else weights_lr
        if "momentum" in group:
            group["momentum"] = momentum
        elif "betas" in group:
            group["betas"] = (momentum, group["betas"][1])


@dataclass
class _State:
    """Mutable per-fit training state shared by the epochs."""

    model: nn.Module
    loss_fn: DetectionLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    generator: torch.Generator
    augment: AugmentConfig | None
    device: torch.device
    amp: bool
    channels_last: bool
    total_steps: int
    warmup_steps: int
    step: int = 0
    images_seen: int = 0
    train_seconds: float = 0.0
    distill: Distiller | None = None


def train_one_epoch(
    state: _State, cache: ImageCache, cfg: TrainConfig, epoch: int, *, progress: bool = True
) -> tuple[float, float, float]:
    """One pass over ``cache``; returns mean (box, cls, dfl) loss per image.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
    """
    model = state.model
    model.train()
    sums = [0.0, 0.0, 0.0]
    batches: Iterator = iterate_batches(
        cache, cfg.batch_size, shuffle=True, generator=state.generator, augment=state.augment
    )
    steps = math.ceil(len(cache) / cfg.batch_size)
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not progress)  # fmt: skip
    start = time.perf_counter()
    count = 0
    for i, batch in enumerate(bar):
        set_schedule(state.optimizer, schedule_at(state.step, state.total_steps,
                                                   state.warmup_steps, cfg))  # fmt: skip
        images = batch.images.to(state.device, non_blocking=True)
        if state.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(state.device, state.amp):
            feats = model(images)
        out = state.loss_fn([f.float() for f in feats], batch.targets.to(state.device))
        # one device-to-host copy per step (the NaN guard and the running means need it)
        total, box, cls, dfl = torch.stack(
            (out.total.detach(), out.box.detach(), out.cls.detach(), out.dfl.detach())
        ).tolist()
        if not math.isfinite(total):
            raise NonFiniteLossError(epoch, i, total)
        loss = out.total if state.distill is None else out.total + state.distill(images, feats)
        state.scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            state.scaler.unscale_(state.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.optimizer.zero_grad(set_to_none=True)
        if state.ema is not None:
            state.ema.update(model)
        n = len(images)
        sums = [sums[0] + box * n, sums[1] + cls * n, sums[2] + dfl * n]
        count += n
        state.step += 1
        bar.set_postfix(box=f"{box:.3f}", cls=f"{cls:.3f}", dfl=f"{dfl:.3f}", refresh=False)
    state.train_seconds += time.perf_counter() - start
    state.images_seen += count
    return sums[0] / max(count, 1), sums[1] / max(count, 1), sums[2] / max(count, 1)


@contextlib.contextmanager
def training_runtime(cfg: TrainConfig) -> Iterator[None]:
    """Threads and determinism for the duration of a fit (restored afterwards)."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def fit(
    model: nn.Module,
    data: PreparedData,
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place on ``data.train`` and evaluate on ``data.val``.

    With ``cfg.ema`` the model ends holding the EMA weights (those evaluated). ``on_epoch`` is
    called after every epoch; whatever it raises (e.g. ``optuna.TrialPruned``) propagates.

    Args:
        model: A ``Detector`` (training forward: per-level maps; ``.nc``, ``.stride``, ``.head``).
        data: Prepared caches (``train``, ``val``), ``names`` and ``val_dataset``.
        cfg: The recipe.
        on_epoch: Callback receiving each ``EpochResult``.
        progress: Show tqdm bars.

    Returns:
        The :class:`FitResult`.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite.
        ValueError: the model's class count differs from the data's.
        ConfigError: the data was prepared at another image size than ``cfg.imgsz``.

    Example:
        >>> from nas.model import build_model
        >>> from nas.data import DataConfig, prepare_data
        >>> data = prepare_data(DataConfig(), imgsz=256, device="cpu")  # doctest: +SKIP
        >>> model = build_model("yolov8n.yaml", nc=len(data.names))  # doctest: +SKIP
        >>> fit(model, data, TrainConfig(epochs=1, imgsz=256)).map50  # doctest: +SKIP
        0.01
    """
    nc = int(model.nc)
    if nc != len(data.names):
        raise ValueError(f"model has nc={nc} but the data has {len(data.names)} classes "
                         f"({data.names})")  # fmt: skip
    if len(data.train) == 0:
        raise ValueError("fit: the training cache is empty")
    sizes = {"train": data.train.imgsz, "val": data.val.imgsz}
    if any(size != cfg.imgsz for size in sizes.values()):
        raise ConfigError(f"fit: train.imgsz={cfg.imgsz} but the data was prepared at "
                          f"{sizes}; call prepare_data(..., imgsz={cfg.imgsz})")  # fmt: skip
    started = time.perf_counter()
    device = torch.device(cfg.device)
    cuda = device.type == "cuda"
    amp = use_amp(cfg.amp, device)
    channels_last = use_channels_last(cfg.channels_last, device, amp)
    with training_runtime(cfg):
        torch.manual_seed(cfg.seed)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        state = _State(
            model=model,
            loss_fn=DetectionLoss(nc, model.stride, reg_max=model.head.reg_max),
            optimizer=build_optimizer(model, cfg),
            scaler=grad_scaler(device, amp),
            ema=ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None,
            generator=torch.Generator().manual_seed(cfg.seed),
            augment=cfg.augment,
            device=device,
            amp=amp,
            channels_last=channels_last,
            total_steps=cfg.epochs * steps_per_epoch,
            warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
            distill=build_distiller(cfg, model, device),
        )
        history: list[EpochResult] = []
        final = EvalResult(0.0, 0.0, {})
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            if epoch >= cfg.epochs - cfg.close_mosaic and state.augment is not None:
                state.augment = dataclasses.replace(state.augment, mosaic=0.0)
            box, cls, dfl = train_one_epoch(state, data.train, cfg, epoch, progress=progress)
            last = epoch == cfg.epochs - 1
            due = last or (cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0)
            metrics = None
            if due:
                scored = state.ema.module if state.ema is not None else model
                # float16 on CUDA; the CPU evaluates in float32: bfloat16's 8-bit mantissa
                # moves box edges (0.989x the mAP50-95, benchmarks/bench_amp.py), and
                # evaluation is a small part of a training
                metrics = evaluate(scored, data, conf=cfg.conf, iou=cfg.iou,
                                   max_det=cfg.max_det, batch_size=cfg.eval_batch_size,
                                   amp=amp and cuda)  # fmt: skip
                final = metrics
            result = EpochResult(
                epoch=epoch,
                loss_box=box,
                loss_cls=cls,
                loss_dfl=dfl,
                map50=metrics.map50 if metrics else None,
                map50_95=metrics.map50_95 if metrics else None,
                seconds=time.perf_counter() - t0,
            )
            history.append(result)
            if on_epoch is not None:
                on_epoch(result)
        if state.ema is not None:
            model.load_state_dict(state.ema.module.state_dict())
    return FitResult(
        map50=final.map50,
        map50_95=final.map50_95,
        per_class_ap=final.per_class_ap,
        epochs=cfg.epochs,
        train_seconds=time.perf_counter() - started,
        images_per_second=state.images_seen / max(state.train_seconds, 1e-9),
        history=history,
    )
