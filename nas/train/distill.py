"""Knowledge distillation from a teacher detector on the head outputs (logit distillation).

The teacher is any model YAML + weights with the student's classes and strides (a trained
YOLOv8s, the unpruned baseline...); its widths may differ, since only the head outputs are
compared, level by level, anchor by anchor (both heads predict ``4 * reg_max + nc`` values per
anchor on the same grids):

- classes: binary KL divergence per class between the temperature-softened sigmoids
  (YOLOv8's classes are independent sigmoids, not one softmax), averaged over anchors;
- boxes: KL divergence between the softened DFL distributions of each side, weighted per
  anchor by the teacher's top class probability (background anchors carry no box to learn).

Both terms are multiplied by ``T^2`` (Hinton et al.) and the sum by the batch size, as the
detection loss is, so ``distill_weight`` (``TrainConfig``) is a plain ratio between the two.

Example:
    >>> import torch
    >>> s = [torch.zeros(1, 66, 2, 2)]
    >>> float(distillation_loss(s, s, nc=2).total)
    0.0
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.errors import ConfigError

__all__ = ["DistillLoss", "Distiller", "build_distiller", "distillation_loss", "load_teacher"]


class DistillLoss(NamedTuple):
    """Distillation loss of one batch (per image, temperature scaling applied).

    Attributes:
        total: ``cls + dfl``.
        cls: Class term (binary KL of softened sigmoids).
        dfl: Box term (KL of softened DFL distributions, foreground-weighted).
    """

    total: torch.Tensor
    cls: torch.Tensor
    dfl: torch.Tensor


def _flatten(maps: list[torch.Tensor]) -> torch.Tensor:
    """Per-level ``(B, C, H, W)`` -> ``(B, A, C)``."""
    return torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2).float()


def distillation_loss(
    student: list[torch.Tensor],
    teacher: list[torch.Tensor],
    *,
    nc: int,
    reg_max: int = 16,
    temperature: float = 2.0,
) -> DistillLoss:
    """Distillation loss between two heads' raw per-level maps (a pure function).

    Args:
        student: Student maps ``(B, 4 * reg_max + nc, H, W)`` per level.
        teacher: Teacher maps of the same shapes (no gradient needed).
        nc: Classes.
        reg_max: DFL bins per side.
        temperature: Softening temperature ``T`` (> 0).

    Returns:
        The :class:`DistillLoss`; zero when the two heads agree.
    """
    if temperature <= 0:
        raise ConfigError(f"train.distill_temperature: must be > 0, got {temperature}")
    shapes = [tuple(s.shape) for s in student], [tuple(t.shape) for t in teacher]
    if shapes[0] != shapes[1]:
        raise ValueError(f"student and teacher head outputs differ: {shapes[0]} vs {shapes[1]}")
    s, t = _flatten(student), _flatten([m.detach() for m in teacher])
    s_box, s_cls = s.split((4 * reg_max, nc), -1)
    t_box, t_cls = t.split((4 * reg_max, nc), -1)
    tau = temperature
    # binary KL(p_t || p_s) per class = BCE(s, p_t) - H(p_t)
    p_t = torch.sigmoid(t_cls / tau)
    cls = (F.binary_cross_entropy_with_logits(s_cls / tau, p_t, reduction="none")
           - F.binary_cross_entropy_with_logits(t_cls / tau, p_t, reduction="none"))  # fmt: skip
    cls_term = cls.sum(-1).mean() * tau**2
    b, a = s.shape[:2]
    log_q = F.log_softmax(s_box.reshape(b, a, 4, reg_max) / tau, -1)
    log_p = F.log_softmax(t_box.reshape(b, a, 4, reg_max) / tau, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean(-1)  # (B, A), mean over the 4 sides
    weight = torch.sigmoid(t_cls).amax(-1)
    dfl_term = (kl * weight).sum() / weight.sum().clamp_min(1e-9) * tau**2
    return DistillLoss(cls_term + dfl_term, cls_term.detach(), dfl_term.detach())


def load_teacher(model_yaml: str | Path, weights: str | Path | None, nc: int) -> nn.Module:
    """Build the teacher from its model YAML and load its state dict (``weights_only``)."""
    from nas.model import build_model

    teacher = build_model(str(model_yaml), nc=nc)
    if weights is not None:
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        teacher.load_state_dict(state)
    return teacher


class Distiller:
    """Runs the frozen teacher on a batch and scores the student's maps against it.

    The teacher stays in eval mode (BatchNorm running statistics, no updates) except for its
    ``Detect`` module, which is put in training mode alone so that it returns raw maps.

    Args:
        teacher: A ``Detector`` with the student's classes and strides.
        weight: Multiplier of the distillation loss (``TrainConfig.distill_weight``).
        temperature: ``TrainConfig.distill_temperature``.
        device: The training device.
    """

    def __init__(
        self, teacher: nn.Module, *, weight: float, temperature: float, device: torch.device
    ) -> None:
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.teacher.head.training = True  # raw maps; its BatchNorms stay in eval mode
        self.weight = weight
        self.temperature = temperature
        self.nc = int(teacher.nc)
        self.reg_max = int(teacher.head.reg_max)

    def __call__(self, images: torch.Tensor, student: list[torch.Tensor]) -> torch.Tensor:
        """``weight * batch * loss``: what to add to the detection loss before backward."""
        with torch.no_grad():
            maps = self.teacher(images)
        out = distillation_loss([m.float() for m in student], [m.float() for m in maps],
                                nc=self.nc, reg_max=self.reg_max,
                                temperature=self.temperature)  # fmt: skip
        return out.total * (self.weight * images.shape[0])


def build_distiller(cfg: object, student: nn.Module, device: torch.device) -> Distiller | None:
    """The distiller a ``TrainConfig`` asks for (``teacher`` set), else None.

    Raises:
        ValueError: The teacher's classes or strides differ from the student's.
    """
    teacher_yaml = getattr(cfg, "teacher", None)
    if not teacher_yaml:
        return None
    teacher = load_teacher(teacher_yaml, getattr(cfg, "teacher_weights", None), int(student.nc))
    if teacher.stride.tolist() != student.stride.tolist():
        raise ConfigError(f"train.teacher {teacher_yaml}: strides {teacher.stride.tolist()} "
                          f"differ from the student's {student.stride.tolist()}")  # fmt: skip
    return Distiller(teacher, weight=float(cfg.distill_weight),  # type: ignore[attr-defined]
                     temperature=float(cfg.distill_temperature),  # type: ignore[attr-defined]
                     device=device)  # fmt: skip
