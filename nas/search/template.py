"""The YOLOv8 template a search space fills: its decision points, read from ``yolov8.yaml``.

``SLOTS`` is the one declaration of the decision points: each names its Optuna key and the row
of ``models/yolov8.yaml`` it replaces. Everything else about a slot (its default block, its
width, repeats and the args a block gets there) is read from that row, so a new decision point
is one line here. The space parser validates against ``SLOTS`` and the wiring
(``nas.search.wiring``) substitutes the chosen blocks into the template's rows.

A slot's key is ``<section>.<role>.<stage>``: ``section`` is the part of the wiring the slot
lives in (``backbone``, ``neck``), which exists only when that part is the template's own
(``backbone: yolov8``, ``neck: PAN``; ``GATES``); ``role`` is ``block`` (a CSP stage) or
``downsample`` (a stride-2 row).

Example:
    >>> from nas.search.template import slot
    >>> s = slot("backbone.block.P3")
    >>> (s.row, s.default, s.width, s.repeats)
    (4, 'C2f', 256, 6)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.model.arch import Architecture, Row

__all__ = [
    "GATES",
    "ROLES",
    "SLOTS",
    "TEMPLATE_MODEL",
    "Slot",
    "slot",
    "slots_of",
    "template_arch",
]

TEMPLATE_MODEL = "yolov8.yaml"
ROLES = ("block", "downsample")
# section -> (the decision that selects the section's wiring, the value that is the template)
GATES = {"backbone": ("backbone", "yolov8"), "neck": ("neck", "PAN")}


@dataclass(frozen=True)
class Slot:
    """A decision point: an Optuna key and the template row it replaces."""

    key: str
    row: int

    @property
    def section(self) -> str:
        return self.key.split(".")[0]

    @property
    def role(self) -> str:
        return self.key.split(".")[1]

    @property
    def stage(self) -> str:
        return self.key.split(".")[2]

    @property
    def template_row(self) -> Row:
        return template_arch().rows[self.row]

    @property
    def default(self) -> str:
        """The template's block at this row (YOLOv8's choice)."""
        return self.template_row.module

    @property
    def width(self) -> int:
        """The row's output channels at scale 1 (its first arg)."""
        return int(self.template_row.args[0])

    @property
    def repeats(self) -> int:
        return int(self.template_row.repeats)

    @property
    def template_args(self) -> tuple[Any, ...]:
        return tuple(self.template_row.args)


# Sampling order: backbone stages, backbone downsampling, then the PAN neck.
SLOTS: tuple[Slot, ...] = (
    Slot("backbone.block.P2", 2),
    Slot("backbone.block.P3", 4),
    Slot("backbone.block.P4", 6),
    Slot("backbone.block.P5", 8),
    Slot("backbone.downsample.P1", 0),
    Slot("backbone.downsample.P2", 1),
    Slot("backbone.downsample.P3", 3),
    Slot("backbone.downsample.P4", 5),
    Slot("backbone.downsample.P5", 7),
    Slot("neck.block.top_down_P4", 12),
    Slot("neck.block.out_P3", 15),
    Slot("neck.block.out_P4", 18),
    Slot("neck.block.out_P5", 21),
    Slot("neck.downsample.P4", 16),
    Slot("neck.downsample.P5", 19),
)
_BY_KEY = {s.key: s for s in SLOTS}


def slot(key: str) -> Slot:
    """The slot of an Optuna key (KeyError names the valid keys)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no decision point {key!r}; valid: {list(_BY_KEY)}") from None


def slots_of(section: str, role: str) -> tuple[Slot, ...]:
    """The slots of one section and role, in declaration order."""
    return tuple(s for s in SLOTS if s.section == section and s.role == role)


@functools.cache
def template_arch() -> Architecture:
    """``models/yolov8.yaml`` (all scales; rows are scale-independent)."""
    from nas.model.arch import load_arch

    return load_arch(TEMPLATE_MODEL)
