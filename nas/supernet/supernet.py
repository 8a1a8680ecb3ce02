"""``SuperNet``: every candidate of a search space in one module, one path run at a time.

Each branch of the plan (``nas.supernet.plan``) is the ``Detector`` of its baseline choices in
which every row a decision controls is a ``ChoiceModule`` holding one module per option, built
through the block registry from the row's own context (input channels, scale, repeats), so an
option's weights have exactly the shapes of the standalone build's row. Branches share the
module objects of their common leading rows (PAN and AFPN over one backbone per width).

Example:
    >>> import torch
    >>> from nas.search.space import parse_space
    >>> from nas.supernet.plan import plan_supernet
    >>> space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC"]}}}, source="<inline>")
    >>> net = SuperNet(plan_supernet(space, nc=2))
    >>> _ = net.set_path({"backbone.block.P3": "CSPPC"})
    >>> [m.shape[-1] for m in net(torch.zeros(1, 3, 64, 64))]
    [8, 4, 2]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nas.blocks.registry import RowContext, create_block
from nas.model.arch import Row, absolute_inputs
from nas.model.detector import Detector, LayerInfo, build_model
from nas.supernet.choice import ChoiceModule
from nas.supernet.plan import Branch, SupernetError, SupernetPlan

__all__ = ["SuperNet", "unique_state"]


class SuperNet(nn.Module):
    """The weight-sharing supernet of a plan.

    Attributes:
        plan: The plan it was built from.
        branches: One ``Detector`` per branch (``b0``, ``b1``, ... in plan order).
        active: Index of the branch ``forward`` runs (set by ``set_path``).
    """

    def __init__(self, plan: SupernetPlan) -> None:
        super().__init__()
        self.plan = plan
        self.branches = nn.ModuleDict()
        built: list[Detector] = []
        for n, branch in enumerate(plan.branches):
            net = build_model(branch.arch)
            table = net.layer_table()
            for key, index in branch.rows.items():
                decision = plan.space.decisions[key]
                modules = [_build_row(net, table, index, row) for row in branch.options[key]]
                net.layers[index] = ChoiceModule(key, decision.names, modules)
            _share_prefix(net, branch, built, plan.branches)
            built.append(net)
            self.branches[f"b{n}"] = net
        strides = {tuple(net.stride.tolist()) for net in built}
        if len(strides) != 1:
            raise SupernetError(f"supernet branches have different strides {sorted(strides)}")
        self.active = 0

    def branch(self, index: int | None = None) -> Detector:
        """The ``Detector`` of branch ``index`` (default: the active one)."""
        return self.branches[f"b{self.active if index is None else index}"]  # type: ignore[return-value]

    def set_path(self, choices: Mapping[str, Any]) -> Branch:
        """Route ``forward`` through one candidate; returns its branch.

        Args:
            choices: The candidate (partial choices are completed with the defaults).
        """
        complete = self.plan.space.complete(choices)
        self.active = self.plan.branch_index(complete)
        branch = self.plan.branches[self.active]
        net = self.branch()
        for key, index in branch.rows.items():
            layer = net.layers[index]
            assert isinstance(layer, ChoiceModule)
            layer.select(complete[key])
        return branch

    def forward(self, x: torch.Tensor) -> Any:
        return self.branch()(x)

    @property
    def nc(self) -> int:
        return self.branch(0).nc

    @property
    def stride(self) -> torch.Tensor:
        return self.branch(0).stride

    @property
    def head(self) -> nn.Module:
        return self.branch().head


def unique_state(module: nn.Module) -> list[str]:
    """The state-dict keys of the floating-point tensors, one key per shared tensor."""
    seen: set[tuple[int, int]] = set()
    keys = []
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            continue
        ident = (value.data_ptr(), value.numel())
        if value.numel() and ident in seen:
            continue
        seen.add(ident)
        keys.append(key)
    return keys


def _build_row(net: Detector, table: list[LayerInfo], index: int, row: Row) -> nn.Module:
    """The module of ``row`` at ``index`` of ``net``, built as the ``Detector`` builds rows."""
    arch = net.arch
    scale = arch.resolved_scale()
    ch_in = tuple(net.in_channels if j == -1 else table[j].channels
                  for j in absolute_inputs(row, index))  # fmt: skip
    args = tuple(arch.nc if a == "nc" else a for a in row.args)
    context = RowContext(index, row.module, ch_in, args, scale.repeats(row.repeats), scale,
                         arch.nc)  # fmt: skip
    module, channels = create_block(context)
    if channels != table[index].channels:
        raise SupernetError(
            f"row {index}: option {row.module} gives {channels} channels where the row has "
            f"{table[index].channels}; the options of one decision need the same output width"
        )
    return module


def _share_prefix(
    net: Detector, branch: Branch, built: list[Detector], branches: tuple[Branch, ...]
) -> None:
    """Replace ``net``'s leading rows by those of the earlier branch with the longest match."""
    best, source = 0, None
    for other, other_net in zip(branches, built, strict=False):
        n = branch.shared_prefix(other)
        if n > best:
            best, source = n, other_net
    if source is None:
        return
    for i in range(min(best, len(net.layers) - 1)):  # never the Detect head
        net.layers[i] = source.layers[i]
