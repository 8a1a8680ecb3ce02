"""A timm model as a 3-output backbone row (strides 8, 16, 32); ``Index`` picks its outputs.

YAML::

    backbone:
      - [-1, 1, TimmBackbone, [ghostnet_100]]   # 0: outputs P3, P4, P5
      - [0, 1, Index, [0]]                      # 1: P3 (stride 8)
      - [0, 1, Index, [1]]                      # 2: P4
      - [0, 1, Index, [2]]                      # 3: P5

``TimmBackbone`` builds ``timm.create_model(name, pretrained=False, features_only=True,
out_indices=...)`` with the out indices whose reductions are 8, 16 and 32 (the deepest feature
of each, from ``feature_info``). It never downloads weights. Its channels are the tuple
``feature_info.channels()`` of those levels; they are the model's own widths and are not
width-scaled. ``Index`` (``nas.blocks.conv``) picks one of its outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from nas.blocks.registry import Channels, RowContext, register_block
from nas.errors import UserError

__all__ = ["TimmBackbone", "TimmBackboneError"]

STRIDES = (8, 16, 32)


class TimmBackboneError(UserError, ValueError):
    """A timm model cannot serve as a stride 8/16/32 backbone; the message names it and why."""


def _pick_levels(name: str, reductions: list[int]) -> list[int]:
    """Feature indices of the deepest level at each of STRIDES; errors name the model."""
    picked = []
    for stride in STRIDES:
        matches = [i for i, r in enumerate(reductions) if r == stride]
        if not matches:
            raise TimmBackboneError(
                f"timm model {name!r} cannot give strides {', '.join(map(str, STRIDES))}: its "
                f"feature levels have reductions {reductions} (no level at stride {stride})"
            )
        picked.append(matches[-1])
    return picked


def _create(name: str, in_chans: int, **kwargs: Any) -> nn.Module:
    import timm  # local: timm is heavy and only needed when such a row is built

    if kwargs.pop("pretrained", False):
        raise TimmBackboneError(f"timm model {name!r}: pretrained weights are never downloaded")
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:10]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise TimmBackboneError(f"unknown timm model {name!r}{hint}")
    try:
        return timm.create_model(
            name, pretrained=False, features_only=True, in_chans=in_chans, **kwargs
        )
    except (RuntimeError, ValueError, TypeError, AssertionError) as e:
        raise TimmBackboneError(
            f"timm model {name!r} cannot be built with features_only=True: {e}"
        ) from e


@register_block("TimmBackbone")
class TimmBackbone(nn.Module):
    """A timm feature extractor returning the stride 8, 16 and 32 maps as a list.

    Args:
        model_name: a timm model name (``timm.list_models()``).
        in_chans: input image channels.
        **kwargs: passed to ``timm.create_model`` (never ``pretrained=True``).

    Raises:
        TimmBackboneError: unknown model, no ``features_only`` support, or no feature level at
            one of the strides 8, 16, 32 (the message lists the model's reductions).

    Example:
        >>> import torch
        >>> net = TimmBackbone("mobilenetv3_small_100")
        >>> net.channels
        (24, 48, 576)
        >>> [tuple(y.shape) for y in net(torch.zeros(1, 3, 64, 64))]
        [(1, 24, 8, 8), (1, 48, 4, 4), (1, 576, 2, 2)]
    """

    def __init__(self, model_name: str, in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__()
        probe = _create(model_name, in_chans, **kwargs)  # all levels, to read feature_info
        levels = _pick_levels(model_name, list(probe.feature_info.reduction()))
        out_indices = tuple(probe.feature_info.out_indices[i] for i in levels)
        del probe
        # Rebuilt with only the three levels: timm truncates the model after the last one.
        self.model = _create(model_name, in_chans, out_indices=out_indices, **kwargs)
        self.model_name = model_name
        info = self.model.feature_info
        self.channels: tuple[int, ...] = tuple(info.channels())
        reductions = tuple(info.reduction())
        if reductions != STRIDES:  # guards the index bookkeeping above
            raise TimmBackboneError(
                f"timm model {model_name!r} gave reductions {reductions}, expected {STRIDES}"
            )

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        name = row.arg(0, "model_name", str)
        if len(row.args) > 1:
            raise row.error(f"takes [model_name], got {list(row.args)}")
        try:
            module = cls(name, in_chans=row.c1)
        except TimmBackboneError as e:
            raise row.error(str(e)) from e
        return module, module.channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))
