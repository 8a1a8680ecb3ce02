"""Structured pruning of a ``Detector`` with Torch-Pruning's dependency graph (DepGraph).

Whole filters are removed with their coupled channels (BatchNorm, the next convolutions,
concatenations, residual additions, depthwise groups) as Torch-Pruning's ``DependencyGraph``
traces them; nothing is traced by hand. Iterative: ``steps`` pruning steps, each followed by a
fine-tuning ``fit`` through ``nas.train``'s engine, until the parameter count reaches
``target_ratio`` of the original.

What is not pruned, and why:

- ``Detect``'s last 1x1 convolutions (their outputs are the DFL bins and the class logits)
  and the frozen DFL: ``IGNORED`` lists them per block class (a registry, as for blocks);
  ``AFPN`` (its ASFF fusion slices the level weights by channel, which the graph cannot follow)
  and ``TimmBackbone`` (a foreign model) are ignored whole.
- Every channel group that passes through a ``torch.split``/``chunk`` of fixed sizes: the
  sizes are Python integers in the block's code (``C2f``'s ``cv1`` chunk, ``PConv``'s untouched
  part, ``ADown``'s halves), so pruning one side would break the split. Such groups are found
  in the dependency graph (a split node in the group) and skipped.

Example:
    >>> cfg = PruneConfig(target_ratio=0.7)
    >>> result = prune_detector(model, data, cfg, finetune=recipe)  # doctest: +SKIP
    >>> result.params / result.original_params <= 0.7  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from nas.blocks.afpn import AFPN
from nas.blocks.head import Detect
from nas.blocks.timm_backbone import TimmBackbone
from nas.deploy._extra import require
from nas.deploy.errors import DeployError
from nas.model.counting import count_params

if TYPE_CHECKING:
    from nas.data import PreparedData
    from nas.train.config import TrainConfig
    from nas.train.engine import FitResult

__all__ = ["IGNORED", "PruneConfig", "PruneResult", "ignored_layers", "prune_detector"]

logger = logging.getLogger(__name__)


def _detect_outputs(head: nn.Module) -> list[nn.Module]:
    assert isinstance(head, Detect)
    return [*(b[-1] for b in head.cv2), *(b[-1] for b in head.cv3), head.dfl]


def _whole(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


# block class -> the submodules whose output channels must stay as they are
IGNORED: dict[type[nn.Module], Callable[[nn.Module], list[nn.Module]]] = {
    Detect: _detect_outputs,
    AFPN: _whole,
    TimmBackbone: _whole,
}


def ignored_layers(model: nn.Module) -> list[nn.Module]:
    """Every module ``IGNORED`` names for the blocks of ``model``."""
    out: list[nn.Module] = []
    for module in model.modules():
        for cls, rule in IGNORED.items():
            if isinstance(module, cls):
                out.extend(rule(module))
    return out


@dataclass(frozen=True)
class PruneConfig:
    """How to prune.

    Attributes:
        target_ratio: Parameters kept, as a fraction of the original (0 < r <= 1).
        steps: Pruning steps (each followed by fine-tuning when a recipe is given).
        imgsz: Side of the tracing input (any multiple of 32; shapes only).
        round_to: Keep channel counts multiples of this (None: any count).
        norm: The magnitude importance's p (L-p norm of each group's weights).
    """

    target_ratio: float = 0.7
    steps: int = 2
    imgsz: int = 64
    round_to: int | None = None
    norm: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.target_ratio <= 1 or self.steps < 1 or self.imgsz % 32:
            raise DeployError(
                f"prune: need 0 < target_ratio <= 1, steps >= 1, imgsz a multiple of 32; got "
                f"{self.target_ratio}, {self.steps}, {self.imgsz}"
            )
        if self.round_to is not None and self.round_to < 1:
            raise DeployError(f"prune: round_to must be >= 1 (or None), got {self.round_to}")


@dataclass(frozen=True)
class PruneResult:
    """What ``prune_detector`` did.

    Attributes:
        original_params: Parameters before pruning.
        params: Parameters after.
        channel_ratio: Torch-Pruning's per-group channel ratio that reached the target.
        skipped_groups: Groups left whole because they pass through a fixed-size split.
        ignored: Names of the ignored modules.
        history: Parameter count and fine-tuning result after each step.
    """

    original_params: int
    params: int
    channel_ratio: float
    skipped_groups: int
    ignored: tuple[str, ...]
    history: list[tuple[int, FitResult | None]] = field(default_factory=list)


class _SplitAwareImportance:
    """Torch-Pruning's magnitude importance, except for groups that touch a split node: those
    get no score (``None``), which the pruner reads as "leave this group whole"."""

    def __init__(self, norm: int) -> None:
        tp = require("torch_pruning")
        self._inner = tp.importance.MagnitudeImportance(p=norm)
        self._split = tp.ops.OPTYPE.SPLIT
        self.skipped = 0

    def __call__(self, group: Any) -> torch.Tensor | None:
        if any(dep.source.type == self._split or dep.target.type == self._split
               for dep, _ in group.items):  # fmt: skip
            self.skipped += 1
            return None
        return self._inner(group)


def _pruner(model: nn.Module, cfg: PruneConfig, ratio: float) -> tuple[Any, _SplitAwareImportance]:
    tp = require("torch_pruning")
    param = next(model.parameters())
    example = torch.zeros(1, 3, cfg.imgsz, cfg.imgsz, device=param.device)
    importance = _SplitAwareImportance(cfg.norm)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=importance,
        iterative_steps=cfg.steps,
        pruning_ratio=ratio,
        ignored_layers=ignored_layers(model),
        round_to=cfg.round_to,
    )
    return pruner, importance


def _params_at(model: nn.Module, cfg: PruneConfig, ratio: float) -> int:
    """Parameters after pruning at channel ratio ``ratio`` (on a copy, no fine-tuning)."""
    trial = copy.deepcopy(model).eval()
    # the iterative schedule ends at ``ratio`` of the original channels: one step is the same
    pruner, _ = _pruner(trial, dataclasses.replace(cfg, steps=1), ratio)
    pruner.step()
    return count_params(trial)


def find_channel_ratio(model: nn.Module, cfg: PruneConfig, *, probes: int = 4) -> float:
    """A channel ratio whose pruning keeps at most ``target_ratio`` of the parameters.

    Each probe prunes a copy of the model (a dependency-graph trace, the costly part). The
    removed fraction of parameters grows about as ``1 - (1 - r)^2`` with the channel ratio
    ``r`` (a pruned layer loses rows and columns), so each probe corrects ``r`` by that model
    from the last measurement; the first ratio that meets the target is returned.

    Raises:
        ValueError: even pruning 90% of every prunable group keeps too many parameters.
    """
    original = count_params(model)
    wanted = 1.0 - cfg.target_ratio  # fraction of the parameters to remove
    ratio, limit = 1.0 - (1.0 - wanted) ** 0.5, 0.9  # as if every layer were prunable
    for _ in range(probes):
        removed = 1.0 - _params_at(model, cfg, ratio) / original
        if removed >= wanted - 1e-9:
            return ratio
        if removed <= 0:
            break
        # removed ~ k * (1 - (1 - r)^2): solve for the r that removes ``wanted``
        k = removed / (1.0 - (1.0 - ratio) ** 2)
        if wanted / k >= 1.0:
            break
        ratio = min(limit, max(ratio + 0.01, 1.0 - (1.0 - wanted / k) ** 0.5 + 0.005))
    if 1.0 - _params_at(model, cfg, limit) / original >= wanted - 1e-9:
        return limit
    raise DeployError(
        f"prune: target_ratio {cfg.target_ratio} is out of reach: too few prunable channels "
        "(ignored layers and split-coupled groups)"
    )


def prune_detector(
    model: nn.Module,
    data: PreparedData | None,
    cfg: PruneConfig,
    *,
    finetune: TrainConfig | None = None,
    progress: bool = False,
) -> PruneResult:
    """Prune ``model`` in place to ``cfg.target_ratio`` of its parameters, iteratively.

    Args:
        model: A trained ``Detector`` (any design; on the CPU or its training device).
        data: Prepared data for fine-tuning (None: no fine-tuning).
        cfg: Target, steps, tracing size.
        finetune: The fine-tuning recipe run after each step (``nas.train.fit``); None: none.
        progress: tqdm bars during fine-tuning.

    Returns:
        The :class:`PruneResult` (the model itself is modified).
    """
    from nas.train.engine import fit

    original = count_params(model)
    was_training = model.training
    model.eval()
    ratio = find_channel_ratio(model, cfg)
    pruner, importance = _pruner(model, cfg, ratio)
    names = {m: n for n, m in model.named_modules()}
    ignored = tuple(names[m] for m in ignored_layers(model) if m in names)
    history: list[tuple[int, FitResult | None]] = []
    for step in range(cfg.steps):
        model.eval()
        importance.skipped = 0
        pruner.step()
        fitted = None
        if finetune is not None and data is not None:
            fitted = fit(model, data, finetune, progress=progress)
        history.append((count_params(model), fitted))
        logger.info("prune step %d/%d: %d params (%.1f%%)%s", step + 1, cfg.steps,
                    history[-1][0], 100 * history[-1][0] / original,
                    f", mAP50 {fitted.map50:.4f}" if fitted else "")  # fmt: skip
    model.train(was_training)
    return PruneResult(original, count_params(model), ratio, importance.skipped, ignored,
                       history)
