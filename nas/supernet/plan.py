"""Which rows of the YOLOv8 wiring each decision replaces, found from the wiring itself.

A supernet needs, for every decision, the row its options replace. The wiring is declared once
(``nas.search.wiring.to_arch``), so the plan is read off it instead of copied: each option is
applied alone to a baseline and the rows that change are compared.

- A **row decision** changes one row, at the same index, for every option (the CSP block of a
  stage, a downsampling row): it becomes a ``ChoiceModule`` at that row.
- A **structural decision** changes the scale or the number of rows (the width multiplier, the
  neck type): each combination of structural options is a **branch**, one ``Detector`` of its
  own; branches share the modules of their common leading rows (PAN and AFPN share the
  backbone of one width).

Example:
    >>> from nas.search.space import parse_space
    >>> space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC"]}},
    ...                      "width": [0.125, 0.25]}, source="<inline>")
    >>> plan = plan_supernet(space, nc=2)
    >>> plan.structural, [b.label for b in plan.branches]
    (('width',), ['width=0.125', 'width=0.25'])
    >>> plan.branches[0].rows
    {'backbone.block.P3': 4}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.errors import UserError
from nas.search.wiring import to_arch

if TYPE_CHECKING:
    from nas.model.arch import Architecture, Row
    from nas.search.space import SearchSpace

__all__ = ["Branch", "SupernetError", "SupernetPlan", "changed_rows", "plan_supernet"]


class SupernetError(UserError, ValueError):
    """A search space a supernet cannot represent, or a checkpoint of another supernet."""


@dataclass(frozen=True)
class Branch:
    """One combination of structural choices: a ``Detector`` with choice rows.

    Attributes:
        label: ``width=0.25,neck=PAN`` (the structural choices).
        structural: The structural choices of this branch.
        choices: Complete baseline choices of this branch (what its ``Detector`` is built of).
        arch: ``to_arch`` of ``choices``.
        rows: Row decision key -> the row index its options replace.
        options: Row decision key -> one ``Row`` per option, in the decision's order.
    """

    label: str
    structural: dict[str, Any]
    choices: dict[str, Any]
    arch: Architecture
    rows: dict[str, int]
    options: dict[str, tuple[Row, ...]]

    def shared_prefix(self, other: Branch) -> int:
        """How many leading rows are identical in both branches (same rows, scale, decisions)."""
        if self.arch.scales != other.arch.scales or self.arch.nc != other.arch.nc:
            return 0
        mine = {i: (k, self.options[k]) for k, i in self.rows.items()}
        theirs = {i: (k, other.options[k]) for k, i in other.rows.items()}
        n = 0
        for i, (a, b) in enumerate(zip(self.arch.rows, other.arch.rows, strict=False)):
            if a != b or mine.get(i) != theirs.get(i):
                break
            n = i + 1
        return n


@dataclass(frozen=True)
class SupernetPlan:
    """The supernet of a search space: its structural decisions, row decisions and branches."""

    space: SearchSpace
    nc: int
    structural: tuple[str, ...]
    branches: tuple[Branch, ...]

    def branch_index(self, choices: Mapping[str, Any]) -> int:
        """The branch of a candidate (``choices`` complete, as ``space.complete`` returns)."""
        for n, branch in enumerate(self.branches):
            if all(choices.get(k) == v for k, v in branch.structural.items()):
                return n
        raise SupernetError(f"no supernet branch for choices {dict(choices)}")

    @property
    def row_decisions(self) -> tuple[str, ...]:
        """Every decision that is a choice row in some branch."""
        keys = dict.fromkeys(k for b in self.branches for k in b.rows)
        return tuple(keys)


def changed_rows(a: Architecture, b: Architecture) -> list[int] | None:
    """Indices of the rows that differ, or None when the scale or the row count differs."""
    if a.scales != b.scales or a.scale != b.scale or len(a.rows) != len(b.rows):
        return None
    return [i for i, (x, y) in enumerate(zip(a.rows, b.rows, strict=True)) if x != y]


def plan_supernet(space: SearchSpace, nc: int) -> SupernetPlan:
    """Read the supernet's structure off the space's wiring (see the module docstring).

    Raises:
        SupernetError: an option changes several rows without changing the row count (no
            choice row can hold it).
    """
    base = space.baseline_choices()
    base_arch = to_arch(space, base, nc)
    structural = tuple(
        key for key, decision in space.decisions.items()
        if len(decision.options) > 1 and _is_structural(space, base, base_arch, key, nc)
    )
    branches: dict[str, Branch] = {}
    combos = itertools.product(*(space.decisions[k].names for k in structural))
    for combo in combos:
        choices = space.complete({**base, **dict(zip(structural, combo, strict=True))})
        picked = {k: choices[k] for k in structural if k in choices}
        label = ",".join(f"{k}={v}" for k, v in picked.items()) or "all"
        if label not in branches:
            branches[label] = _branch(space, choices, picked, label, structural, nc)
    return SupernetPlan(space, nc, structural, tuple(branches.values()))


def _is_structural(
    space: SearchSpace, base: dict[str, Any], base_arch: Architecture, key: str, nc: int
) -> bool:
    for name in space.decisions[key].names:
        choices = space.complete({**base, key: name})
        if key not in choices:
            return False  # inactive in the baseline: a row decision of some other branch
        if changed_rows(base_arch, to_arch(space, choices, nc)) is None:
            return True
    return False


def _branch(
    space: SearchSpace,
    choices: dict[str, Any],
    structural: dict[str, Any],
    label: str,
    structural_keys: tuple[str, ...],
    nc: int,
) -> Branch:
    arch = to_arch(space, choices, nc)
    rows: dict[str, int] = {}
    options: dict[str, tuple[Row, ...]] = {}
    for key, decision in space.decisions.items():
        if key in structural_keys or key not in choices or len(decision.options) < 2:
            continue
        found: set[int] = set()
        variants = []
        for name in decision.names:
            variant = to_arch(space, {**choices, key: name}, nc)
            diff = changed_rows(arch, variant)
            if diff is None or len(diff) > 1:
                what = "the scale or row count" if diff is None else f"rows {diff}"
                raise SupernetError(
                    f"{space.source}: {key}: option {name!r} changes {what} of branch {label}; "
                    "a supernet choice row must replace exactly one row"
                )
            found.update(diff)
            variants.append(variant)
        if len(found) > 1:
            raise SupernetError(f"{space.source}: {key}: its options replace different rows "
                                f"{sorted(found)} of branch {label}")  # fmt: skip
        if found:
            (index,) = found
            rows[key] = index
            options[key] = tuple(v.rows[index] for v in variants)
    return Branch(label, structural, choices, arch, rows, options)
