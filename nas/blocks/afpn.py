"""Asymptotic feature pyramid network (AFPN, arXiv 2306.15988), three levels, as one row.

The official 3-level design (gyyang23/AFPN; the YOLOv8 ports follow it):

1. a 1x1 ``Conv`` compresses each input ``c_i`` to ``h_i = c_i // compression``, then a 1x1
   ``Conv(h_i, h_i)`` per level (the official body's first "blocks");
2. stage 1 fuses P3 and P4: for each of the two, the other level is resampled to it and an
   ``ASFF`` over 2 inputs mixes them, followed by ``blocks_per_stage`` residual ``BasicBlock``s;
   P5 waits;
3. stage 2 fuses P3, P4 and P5 the same way with ``ASFF`` over 3 inputs, then BasicBlocks;
4. a 1x1 ``Conv`` per level to the output widths.

Resampling to a finer level: 1x1 ``Conv`` then bilinear upsampling; to a coarser level: a
``Conv`` with kernel = stride = 2 or 4 (no padding). Only the resamplers that forward calls are
built (one public port builds six more it never calls: 30,656 dead parameters at n-scale).

YAML row (one row, three inputs, three outputs; pick them with ``Index``)::

    - [[4, 6, 9], 1, AFPN, [out_channels, blocks_per_stage, compression]]
    - [10, 1, Index, [0]]   # P3 (stride 8)

``out_channels`` is an int (all three outputs) or a list of three ints, width-scaled like any
row's ``c2``. ``from`` may also name one multi-output row with three outputs (TimmBackbone).

Defaults: ``blocks_per_stage=4`` and ``compression=4`` as in the official 3-level code (the
ports disagree: 3 or 4 blocks, /4 or /8; both are arguments, so a search can lower them).
Size: at n-scale (inputs 64, 128, 256) with 128-wide outputs the neck has 621,717 parameters;
``models/yolov8-afpn.yaml`` (outputs 256 -> 64 at n) gives yolov8n-afpn 2,452,709 at nc=80.
Activation: SiLU through the project's ``Conv`` (the official code uses ReLU; SiLU matches the
rest of YOLOv8 and the ultralytics ports; parameter counts are the same either way).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.conv import Conv
from nas.blocks.registry import Channels, RowContext, register_block

__all__ = ["AFPN", "ASFF", "BasicBlock", "Resample"]


class BasicBlock(nn.Module):
    """Conv3x3 -> Conv3x3 (no act) -> + input -> act (ResNet's basic block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = Conv(channels, channels, 3)
        self.conv2 = Conv(channels, channels, 3, act=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + x)


class ASFF(nn.Module):
    """Adaptive spatial feature fusion of ``levels`` inputs of ``channels`` each, same size.

    Each input -> 1x1 Conv(C, compress); concat; Conv2d(levels * compress, levels, 1, bias);
    softmax over levels; weighted sum of the inputs; 3x3 Conv(C, C).
    Params = levels * (compress * C + 2 * compress) + levels * (levels * compress + 1)
    + 9 * C^2 + 2 * C.
    """

    def __init__(self, channels: int, levels: int, compress: int = 8) -> None:
        super().__init__()
        self.weight_convs = nn.ModuleList(Conv(channels, compress, 1) for _ in range(levels))
        self.weight_levels = nn.Conv2d(compress * levels, levels, 1)
        self.conv = Conv(channels, channels, 3)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        votes = [m(x) for m, x in zip(self.weight_convs, xs, strict=True)]
        logits = self.weight_levels(torch.cat(votes, 1))
        weights = F.softmax(logits, dim=1)
        fused = sum(x * weights[:, i : i + 1] for i, x in enumerate(xs))
        return self.conv(fused)  # type: ignore[arg-type]


class Resample(nn.Module):
    """Move a map ``factor`` levels coarser (factor > 0) or finer (factor < 0) and set its width.

    Coarser: Conv(c1, c2, k=s=2^factor, padding 0); an input whose size is not a multiple of k
    (an image size not a multiple of 32) is zero-padded at the bottom/right first, matching the
    ceil-sized maps of stride-2 3x3 convolutions. Finer: Conv 1x1 then bilinear upsampling to
    the target map's size.
    """

    def __init__(self, c1: int, c2: int, factor: int) -> None:
        super().__init__()
        if factor == 0:
            raise ValueError("Resample needs a non-zero level difference")
        self.up = factor < 0
        self.k = 2 ** abs(factor)
        self.conv = Conv(c1, c2, 1) if self.up else Conv(c1, c2, self.k, self.k, 0)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.up:
            return F.interpolate(self.conv(x), size=size, mode="bilinear")
        h, w = x.shape[-2:]
        if h % self.k or w % self.k:
            x = F.pad(x, (0, -w % self.k, 0, -h % self.k))
        return self.conv(x)


class _FusionStage(nn.Module):
    """ASFF over the first ``levels`` levels (each resampled to each), then BasicBlocks."""

    def __init__(self, widths: tuple[int, ...], levels: int, blocks: int) -> None:
        super().__init__()
        self.levels = levels
        self.resample = nn.ModuleDict(
            {
                f"{src}_to_{dst}": Resample(widths[src], widths[dst], dst - src)
                for dst in range(levels)
                for src in range(levels)
                if src != dst
            }
        )
        self.asff = nn.ModuleList(ASFF(widths[i], levels) for i in range(levels))
        self.blocks = nn.ModuleList(
            nn.Sequential(*(BasicBlock(widths[i]) for _ in range(blocks))) for i in range(levels)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = list(xs)
        for dst in range(self.levels):
            size = xs[dst].shape[-2:]
            inputs = [
                xs[src] if src == dst else self.resample[f"{src}_to_{dst}"](xs[src], size)
                for src in range(self.levels)
            ]
            out[dst] = self.blocks[dst](self.asff[dst](inputs))
        return out


@register_block("AFPN")
class AFPN(nn.Module):
    """The 3-level AFPN neck: three maps (strides 8, 16, 32) in, three maps out.

    Args:
        in_channels: widths of P3, P4, P5.
        out_channels: output widths of the three levels.
        blocks_per_stage: BasicBlocks after each ASFF (0 allowed).
        compression: hidden width of level i is ``in_channels[i] // compression``.

    Raises:
        ValueError: not three levels, or a hidden width below 1.

    Example:
        >>> import torch
        >>> neck = AFPN((16, 32, 64), (32, 32, 32), blocks_per_stage=1)
        >>> xs = [torch.zeros(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((16, 32, 64))]
        >>> [tuple(y.shape) for y in neck(xs)]
        [(1, 32, 32, 32), (1, 32, 16, 16), (1, 32, 8, 8)]
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: tuple[int, ...],
        blocks_per_stage: int = 4,
        compression: int = 4,
    ) -> None:
        super().__init__()
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError(
                f"AFPN needs 3 levels, got in_channels={in_channels}, out_channels={out_channels}"
            )
        if compression < 1 or blocks_per_stage < 0:
            raise ValueError(
                f"AFPN needs compression >= 1 and blocks_per_stage >= 0, got {compression} and "
                f"{blocks_per_stage}"
            )
        hidden = tuple(c // compression for c in in_channels)
        if min(hidden) < 1:
            raise ValueError(
                f"AFPN compression {compression} leaves no channels of inputs {in_channels}"
            )
        self.hidden = hidden
        pairs = list(zip(in_channels, hidden, strict=True))
        self.compress = nn.ModuleList(
            nn.Sequential(Conv(c, h, 1), Conv(h, h, 1)) for c, h in pairs
        )
        self.stage1 = _FusionStage(hidden, 2, blocks_per_stage)
        self.stage2 = _FusionStage(hidden, 3, blocks_per_stage)
        self.expand = nn.ModuleList(
            Conv(h, c, 1) for h, c in zip(hidden, out_channels, strict=True)
        )

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        ch = row.ch_in[0] if len(row.ch_in) == 1 else row.ch_in
        if not isinstance(ch, tuple) or len(ch) != 3 or not all(isinstance(c, int) for c in ch):
            raise row.error(
                f"needs three single-tensor inputs (P3, P4, P5) or one row with three outputs, "
                f"got input channels {row.ch_in}"
            )
        out = row.arg(0, "out_channels", (int, list, tuple))
        outs = (out,) * 3 if isinstance(out, int) else tuple(out)
        if len(outs) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) for c in outs):
            raise row.error(f"out_channels must be an int or a list of 3 ints, got {out!r}")
        blocks = row.arg(1, "blocks_per_stage") if len(row.args) > 1 else 4
        compression = row.arg(2, "compression") if len(row.args) > 2 else 4
        if len(row.args) > 3:
            raise row.error(
                f"takes [out_channels, blocks_per_stage, compression], got {list(row.args)}"
            )
        widths = tuple(row.scale.channels(c) for c in outs)
        try:
            return cls(ch, widths, blocks, compression), widths  # type: ignore[arg-type]
        except ValueError as e:
            raise row.error(str(e)) from e

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(xs) != 3:
            raise ValueError(f"AFPN expects 3 feature maps, got {len(xs)}")
        ys = [m(x) for m, x in zip(self.compress, xs, strict=True)]
        ys = self.stage1(ys)
        ys = self.stage2(ys)
        return [m(y) for m, y in zip(self.expand, ys, strict=True)]
