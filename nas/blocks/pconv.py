"""Partial convolution blocks from FasterNet (arXiv 2303.03667): PConv, FasterNetBlock, CSPPC,
C2fFaster.

- ``PConv(dim, n_div=4)``: a bias-free 3x3 Conv2d on the first ``dim // n_div`` channels; the
  other channels pass through bit-identical. No BN, no activation. Params = 9 * (dim//n_div)^2.
  YAML args ``[c2, n_div=4]`` with ``c2`` (width-scaled) equal to the input width.
- ``FasterNetBlock(dim, n_div=4, mlp_ratio=2.0)``: PConv -> Conv(dim, 2dim, 1) (BN + SiLU) ->
  Conv2d(2dim, dim, 1, bias=False) -> + input. Params = 9(d/4)^2 + 4d^2 + 4d at the defaults.
  YAML args ``[c2, n_div=4, mlp_ratio=2.0]``, ``c2`` equal to the input width.
- ``CSPPC``: exactly ``C2f`` with each unit ``PConv(c) -> PConv(c)`` (no residual, BN,
  activation or 1x1 inside). Params = 2c*c1 + 4c + n*18*(c//4)^2 + (2+n)c*c2 + 2*c2.
  YAML args ``[c2, shortcut=False, groups=1, expansion=0.5, n_div=4]``; ``shortcut`` and
  ``groups`` do not apply to PConv units and are accepted so a ``C2f`` row can be swapped as is.
- ``C2fFaster``: ``C2f`` whose units are ``FasterNetBlock(c)``. YAML args
  ``[c2, shortcut=False, groups=1, expansion=0.5, n_div=4, mlp_ratio=2.0]`` (``shortcut`` and
  ``groups`` accepted as for CSPPC; FasterNet blocks always add their input).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.blocks.conv import Conv
from nas.blocks.csp import C2f
from nas.blocks.registry import Channels, RowContext, register_block

__all__ = ["C2fFaster", "CSPPC", "FasterNetBlock", "PConv"]

_FORWARD_MODES = ("split_cat", "slicing")


class _SameWidthBlock:
    """Contract ``[c2, *rest] -> cls(c1, *rest)`` for blocks whose output width is their input's.

    ``c2`` is width-scaled like any row and must equal the input width; repeats are stacked.
    """

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        c1 = row.c1
        c2 = row.scale.channels(row.arg(0, "out_channels"))
        if c2 != c1:
            raise row.error(
                f"keeps its input width: out_channels scales to {c2} but the input has {c1}"
            )
        try:
            mods = [cls(c1, *row.args[1:]) for _ in range(row.repeats)]
        except (TypeError, ValueError) as e:
            raise row.error(f"bad arguments {list(row.args)}: {e}") from e
        return (mods[0] if len(mods) == 1 else nn.Sequential(*mods)), c1


@register_block("PConv")
class PConv(_SameWidthBlock, nn.Module):
    """Partial 3x3 convolution over the first ``dim // n_div`` channels.

    Args:
        dim: input and output channels.
        n_div: the convolved fraction is ``1 / n_div``.
        forward_mode: ``"split_cat"`` (split, convolve, concatenate; safe for training) or
            ``"slicing"`` (convolve into a copy in place; inference only, a speed-up).

    Raises:
        ValueError: ``dim // n_div`` is 0 or ``forward_mode`` is unknown.

    Example:
        >>> import torch
        >>> PConv(16)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, dim: int, n_div: int = 4, forward_mode: str = "split_cat") -> None:
        super().__init__()
        if n_div < 1 or dim // n_div < 1:
            raise ValueError(f"PConv needs 1 <= n_div <= dim, got dim={dim}, n_div={n_div}")
        if forward_mode not in _FORWARD_MODES:
            raise ValueError(
                f"PConv forward_mode {forward_mode!r} is not one of {', '.join(_FORWARD_MODES)}"
            )
        self.dim_conv = dim // n_div
        self.dim_untouched = dim - self.dim_conv
        self.forward_mode = forward_mode
        self.partial_conv3 = nn.Conv2d(self.dim_conv, self.dim_conv, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.forward_mode == "slicing":
            if self.training:
                raise RuntimeError("PConv forward_mode 'slicing' is for inference; use eval()")
            x = x.clone()
            x[:, : self.dim_conv] = self.partial_conv3(x[:, : self.dim_conv])
            return x
        x1, x2 = torch.split(x, [self.dim_conv, self.dim_untouched], 1)
        return torch.cat((self.partial_conv3(x1), x2), 1)


@register_block("FasterNetBlock")
class FasterNetBlock(_SameWidthBlock, nn.Module):
    """PConv -> 1x1 Conv expanding by ``mlp_ratio`` (BN + SiLU) -> 1x1 Conv2d back -> + input.

    Args:
        dim: input and output channels.
        n_div: PConv's ``n_div``.
        mlp_ratio: hidden width = ``int(dim * mlp_ratio)``.
    """

    def __init__(self, dim: int, n_div: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"FasterNetBlock hidden width int({dim} * {mlp_ratio}) must be >= 1")
        self.spatial_mixing = PConv(dim, n_div)
        self.mlp = nn.Sequential(Conv(dim, hidden, 1), nn.Conv2d(hidden, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.spatial_mixing(x))


@register_block("CSPPC")
class CSPPC(C2f):
    """``C2f`` with ``PConv -> PConv`` units (the seed posts' CSPPC). See the module docstring."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = False,
        groups: int = 1,
        expansion: float = 0.5,
        n_div: int = 4,
    ) -> None:
        self.n_div = n_div  # read by make_unit during C2f.__init__ (a plain int, set first)
        super().__init__(c1, c2, n, shortcut, groups, expansion)

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        return nn.Sequential(PConv(c, self.n_div), PConv(c, self.n_div))


@register_block("C2fFaster")
class C2fFaster(C2f):
    """``C2f`` whose units are ``FasterNetBlock(c)``. See the module docstring."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = False,
        groups: int = 1,
        expansion: float = 0.5,
        n_div: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        self.n_div = n_div  # read by make_unit during C2f.__init__ (plain values, set first)
        self.mlp_ratio = mlp_ratio
        super().__init__(c1, c2, n, shortcut, groups, expansion)

    def make_unit(self, c: int, shortcut: bool, groups: int) -> nn.Module:
        return FasterNetBlock(c, self.n_div, self.mlp_ratio)
