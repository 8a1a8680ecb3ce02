"""Cheap stride-2 downsampling blocks: ADown (YOLOv9) and Down_wt (Haar wavelet, HWD).

Both halve the spatial size and replace a 3x3 stride-2 ``Conv`` row. YAML args ``[c2]``.

- ``ADown`` equals ultralytics' ``ADown`` (params 2.5 * c1 * c2 + 2 * c2 for even c1, c2).
- ``Down_wt`` (Xu et al., "Haar wavelet downsampling", Pattern Recognition 2023; apple1986/HWD):
  a one-level Haar DWT in pure torch (band-major: LL, then the three detail bands), then
  ``Conv2d(4 * c1, c2, 1, bias=True) -> BatchNorm2d -> ReLU`` (params 4 * c1 * c2 + 3 * c2).
  BatchNorm keeps torch's defaults and the activation is ReLU, as in the reference code.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.conv import Conv
from nas.blocks.registry import ChannelBlock, register_block

__all__ = ["ADown", "Down_wt", "haar_dwt"]


@register_block("ADown")
class ADown(ChannelBlock, nn.Module):
    """avg-pool 2x2/1, split channels; 3x3/2 Conv on one half, max-pool 3x3/2 + 1x1 on the other.

    Args:
        c1: input channels (even).
        c2: output channels (even).

    Raises:
        ValueError: odd ``c1`` or ``c2`` (the halves would not add up).

    Example:
        >>> import torch
        >>> ADown(32, 64)(torch.zeros(1, 32, 16, 16)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        if c1 % 2 or c2 % 2:
            raise ValueError(f"ADown needs even channel counts, got c1={c1}, c2={c2}")
        self.c = c2 // 2
        self.cv1 = Conv(c1 // 2, self.c, 3, 2, 1)
        self.cv2 = Conv(c1 // 2, self.c, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2, 1, 0, False, True)
        x1, x2 = x.chunk(2, 1)
        return torch.cat((self.cv1(x1), self.cv2(F.max_pool2d(x2, 3, 2, 1))), 1)


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """One-level 2-D Haar DWT, band-major: ``(B, C, H, W) -> (B, 4C, ceil(H/2), ceil(W/2))``.

    With a, b, c, d the top-left, top-right, bottom-left and bottom-right pixels of each 2x2
    cell, the bands are LL = (a+b+c+d)/2, (a+b-c-d)/2, (a-b+c-d)/2 and (a-b-c+d)/2: channels
    ``[0, C)`` hold LL of every input channel, ``[C, 2C)`` the first detail band, and so on.
    An odd height or width is padded with one zero row or column at the bottom or right.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    s_top, d_top = a + b, a - b
    s_bot, d_bot = c + d, c - d
    return torch.cat(
        ((s_top + s_bot) / 2, (s_top - s_bot) / 2, (d_top + d_bot) / 2, (d_top - d_bot) / 2), 1
    )


@register_block("Down_wt")
class Down_wt(ChannelBlock, nn.Module):  # noqa: N801 (the name users know from the seed posts)
    """Haar wavelet downsampling: ``haar_dwt`` then Conv2d(4c1, c2, 1, bias) + BN + ReLU.

    Args:
        c1: input channels.
        c2: output channels.

    Example:
        >>> import torch
        >>> Down_wt(32, 64)(torch.zeros(1, 32, 15, 16)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4 * c1, c2, 1, 1, bias=True)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(haar_dwt(x))))
