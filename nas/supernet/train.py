"""Supernet training: the sampled path(s) of each step, checkpointed and resumable.

The loop is the engine's step (``nas.train``: ``DetectionLoss``, ``build_optimizer``,
``schedule_at``, ``ModelEMA``, gradient clipping, the NaN guard) with a path drawn before each
step. With ``sandwich`` sampling a step runs several paths and accumulates their mean loss into
one update; every path after the first (the largest) also learns the first one's outputs
(in-place distillation, BigNAS: ``nas.train.distill.distillation_loss``, ``distill_weight``).
Everything a step depends on is a function of the step number (the path, the epoch's data
order and augmentation), so a run resumed from a checkpoint continues exactly where the
interrupted one stood and ends in the same state as an uninterrupted run.

Example:
    >>> run = train_supernet(net, data, cfg, sampler, checkpoint=Path("ckpt.pt"),
    ...                      checkpoint_every=100, fingerprint={})  # doctest: +SKIP
    >>> run.steps, run.seconds  # doctest: +SKIP
    (1000, 312.5)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nas.data.batches import iterate_batches
from nas.supernet.plan import SupernetError
from nas.supernet.supernet import SuperNet, unique_state
from nas.train import DetectionLoss, ModelEMA, NonFiniteLossError, build_optimizer, schedule_at
from nas.train.config import autocast, grad_scaler, use_amp
from nas.train.distill import distillation_loss
from nas.train.engine import set_schedule, training_runtime

if TYPE_CHECKING:
    from nas.data import PreparedData
    from nas.data.augment import AugmentConfig
    from nas.supernet.sampling import PathSampler
    from nas.train import TrainConfig

__all__ = ["HISTORY_COLUMNS", "SupernetRun", "recipe_augment", "train_supernet"]

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = ("step", "epoch", "branch", "loss_box", "loss_cls", "loss_dfl")


@dataclass
class SupernetRun:
    """What the supernet training did (cumulated over resumes).

    Attributes:
        steps: Optimizer steps done.
        epochs: Epochs of the recipe.
        seconds: Wall time of the training steps, all runs together.
        cpu_seconds: CPU time of this process (all its threads) in the training steps, all
            runs together.
        resumed_from: The step this process started at (0: a fresh training).
        earlier_seconds: ``seconds`` of the earlier runs (what the checkpoint held).
        earlier_cpu_seconds: ``cpu_seconds`` of the earlier runs.
        history: One row per step: ``HISTORY_COLUMNS``.
    """

    steps: int
    epochs: int
    seconds: float
    resumed_from: int
    cpu_seconds: float = 0.0
    earlier_seconds: float = 0.0
    earlier_cpu_seconds: float = 0.0
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def epoch_losses(self) -> list[float]:
        """Mean total loss (box + cls + dfl) per epoch."""
        sums: dict[int, list[float]] = {}
        for row in self.history:
            sums.setdefault(int(row[1]), []).append(float(row[3] + row[4] + row[5]))
        return [sum(v) / len(v) for _, v in sorted(sums.items())]


class _SharedEMA(ModelEMA):
    """``ModelEMA`` updating each shared tensor once (branches share their common rows)."""

    def __init__(self, model: nn.Module, decay: float, tau: float) -> None:
        super().__init__(model, decay, tau)
        self._names = unique_state(self.module)


def recipe_augment(cfg: TrainConfig, data: PreparedData) -> AugmentConfig | None:
    """The recipe's augmentation (older data objects carried it: their ``augment``)."""
    augment = getattr(cfg, "augment", None)
    return augment if augment is not None else getattr(data, "augment", None)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def train_supernet(
    supernet: SuperNet,
    data: PreparedData,
    cfg: TrainConfig,
    sampler: PathSampler,
    *,
    checkpoint: Path,
    checkpoint_every: int,
    fingerprint: Mapping[str, Any],
    on_step: Callable[[int], None] | None = None,
    progress: bool = False,
    distill_weight: float = 0.0,
) -> SupernetRun:
    """Train (or resume, or just load) the supernet; it ends holding the EMA weights.

    Args:
        supernet: The supernet (freshly built; its weights are replaced when resuming).
        data: The training cache is ``data.train``.
        cfg: The recipe (``cfg.epochs`` supernet epochs).
        sampler: The path of each step.
        checkpoint: File of the checkpoint (written atomically; read when it exists).
        checkpoint_every: Steps between checkpoints (one is always written at the end).
        fingerprint: What the supernet was trained for; a checkpoint with another is refused.
        on_step: Called with the number of steps done after each step (and its checkpoint).
        progress: Show a tqdm bar.
        distill_weight: In-place distillation of a step's first path into its others (several
            paths per step: ``sandwich``; 0: none).

    Raises:
        SupernetError: the checkpoint belongs to another supernet (other space or settings).
        NonFiniteLossError: the loss became NaN or infinite.
    """
    if len(data.train) == 0:
        raise ValueError("train_supernet: the training cache is empty")
    device = torch.device(cfg.device)
    amp = use_amp(cfg.amp, device)
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    with training_runtime(cfg):
        supernet.to(device)
        optimizer = build_optimizer(supernet, cfg)
        scaler = grad_scaler(device, amp)
        ema = _SharedEMA(supernet, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None
        run = SupernetRun(steps=0, epochs=cfg.epochs, seconds=0.0, resumed_from=0)
        if checkpoint.is_file():
            _load(checkpoint, fingerprint, supernet, optimizer, scaler, ema, run)
            run.resumed_from = run.steps
            run.earlier_seconds, run.earlier_cpu_seconds = run.seconds, run.cpu_seconds
            logger.info("supernet: resuming %s at step %d of %d", checkpoint, run.steps, total)
        loss_fn = DetectionLoss(supernet.nc, supernet.stride, reg_max=supernet.head.reg_max)
        augment = recipe_augment(cfg, data)
        bar = tqdm(total=total, initial=run.steps, desc="supernet", disable=not progress)
        supernet.train()
        while run.steps < total:
            epoch, skip = divmod(run.steps, steps_per_epoch)
            if augment is not None and epoch >= cfg.epochs - cfg.close_mosaic:
                augment = dataclasses.replace(augment, mosaic=0.0)  # as the engine does
            batches = iterate_batches(data.train, cfg.batch_size, shuffle=True,
                                      generator=_epoch_generator(cfg.seed, epoch),
                                      augment=augment)  # fmt: skip
            for k, batch in enumerate(batches):
                if k < skip:  # drawn (the generator advances) but already trained on
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                set_schedule(optimizer, schedule_at(run.steps, total, warmup, cfg))
                paths = sampler.paths(run.steps)
                teacher: list[torch.Tensor] | None = None
                for i, path in enumerate(paths):
                    supernet.set_path(path)
                    with autocast(device, amp):
                        feats = supernet(batch.images.to(device))
                    feats = [f.float() for f in feats]
                    out = loss_fn(feats, batch.targets.to(device))
                    loss = out.total
                    if teacher is not None and distill_weight > 0:
                        kd = distillation_loss(feats, teacher, nc=supernet.nc,
                                               reg_max=supernet.head.reg_max)  # fmt: skip
                        loss = loss + kd.total * (distill_weight * len(batch.images))
                    if i == 0:  # the history and the NaN guard follow the first path
                        losses = torch.stack((out.total.detach(), out.box.detach(),
                                              out.cls.detach(), out.dfl.detach())).tolist()
                        active = supernet.active
                        if len(paths) > 1:
                            teacher = [f.detach() for f in feats]
                    if not math.isfinite(float(loss.detach())):
                        raise NonFiniteLossError(epoch, k, float(loss.detach()))
                    scaler.scale(loss / len(paths)).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(supernet)
                run.history.append((run.steps, epoch, active, *losses[1:]))
                run.steps += 1
                run.seconds += time.perf_counter() - start
                run.cpu_seconds += time.process_time() - cpu
                bar.update(1)
                if run.steps % checkpoint_every == 0 or run.steps == total:
                    _save(checkpoint, fingerprint, supernet, optimizer, scaler, ema, run)
                if on_step is not None:
                    on_step(run.steps)
        bar.close()
        if ema is not None:
            supernet.load_state_dict(ema.module.state_dict())
    supernet.eval()
    return run


def _save(
    path: Path,
    fingerprint: Mapping[str, Any],
    supernet: SuperNet,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: ModelEMA | None,
    run: SupernetRun,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": dict(fingerprint),
        "steps": run.steps,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "history": run.history,
        "model": supernet.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "ema": None if ema is None else ema.module.state_dict(),
        "ema_updates": 0 if ema is None else ema.updates,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written checkpoint


def _load(
    path: Path,
    fingerprint: Mapping[str, Any],
    supernet: SuperNet,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: ModelEMA | None,
    run: SupernetRun,
) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state.get("fingerprint", {})
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differ:
        raise SupernetError(
            f"{path}: a supernet trained for other settings (differs in {differ}); delete it "
            "or use another study_name"
        )
    supernet.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None and state["ema"] is not None:
        ema.module.load_state_dict(state["ema"])
        ema.updates = int(state["ema_updates"])
    run.steps, run.seconds = int(state["steps"]), float(state["seconds"])
    run.cpu_seconds = float(state.get("cpu_seconds", 0.0))
    run.history = [tuple(row) for row in state["history"]]
