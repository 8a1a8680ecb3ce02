"""GhostNet blocks: GhostConv, GhostBottleneck, C3Ghost, C2fGhost (arXiv 1911.11907).

Parameter counts and forward math equal ultralytics' ``GhostConv``, ``GhostBottleneck`` and
``C3Ghost``; ``C2fGhost`` (seed 001) is ``C2f`` whose units are ``GhostBottleneck(c, c)``.

YAML args (ultralytics' conventions):

- ``GhostConv``: ``[c2, kernel_size=1, stride=1, groups=1, act=True]``
- ``GhostBottleneck``: ``[c2, kernel_size=3, stride=1]``
- ``C3Ghost``: ``[c2, shortcut=True, groups=1, expansion=0.5]`` (repeats = units)
- ``C2fGhost``: ``[c2, shortcut=False, groups=1, expansion=0.5]`` (repeats = units); the
  Ghost units always add their identity residual, so ``shortcut`` and ``groups`` only keep the
  row a drop-in replacement for a ``C2f`` row.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.blocks.conv import Conv, DWConv
from nas.blocks.csp import C3, C2f
from nas.blocks.registry import BlockError, ChannelBlock, Channels, RowContext, register_block

__all__ = ["C2fGhost", "C3Ghost", "GhostBottleneck", "GhostConv"]


@register_block("GhostConv")
class GhostConv(ChannelBlock, nn.Module):
    """Half the outputs from a Conv, the other half from a cheap 5x5 depth-wise Conv of them.

    ``y = Conv(c1, c2 // 2, k, s)(x)``; output ``cat(y, DWConv5x5(y))``.
    Params = k^2 * c1 * c_ / groups + 29 * c_ with c_ = c2 // 2 (BatchNorm included).

    Args:
        c1: input channels.
        c2: output channels (even: the two halves are equal).
        kernel_size: kernel of the primary Conv.
        stride: stride of the primary Conv.
        groups: groups of the primary Conv.
        act: activation of both Convs (True = SiLU, False = none, or a module).

    Raises:
        ValueError: odd ``c2`` (ultralytics would silently output ``c2 - 1`` channels).

    Example:
        >>> import torch
        >>> GhostConv(16, 32, 3, 2)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        super().__init__()
        if c2 % 2:
            raise ValueError(f"GhostConv needs an even number of output channels, got c2={c2}")
        hidden = c2 // 2
        self.cv1 = Conv(c1, hidden, kernel_size, stride, None, groups, act=act)
        self.cv2 = Conv(hidden, hidden, 5, 1, None, hidden, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        return torch.cat((y, self.cv2(y)), 1)


@register_block("GhostBottleneck")
class GhostBottleneck(ChannelBlock, nn.Module):
    """GhostConv(c1, c2/2) -> [DWConv k x k, stride 2] -> GhostConv(c2/2, c2, no act), + shortcut.

    The shortcut is the identity at stride 1 (then ``c1 == c2`` is required) and
    ``DWConv(c1, c1, k, 2) -> Conv(c1, c2, 1)`` (both without activation) at stride 2.

    Args:
        c1: input channels.
        c2: output channels.
        kernel_size: depth-wise kernel used at stride 2.
        stride: 1 or 2.

    Raises:
        ValueError: stride not 1 or 2, or ``c1 != c2`` at stride 1.
    """

    def __init__(self, c1: int, c2: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"GhostBottleneck stride must be 1 or 2, got {stride}")
        if stride == 1 and c1 != c2:
            raise ValueError(
                f"GhostBottleneck at stride 1 adds its input: c1 ({c1}) must equal c2 ({c2})"
            )
        hidden = c2 // 2
        depthwise = DWConv(hidden, hidden, kernel_size, stride, act=False)
        self.conv = nn.Sequential(
            GhostConv(c1, hidden, 1, 1),
            depthwise if stride == 2 else nn.Identity(),
            GhostConv(hidden, c2, 1, 1, act=False),
        )
        self.shortcut: nn.Module = (
            nn.Sequential(
                DWConv(c1, c1, kernel_size, stride, act=False), Conv(c1, c2, 1, 1, act=False)
            )
            if stride == 2
            else nn.Identity()
        )

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        try:
            return super().from_row(row)
        except BlockError:
            raise
        except ValueError as e:  # stride or c1 != c2: name the row
            raise row.error(str(e)) from e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


@register_block("C3Ghost")
class C3Ghost(C3):
    """``C3`` whose units are ``GhostBottleneck(c_, c_)`` (ultralytics' C3Ghost).

    YAML args: ``[c2, shortcut=True, groups=1, expansion=0.5]``; the units ignore ``shortcut``
    and ``groups`` (their identity residual is always on), as in ultralytics.
    """

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        return GhostBottleneck(c, c)


@register_block("C2fGhost")
class C2fGhost(C2f):
    """``C2f`` whose units are ``GhostBottleneck(c, c)`` (seed 001's C2f_Ghost).

    Params = 2c*c1 + 4c + n*(c^2/2 + 87c/4) + (2+n)c*c2 + 2*c2 for c divisible by 4
    (c = int(c2 * expansion); each unit is GhostConv(c, c/2) + GhostConv(c/2, c)).
    YAML args as ``C2f``.
    """

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        return GhostBottleneck(c, c)
