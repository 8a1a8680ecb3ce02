"""Convolution primitives (Conv, DWConv) and the wiring rows Concat, Upsample and Index.

``Index`` (``[i]``) returns output ``i`` of a multi-output row (TimmBackbone, AFPN) with
channels ``ch_in[0][i]``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.blocks.registry import ChannelBlock, Channels, RowContext, register_block

__all__ = ["Concat", "Conv", "DWConv", "Index", "Upsample", "autopad"]


def autopad(kernel_size: int, padding: int | None = None, dilation: int = 1) -> int:
    """'Same' padding for odd kernels (ultralytics' ``autopad`` for int kernels)."""
    if padding is not None:
        return padding
    k = dilation * (kernel_size - 1) + 1 if dilation > 1 else kernel_size
    return k // 2


@register_block("Conv")
class Conv(ChannelBlock, nn.Module):
    """Conv2d(bias=False) -> BatchNorm2d(eps=1e-3, momentum=0.03) -> SiLU.

    YAML args: ``[c2, kernel_size=1, stride=1, padding=None, groups=1, dilation=1, act=True]``.
    ``act`` may be a bool (SiLU or identity) or an ``nn.Module`` instance.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            c1, c2, kernel_size, stride, autopad(kernel_size, padding, dilation),
            groups=groups, dilation=dilation, bias=False,
        )
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = (
            nn.SiLU() if act is True else act if isinstance(act, nn.Module) else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


@register_block("DWConv")
class DWConv(Conv):
    """Depth-wise Conv: groups = gcd(c1, c2). YAML args ``[c2, kernel_size=1, stride=1, ...]``."""

    def __init__(
        self,
        c1: int,
        c2: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        import math

        super().__init__(c1, c2, kernel_size, stride, groups=math.gcd(c1, c2), dilation=dilation,
                         act=act)


@register_block("Concat")
class Concat(nn.Module):
    """Concatenate the inputs named by ``from`` along ``dim`` (YAML args ``[dim]``, dim 1 only)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        dim = row.arg(0, "dim") if row.args else 1
        if dim != 1:
            raise row.error(f"only channel concatenation (dim 1) is supported, got {dim}")
        if any(not isinstance(c, int) for c in row.ch_in):
            raise row.error(f"inputs must be single tensors, got channels {row.ch_in}")
        return cls(dim), sum(row.ch_in)  # type: ignore[arg-type]

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, self.dim)


@register_block("nn.Upsample", "Upsample")
class Upsample(nn.Upsample):
    """``nn.Upsample``; YAML args ``[size, scale_factor, mode]`` as in ultralytics' yaml."""

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        size, factor, mode = (list(row.args) + [None, 2, "nearest"][len(row.args):])[:3]
        return cls(size=size, scale_factor=factor, mode=mode), row.c1


@register_block("Index")
class Index(nn.Module):
    """Output ``index`` of a multi-output row. YAML args ``[index]``.

    Example:
        >>> import torch
        >>> Index(1)([torch.zeros(1), torch.ones(1)])
        tensor([1.])
    """

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        if len(row.ch_in) != 1 or not isinstance(row.ch_in[0], tuple):
            raise row.error(
                f"needs one multi-output row as input (e.g. TimmBackbone, AFPN), got input "
                f"channels {row.ch_in}"
            )
        outputs = row.ch_in[0]
        i = row.arg(0, "index")
        if not 0 <= i < len(outputs):
            raise row.error(
                f"index {i} out of range: the input row has {len(outputs)} outputs "
                f"(valid 0..{len(outputs) - 1})"
            )
        if len(row.args) > 1:
            raise row.error(f"takes [index], got {list(row.args)}")
        return cls(i), outputs[i]

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[self.index]
