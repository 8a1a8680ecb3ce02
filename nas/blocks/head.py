"""The YOLOv8 detection head: DFL and Detect (ultralytics ``nn/modules/head.py``, v8 layout).

Per pyramid level, two decoupled branches: a box branch ``Conv3x3 -> Conv3x3 -> Conv2d 1x1``
predicting ``4 * reg_max`` distribution logits (left, top, right, bottom), and a class branch of
the same shape predicting ``nc`` logits. In training mode the head returns the raw per-level
maps; in eval mode it decodes them to ``(B, 4 + nc, A)``: xywh boxes in input pixels, then the
class probabilities.

Example:
    >>> import torch
    >>> head = Detect(nc=3, channels=(16, 32, 64)).eval()
    >>> head.stride = torch.tensor([8.0, 16.0, 32.0])
    >>> feats = [torch.zeros(1, c, s, s) for c, s in ((16, 8), (32, 4), (64, 2))]
    >>> head(feats).shape
    torch.Size([1, 7, 84])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from nas.blocks.conv import Conv
from nas.blocks.registry import Channels, RowContext, register_block
from nas.ops.anchors import dist2bbox, make_anchors

__all__ = ["DFL", "Detect"]


class DFL(nn.Module):
    """Distribution Focal Loss integral: the expectation of a softmax over ``bins`` distances.

    A frozen 1x1 convolution with weights ``0, 1, ..., bins - 1`` (its ``bins`` parameters are
    counted as parameters but not as trainable ones, as in ultralytics).
    """

    def __init__(self, bins: int = 16) -> None:
        super().__init__()
        self.bins = bins
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4 * bins, A)`` logits -> ``(B, 4, A)`` expected distances in grid units."""
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def _branch(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Conv3x3 -> Conv3x3 -> Conv2d 1x1 (with bias): one prediction branch of one level."""
    return nn.Sequential(
        Conv(c_in, hidden, 3), Conv(hidden, hidden, 3), nn.Conv2d(hidden, c_out, 1)
    )


@register_block("Detect")
class Detect(nn.Module):
    """YOLOv8 anchor-free detection head over several pyramid levels.

    YAML row: ``[[P3, P4, P5], 1, Detect, [nc]]``; the input channels come from ``from``.

    Args:
        nc: number of classes.
        channels: input channels of each level, finest first.
        reg_max: DFL bins per box side.

    Attributes:
        stride: per-level strides (a non-persistent buffer), set by the model builder.
        no: outputs per anchor, ``nc + 4 * reg_max``.
    """

    stride: torch.Tensor

    def __init__(self, nc: int = 80, channels: Sequence[int] = (), reg_max: int = 16) -> None:
        super().__init__()
        if not channels:
            raise ValueError("Detect needs at least one input level (channels was empty)")
        if nc < 1:
            raise ValueError(f"Detect needs nc >= 1, got {nc}")
        self.nc = nc
        self.nl = len(channels)
        self.reg_max = reg_max
        self.no = nc + 4 * reg_max
        box_width = max(16, channels[0] // 4, 4 * reg_max)
        cls_width = max(channels[0], min(nc, 100))
        self.cv2 = nn.ModuleList(_branch(c, box_width, 4 * reg_max) for c in channels)
        self.cv3 = nn.ModuleList(_branch(c, cls_width, nc) for c in channels)
        self.dfl: nn.Module = DFL(reg_max) if reg_max > 1 else nn.Identity()
        self.register_buffer("stride", torch.zeros(self.nl), persistent=False)
        self._anchor_key: tuple[object, ...] | None = None
        self._anchors = torch.empty(0)
        self._strides = torch.empty(0)

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        """Build from ``[nc]``; one input level per entry of ``from``."""
        if len(row.args) != 1:
            raise row.error(f"expects args [nc], got {list(row.args)}")
        nc = row.arg(0, "nc")
        if nc < 1:
            raise row.error(f"nc must be >= 1, got {nc}")
        if not all(isinstance(c, int) for c in row.ch_in):
            raise row.error(f"inputs must be single tensors, got channels {row.ch_in}")
        head = cls(nc, tuple(row.ch_in))  # type: ignore[arg-type]
        return head, head.no

    def bias_init(self) -> None:
        """Prior biases (needs ``stride``): box logits 1.0, classes log(5 / nc / (640 / s)^2).

        The class prior assumes about 5 objects per 640x640 image spread over ``nc`` classes.
        """
        if not bool((self.stride > 0).all()):
            raise RuntimeError(f"Detect.bias_init needs positive strides, got {self.stride}")
        for box, cls_branch, s in zip(self.cv2, self.cv3, self.stride.tolist(), strict=True):
            box[-1].bias.data[:] = 1.0
            cls_branch[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor] | torch.Tensor:
        """Training: per-level ``(B, no, H, W)`` raw maps. Eval: decoded ``(B, 4 + nc, A)``."""
        if len(x) != self.nl:
            raise ValueError(f"Detect expects {self.nl} feature maps, got {len(x)}")
        maps = [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1) for i in range(self.nl)]
        if self.training:
            return maps
        return self.decode(maps)

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Raw per-level maps -> ``(B, 4 + nc, A)``: xywh in input pixels, class sigmoid."""
        b = maps[0].shape[0]
        flat = torch.cat([m.view(b, self.no, -1) for m in maps], 2)
        box, cls_logits = flat.split((4 * self.reg_max, self.nc), 1)
        anchors, strides = self._anchors_for(maps)
        dbox = dist2bbox(self.dfl(box), anchors.unsqueeze(0), xywh=True, dim=1) * strides
        return torch.cat((dbox, cls_logits.sigmoid()), 1)

    def _anchors_for(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor points ``(2, A)`` and strides ``(1, A)``, cached per input shape and device."""
        # id and _version notice a replaced or modified stride without a device sync
        key = (tuple(m.shape[-2:] for m in maps), maps[0].device, maps[0].dtype,
               id(self.stride), self.stride._version)
        if key != self._anchor_key:
            # a shape-only pass (FLOP counting on the meta device) has no stride values
            stride = [1.0] * self.nl if self.stride.is_meta else self.stride
            points, strides = make_anchors(maps, stride, 0.5)
            self._anchors, self._strides = points.transpose(0, 1), strides.transpose(0, 1)
            self._anchor_key = key
        return self._anchors, self._strides
