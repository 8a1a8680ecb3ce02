"""The detector built from an ``Architecture``: one module per row, wired by ``from`` indices.

The builder has no per-block branches: every row goes through ``create_block(RowContext(...))``
and the block's own channel contract. The last row must be the (only) ``Detect`` head.

Example:
    >>> import torch
    >>> model = build_model("yolov8n.yaml", nc=3)
    >>> model.stride.tolist()
    [8.0, 16.0, 32.0]
    >>> model.eval()(torch.zeros(1, 3, 64, 64)).shape  # xywh pixels + 3 class scores, 84 anchors
    torch.Size([1, 7, 84])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from nas.blocks.head import Detect
from nas.blocks.registry import Channels, RowContext, create_block
from nas.model.arch import Architecture, absolute_inputs, load_arch

__all__ = ["Detector", "LayerInfo", "build_model", "fuse_conv_bn"]

_STRIDE_PROBE = 64  # image size of the stride probe: P5 is 2x2 at stride 32, and it is cheap


@dataclass(frozen=True)
class LayerInfo:
    """One row of the built model, for tables (``python -m nas.info``).

    Attributes:
        index: row index (backbone first).
        frm: the row's ``from`` as written.
        repeats: depth-scaled repeat count.
        module: block name.
        params: parameters of the row's module.
        args: YAML args with ``nc`` replaced.
        channels: output channels (a tuple for multi-output rows).
    """

    index: int
    frm: int | tuple[int, ...]
    repeats: int
    module: str
    params: int
    args: tuple[Any, ...]
    channels: Channels


class Detector(nn.Module):
    """A YOLO-style detector: the rows of ``arch`` built in order, ending with ``Detect``.

    Build it with ``build_model``. ``forward`` returns the head's output: the raw per-level
    maps in training mode, decoded ``(B, 4 + nc, A)`` predictions in eval mode.

    Attributes:
        arch: the description it was built from (``nc`` and ``scale`` resolved).
        layers: one module per row.
        head: the ``Detect`` module (also ``layers[-1]``).
        stride: per-level strides, e.g. ``tensor([8., 16., 32.])``.
    """

    stride: torch.Tensor

    def __init__(self, arch: Architecture, in_channels: int = 3) -> None:
        super().__init__()
        self.arch = arch
        self.in_channels = in_channels
        scale = arch.resolved_scale()
        rows = arch.rows
        channels: list[Channels] = []
        layers: list[nn.Module] = []
        self._infos: list[tuple[int, Any, int, str, tuple[Any, ...], Channels]] = []
        self._inputs: list[tuple[int, ...]] = []
        for i, row in enumerate(rows):
            inputs = absolute_inputs(row, i)
            ch_in = tuple(in_channels if j == -1 else channels[j] for j in inputs)
            args = tuple(arch.nc if a == "nc" else a for a in row.args)
            context = RowContext(i, row.module, ch_in, args, scale.repeats(row.repeats), scale,
                                 arch.nc)
            module, c_out = create_block(context)
            layers.append(module)
            channels.append(c_out)
            self._inputs.append(inputs)
            self._infos.append((i, row.frm, context.repeats, row.module, args, c_out))
        self.layers = nn.ModuleList(layers)
        detects = [i for i, m in enumerate(layers) if isinstance(m, Detect)]
        if detects != [len(layers) - 1]:
            raise ValueError(
                f"a detector needs exactly one Detect head, as its last row; found Detect at "
                f"rows {detects} of {len(layers)}"
            )
        # outputs consumed later by a row other than the next one must be kept in forward
        self._save = {j for i, inp in enumerate(self._inputs) for j in inp if j not in (i - 1, -1)}
        self._single = [not isinstance(row.frm, tuple) for row in rows]
        self.register_buffer("stride", torch.zeros(self.head.nl), persistent=False)

    @property
    def head(self) -> Detect:
        """The detection head (the last row)."""
        head = self.layers[-1]
        assert isinstance(head, Detect)
        return head

    @property
    def nc(self) -> int:
        """Number of classes."""
        return self.head.nc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """Run every row; see the class docstring for the output in each mode."""
        saved: dict[int, Any] = {}
        for i, layer in enumerate(self.layers):
            inputs = self._inputs[i]
            if self._single[i]:
                j = inputs[0]
                feed = x if j == i - 1 else saved[j]
            else:
                feed = [x if j == i - 1 else saved[j] for j in inputs]
            x = layer(feed)
            if i in self._save:
                saved[i] = x
        return x

    def init_strides(self) -> None:
        """Measure the strides with one forward pass, set ``Detect.stride``, and init biases.

        The probe runs without gradients and with normalisation layers in eval mode, so
        BatchNorm running statistics are untouched. (A real 64-pixel pass is faster here
        than a shapes-only pass on the ``meta`` device.)
        """
        was_training = self.training
        self.eval()
        self.head.training = True  # raw maps out; its own BN layers stay in eval mode
        try:
            with torch.no_grad():
                param = next(self.parameters())
                probe = torch.zeros(1, self.in_channels, _STRIDE_PROBE, _STRIDE_PROBE,
                                    device=param.device, dtype=param.dtype)
                maps = self(probe)
        finally:
            self.train(was_training)
        strides = torch.tensor([_STRIDE_PROBE / m.shape[-2] for m in maps])
        self.stride = strides.to(self.stride.device)
        self.head.stride = strides.to(self.head.stride.device)
        self.head.bias_init()

    def layer_table(self) -> list[LayerInfo]:
        """One ``LayerInfo`` per row: index, from, repeats, module, params, args, channels."""
        return [
            LayerInfo(i, frm, n, module, sum(p.numel() for p in layer.parameters()), args, c)
            for (i, frm, n, module, args, c), layer in zip(self._infos, self.layers, strict=True)
        ]

    def fuse(self) -> Detector:
        """Fold every ``conv -> bn`` pair (a module with ``.conv`` and ``.bn``) for inference.

        Each BatchNorm2d becomes ``nn.Identity`` and its conv gains a bias; outputs are unchanged
        in eval mode. Returns ``self`` (modified in place; use on a model in eval mode).
        """
        for module in self.modules():
            conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module.conv = fuse_conv_bn(conv, bn)
                module.bn = nn.Identity()
        return self


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d (with bias) computing ``bn(conv(x))`` with BN's running statistics."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.requires_grad_(False)
    assert bn.running_var is not None and bn.running_mean is not None
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    factor = gamma / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * factor.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * factor + beta)
    return fused


def build_model(
    source: Architecture | str | Path | Mapping[str, Any],
    *,
    nc: int | None = None,
    scale: str | None = None,
) -> Detector:
    """Build a detector from an ``Architecture``, a YAML path/model name, YAML text or a dict.

    Args:
        source: the description (see ``nas.model.arch.load_arch`` for strings and paths).
        nc: number of classes, replacing the description's.
        scale: scale name (``n``, ``s``, ...), replacing the description's.

    Returns:
        A ``Detector`` in training mode with strides measured and head biases initialised.

    Raises:
        ArchError / BlockError (both ``ValueError``): a malformed description or row.
    """
    if isinstance(source, Architecture):
        arch = source.with_overrides(nc=nc, scale=scale)
    else:
        arch = load_arch(source, nc=nc, scale=scale)
    _check_supported(arch)
    if arch.scales and arch.scale is None:
        arch = arch.with_overrides(scale=next(iter(arch.scales)))
        warnings.warn(f"no model scale chosen; assuming scale {arch.scale!r}", stacklevel=2)
    in_channels = arch.extra.get("channels", arch.extra.get("ch", 3))
    model = Detector(arch, in_channels=int(in_channels))
    model.init_strides()
    return model


def _check_supported(arch: Architecture) -> None:
    """Reject ultralytics top-level options this builder does not implement."""
    if arch.extra.get("activation") is not None:
        raise ValueError(f"top-level key 'activation' ({arch.extra['activation']!r}) is not "
                         "supported: blocks use SiLU")
    if arch.extra.get("reg_max", 16) != 16:
        raise ValueError(f"top-level key 'reg_max' must be 16, got {arch.extra['reg_max']!r}")
    if arch.extra.get("end2end"):
        raise ValueError("top-level key 'end2end' is not supported (YOLOv8 heads only)")
