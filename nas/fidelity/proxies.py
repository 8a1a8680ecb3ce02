"""Scores of a design other than its final mAP: SynFlow (no training) and validation loss.

SynFlow (Tanaka et al. 2020; as a NAS proxy: Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021) is the sum over parameters of |theta * dR/dtheta| for R = the sum of
the outputs of the network with |weights| on an all-ones input, here in log10.

Example:
    >>> import torch
    >>> from nas.model.detector import build_model
    >>> synflow(build_model("yolov8n.yaml", nc=2)) > 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from nas.data.batches import iterate_batches
from nas.train.loss import DetectionLoss

if TYPE_CHECKING:
    from nas.data import PreparedData

__all__ = ["synflow", "validation_loss"]


def synflow(model: torch.nn.Module, imgsz: int = 64) -> float:
    """log10 of the SynFlow score (linearised network: |weights|, ones input, double).

    The model is changed in place (double precision, absolute weights): pass a fresh one.
    """
    model = model.double().eval()
    model.head.training = True  # raw per-level maps (the eval decode is not differentiable)
    with torch.no_grad():
        for p in model.state_dict().values():
            p.abs_()
    model.zero_grad()
    y = model(torch.ones(1, 3, imgsz, imgsz, dtype=torch.float64))  # Detect head included
    total = sum(t.sum() for t in (y if isinstance(y, list | tuple) else [y]))
    total.backward()
    score = sum((p * p.grad).abs().sum().item() for p in model.parameters() if p.grad is not None)
    return math.log10(score + 1e-30)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, data: PreparedData, *, batch_size: int = 32) -> float:
    """Mean per-image YOLOv8 loss (box + cls + dfl, gains applied) on ``data.val``.

    Normalisation layers run in eval mode; the head returns its raw maps (as in training), so
    the value is comparable with the training losses of ``EpochResult``.
    """
    was_training = model.training
    model.eval()
    model.head.training = True
    device = next(model.parameters()).device
    loss_fn = DetectionLoss(int(model.nc), model.stride, reg_max=model.head.reg_max)
    total, count = 0.0, 0
    try:
        for batch in iterate_batches(data.val, batch_size, shuffle=False, generator=None):
            feats = model(batch.images.to(device))
            out = loss_fn([f.float() for f in feats], batch.targets.to(device))
            n = len(batch.images)
            total += float(out.box + out.cls + out.dfl) * n
            count += n
    finally:
        model.train(was_training)
    return total / max(count, 1)
