"""Choices -> ``Architecture``: the template's rows with the chosen blocks substituted.

The wiring is data: the rows of ``models/yolov8.yaml`` (``nas.search.template``). A backbone
and a neck are each one entry of a small registry (``BACKBONES``, ``NECKS``):

- backbone ``yolov8``: the template's backbone rows, each slot's row replaced by its choice;
  ``timm:<model>``: a ``TimmBackbone`` row, three ``Index`` rows and the template's SPPF;
- neck ``PAN``: the template's head rows, slots replaced, ``from`` indices remapped onto the
  backbone's outputs; ``AFPN``: one multi-output ``AFPN`` row, three ``Index`` rows and Detect.

The baseline choices give exactly ultralytics' ``yolov8<scale>.yaml`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nas.search.template import SLOTS, Slot, template_arch

if TYPE_CHECKING:
    from nas.model.arch import Architecture, Row
    from nas.search.space import Option, SearchSpace

__all__ = ["BACKBONES", "NECKS", "row_for", "to_arch"]

Feats = tuple[int, int, int]  # row indices of the P3, P4, P5 outputs


def to_arch(space: SearchSpace, choices: Mapping[str, Any], nc: int) -> Architecture:
    """The ``Architecture`` of one candidate.

    Args:
        space: the search space.
        choices: active choices as returned by ``sample`` or ``complete``.
        nc: number of classes.
    """
    from nas.model.arch import Architecture

    choices = space.complete(choices)
    picks = {key: space.decisions[key].option(value) for key, value in choices.items()}
    backbone_opt = picks["backbone"]
    backbone, feats = BACKBONES[backbone_opt.module or "yolov8"](backbone_opt, picks)
    head = NECKS[choices["neck"]](space, picks, feats, len(backbone))
    tpl = template_arch()
    max_channels = tpl.scales[space.scale][2]
    return Architecture(
        nc=nc,
        backbone=tuple(backbone),
        head=tuple(head),
        scales={space.scale: (float(choices["depth"]), float(choices["width"]), max_channels)},
        scale=space.scale,
    )


def row_for(slot: Slot, option: Option) -> Row:
    """The template row of ``slot`` with ``option``'s block (same inputs and repeats)."""
    from nas.blocks.registry import row_arg_count
    from nas.model.arch import Row

    tpl = slot.template_row
    if option.args is not None:
        shortcut = len(slot.template_args) > 1 and slot.template_args[1] is True
        args = option.row_args(slot.width, shortcut)
    else:
        n = row_arg_count(option.module)
        args = slot.template_args if n is None else slot.template_args[:n]
    return Row(tpl.frm, tpl.repeats, option.module, tuple(args))


def _template_feats() -> Feats:
    """The template backbone rows its head reads (P3, P4 and the last row, P5 after SPPF)."""
    from nas.model.arch import absolute_inputs

    tpl = template_arch()
    n = len(tpl.backbone)
    used = {a for i, row in enumerate(tpl.head, start=n) for a in absolute_inputs(row, i)}
    feats = tuple(sorted(a for a in used if a < n - 1)) + (n - 1,)
    if len(feats) != 3:
        raise ValueError(f"the template's head reads backbone rows {feats}, expected 3")
    return feats  # type: ignore[return-value]


def _substituted(rows: Any, start: int, picks: Mapping[str, Option]) -> list[Row]:
    """Template rows ``start..`` with every active slot among them replaced by its pick."""
    by_row = {s.row: s for s in SLOTS if s.key in picks}
    return [
        row_for(by_row[i], picks[by_row[i].key]) if i in by_row else row
        for i, row in enumerate(rows, start=start)
    ]


def _yolov8_backbone(option: Option, picks: Mapping[str, Option]) -> tuple[list[Row], Feats]:
    return _substituted(template_arch().backbone, 0, picks), _template_feats()


def _timm_backbone(option: Option, picks: Mapping[str, Option]) -> tuple[list[Row], Feats]:
    from nas.model.arch import Row

    sppf = template_arch().backbone[-1]
    rows = [Row(-1, 1, option.module, option.args or ())]
    rows += [Row(0, 1, "Index", (i,)) for i in range(3)]
    rows.append(sppf)
    return rows, (1, 2, len(rows) - 1)


def _pan_neck(
    space: SearchSpace, picks: Mapping[str, Option], feats: Feats, base: int
) -> list[Row]:
    """The template's head rows with ``from`` remapped onto ``feats`` and this backbone."""
    from dataclasses import replace

    tpl = template_arch()
    n = len(tpl.backbone)
    mapping = dict(zip(_template_feats(), feats, strict=True))
    rows = []
    for row in _substituted(tpl.head, n, picks):
        inputs = tuple(
            f if f < 0 else (mapping[f] if f < n else f - n + base) for f in row.inputs
        )
        rows.append(replace(row, frm=inputs if isinstance(row.frm, tuple) else inputs[0]))
    return rows


def _afpn_neck(
    space: SearchSpace, picks: Mapping[str, Option], feats: Feats, base: int
) -> list[Row]:
    from nas.model.arch import Row

    tpl = template_arch()
    detect = tpl.head[-1]
    widths = [int(tpl.rows[i].args[0]) for i in detect.inputs]  # P3, P4, P5 output widths
    rows = [Row(feats, 1, "AFPN", (widths, *space.afpn_args))]
    rows += [Row(base, 1, "Index", (i,)) for i in range(3)]
    rows.append(Row((base + 1, base + 2, base + 3), 1, "Detect", ("nc",)))
    return rows


BACKBONES: dict[str, Callable[..., tuple[list[Any], Feats]]] = {
    "yolov8": _yolov8_backbone,
    "TimmBackbone": _timm_backbone,
}
NECKS: dict[str, Callable[..., list[Any]]] = {"PAN": _pan_neck, "AFPN": _afpn_neck}
