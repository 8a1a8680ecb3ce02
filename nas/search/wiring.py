"""Choices -> ``Architecture``: the explicit YOLOv8 wiring that a search space's choices fill.

The wiring (which row feeds which) is code; the choices are data (``nas.search.space``). The
baseline choices give exactly ultralytics' ``yolov8<scale>.yaml`` rows; the AFPN neck becomes
one multi-output ``AFPN`` row and three ``Index`` rows; a timm backbone becomes a
``TimmBackbone`` row and three ``Index`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas.search.space import (
    BACKBONE_BLOCK_STAGES,
    BACKBONE_DOWN_STAGES,
    YOLOV8_BACKBONE,
    Option,
    SearchSpace,
)

if TYPE_CHECKING:
    from nas.model.arch import Architecture

__all__ = ["to_arch"]

_BACKBONE_WIDTHS = {"P1": 64, "P2": 128, "P3": 256, "P4": 512, "P5": 1024}
_BACKBONE_REPEATS = {"P2": 3, "P3": 6, "P4": 6, "P5": 3}
_NECK_WIDTHS = {"top_down_P4": 512, "out_P3": 256, "out_P4": 512, "out_P5": 1024}
_NECK_DOWN_WIDTHS = {"P4": 256, "P5": 512}
_OUT_WIDTHS = (256, 512, 1024)  # P3, P4, P5 outputs (scale 1)


def to_arch(space: SearchSpace, choices: Mapping[str, Any], nc: int) -> Architecture:
    """The ``Architecture`` of one candidate (YOLOv8 wiring with the chosen blocks).

    The baseline choices give exactly ultralytics' ``yolov8<scale>.yaml`` rows.

    Args:
        space: the search space.
        choices: active choices as returned by ``sample`` or ``complete``.
        nc: number of classes.
    """
    from nas.model.arch import Architecture, Row

    choices = space.complete(choices)

    def pick(key: str) -> Option:
        return space.decisions[key].option(choices[key])

    backbone: list[Row] = []
    if choices["backbone"] == YOLOV8_BACKBONE:
        for stage in BACKBONE_DOWN_STAGES:
            down = pick(f"backbone.downsample.{stage}")
            backbone.append(Row(-1, 1, down.module, down.row_args(_BACKBONE_WIDTHS[stage], True)))
            if stage in BACKBONE_BLOCK_STAGES:
                block = pick(f"backbone.block.{stage}")
                backbone.append(Row(-1, _BACKBONE_REPEATS[stage], block.module,
                                    block.row_args(_BACKBONE_WIDTHS[stage], True)))
        backbone.append(Row(-1, 1, "SPPF", (1024, 5)))
        feats = (4, 6, 9)
    else:
        timm = pick("backbone")
        backbone.append(Row(-1, 1, timm.module, timm.args))
        backbone += [Row(0, 1, "Index", (i,)) for i in range(3)]
        backbone.append(Row(-1, 1, "SPPF", (1024, 5)))
        feats = (1, 2, 4)
    head = _neck_rows(space, choices, pick, feats, len(backbone), nc)
    scale = space.scale
    max_channels = {"n": 1024, "s": 1024, "m": 768, "l": 512, "x": 512}[scale]
    return Architecture(
        nc=nc,
        backbone=tuple(backbone),
        head=tuple(head),
        scales={scale: (float(choices["depth"]), float(choices["width"]), max_channels)},
        scale=scale,
    )


def _neck_rows(
    space: SearchSpace,
    choices: Mapping[str, Any],
    pick: Any,
    feats: tuple[int, int, int],
    base: int,
    nc: int,
) -> list[Any]:
    from nas.model.arch import Row

    p3, p4, p5 = feats
    if choices["neck"] == "AFPN":
        rows = [Row(feats, 1, "AFPN", (list(_OUT_WIDTHS), *space.afpn_args))]
        rows += [Row(base, 1, "Index", (i,)) for i in range(3)]
        rows.append(Row((base + 1, base + 2, base + 3), 1, "Detect", (nc,)))
        return rows

    def block(stage: str) -> Any:
        opt = pick(f"neck.block.{stage}")
        return Row(-1, 3, opt.module, opt.row_args(_NECK_WIDTHS[stage], False))

    def down(stage: str) -> Any:
        opt = pick(f"neck.downsample.{stage}")
        return Row(-1, 1, opt.module, opt.row_args(_NECK_DOWN_WIDTHS[stage], False))

    up = Row(-1, 1, "nn.Upsample", (None, 2, "nearest"))
    return [
        up, Row((-1, p4), 1, "Concat", (1,)), block("top_down_P4"),       # base + 0..2
        up, Row((-1, p3), 1, "Concat", (1,)), block("out_P3"),            # base + 3..5
        down("P4"), Row((-1, base + 2), 1, "Concat", (1,)), block("out_P4"),  # base + 6..8
        down("P5"), Row((-1, p5), 1, "Concat", (1,)), block("out_P5"),    # base + 9..11
        Row((base + 5, base + 8, base + 11), 1, "Detect", (nc,)),
    ]
