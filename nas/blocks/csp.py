"""YOLOv8's CSP blocks: Bottleneck, C2f, C3, and SPPF (ultralytics ``nn/modules/block.py``).

``C2f`` and ``C3`` build their inner units through ``make_unit``, so a variant (C2fGhost,
CSPPC, ...) overrides one method instead of rebuilding and discarding the default units.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.blocks.conv import Conv
from nas.blocks.registry import ChannelBlock, RepeatBlock, register_block

__all__ = ["C2f", "C3", "SPPF", "Bottleneck"]


@register_block("Bottleneck")
class Bottleneck(ChannelBlock, nn.Module):
    """Conv(c1, c_, k0) -> Conv(c_, c2, k1), plus the input when ``shortcut`` and c1 == c2.

    YAML args: ``[c2, shortcut=True, groups=1, kernel_sizes=(3, 3), expansion=0.5]``.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        shortcut: bool = True,
        groups: int = 1,
        kernel_sizes: tuple[int, int] | list[int] = (3, 3),
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden = int(c2 * expansion)
        self.cv1 = Conv(c1, hidden, kernel_sizes[0], 1)
        self.cv2 = Conv(hidden, c2, kernel_sizes[1], 1, groups=groups)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register_block("C2f")
class C2f(RepeatBlock, nn.Module):
    """CSP bottleneck with two convolutions (YOLOv8).

    ``cv1`` doubles to 2c channels, which split in two; each of ``n`` units takes the previous
    output; all 2 + n chunks are concatenated and fused by ``cv2``.
    YAML args: ``[c2, shortcut=False, groups=1, expansion=0.5]``.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = False,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        self.c = int(c2 * expansion)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(self.make_unit(self.c, shortcut, groups) for _ in range(n))

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        """One inner unit, ``c`` channels in and out. Variants override this."""
        return Bottleneck(c, c, shortcut, groups, kernel_sizes=(3, 3), expansion=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for unit in self.m:
            y.append(unit(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register_block("C3")
class C3(RepeatBlock, nn.Module):
    """CSP bottleneck with three convolutions (YOLOv5).

    YAML args: ``[c2, shortcut=True, groups=1, expansion=0.5]``.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden = int(c2 * expansion)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(self.make_unit(hidden, shortcut, groups) for _ in range(n)))

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        """One inner unit, ``c`` channels in and out. Variants override this."""
        return Bottleneck(c, c, shortcut, groups, kernel_sizes=(1, 3), expansion=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register_block("SPPF")
class SPPF(ChannelBlock, nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools, concatenated. Args ``[c2, k=5]``."""

    def __init__(self, c1: int, c2: int, kernel_size: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))
