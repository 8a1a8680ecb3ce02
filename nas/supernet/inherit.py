"""A candidate from the supernet: inherited weights, recalibrated BatchNorm, optional fine-tune.

``inherit_weights`` copies the chosen path's state, row by row, into the standalone build of
the same choices (the model a search trial builds and counts), so the scored model is exactly
the exported one. Running statistics collected while many paths trained are not those of any
one path, so ``recalibrate_bn`` recomputes them on a few training batches (a cumulative
average, train-mode forward without gradients), as SPOS and OFA do.

Example:
    >>> model = build_model(to_arch(space, choices, nc))  # doctest: +SKIP
    >>> inherit_weights(supernet, model, choices)  # doctest: +SKIP
    >>> recalibrate_bn(model, data.train, batches=8, batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.data.batches import iterate_batches
from nas.search.wiring import to_arch
from nas.supernet.choice import ChoiceModule
from nas.supernet.plan import Branch, SupernetError
from nas.supernet.supernet import SuperNet
from nas.supernet.train import recipe_augment
from nas.train import DetectionLoss, build_optimizer
from nas.train.config import autocast, grad_scaler, use_amp

if TYPE_CHECKING:
    from nas.data import ImageCache, PreparedData
    from nas.model.detector import Detector
    from nas.train import TrainConfig

__all__ = ["finetune", "inherit_weights", "recalibrate_bn"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def inherit_weights(supernet: SuperNet, model: Detector, choices: Mapping[str, Any]) -> Branch:
    """Copy the state of the path ``choices`` into ``model`` (its standalone build).

    Raises:
        SupernetError: ``model`` is not the build of ``to_arch(space, choices, nc)``.
    """
    plan = supernet.plan
    expected = to_arch(plan.space, choices, plan.nc)
    if model.arch.rows != expected.rows or model.arch.scales != expected.scales:
        raise SupernetError(
            "inherit_weights: the model is not the standalone build of these choices (its "
            "rows differ from to_arch(space, choices, nc))"
        )
    branch = supernet.set_path(choices)
    source = supernet.branch()
    with torch.no_grad():
        for index, (target, layer) in enumerate(zip(model.layers, source.layers, strict=True)):
            if isinstance(layer, ChoiceModule):
                layer = layer.options[layer.active]
            try:
                target.load_state_dict(layer.state_dict())
            except RuntimeError as e:
                raise SupernetError(f"row {index}: the supernet's weights do not fit: {e}") from e
    return branch


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, cache: ImageCache, *, batches: int, batch_size: int, seed: int = 0
) -> int:
    """Recompute every BatchNorm's running statistics on ``batches`` training batches.

    The statistics are reset, then averaged cumulatively (``momentum=None``) over train-mode
    forward passes without gradients; the same ``seed`` gives every candidate the same images.
    The model's mode and each layer's momentum are restored. Returns the images used.
    """
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if batches <= 0 or not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    device = next(model.parameters()).device
    model.train()
    seen = 0
    generator = torch.Generator().manual_seed(seed)
    try:
        for k, batch in enumerate(iterate_batches(cache, batch_size, shuffle=True,
                                                  generator=generator)):  # fmt: skip
            if k >= batches:
                break
            model(batch.images.to(device))
            seen += len(batch.indices)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return seen


def finetune(
    model: Detector, data: PreparedData, cfg: TrainConfig, *, steps: int, seed: int = 0
) -> float:
    """A few optimizer steps on augmented training batches at the rate ``lr0 * lrf``, with the
    training's mixed precision (``cfg.amp``, as ``fit``).

    Returns:
        The mean total loss over the steps (0.0 when ``steps`` is 0).
    """
    if steps <= 0:
        return 0.0
    device = next(model.parameters()).device
    loss_fn = DetectionLoss(model.nc, model.stride, reg_max=model.head.reg_max)
    optimizer = build_optimizer(model, cfg)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr0 * cfg.lrf
    augment = recipe_augment(cfg, data)
    generator = torch.Generator().manual_seed(seed)
    amp = use_amp(cfg.amp, device)
    scaler = grad_scaler(device, amp)
    model.train()
    done, total = 0, 0.0
    while done < steps:
        for batch in iterate_batches(data.train, cfg.batch_size, shuffle=True,
                                     generator=generator, augment=augment):  # fmt: skip
            with autocast(device, amp):
                feats = model(batch.images.to(device))
            out = loss_fn([f.float() for f in feats], batch.targets.to(device))
            scaler.scale(out.total).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            total += float(out.total.detach())
            done += 1
            if done >= steps:
                break
    return total / steps
