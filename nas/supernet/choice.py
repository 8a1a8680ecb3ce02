"""``ChoiceModule``: one row of the supernet holding every option of a decision.

Every option is built from the same row context (input channels, scale, repeats) through the
block registry, so all options share the row's channel contract; ``forward`` runs only the
active option, so the others are neither called nor given gradients.

Example:
    >>> import torch
    >>> from torch import nn
    >>> choice = ChoiceModule("k", ("a", "b"), [nn.Identity(), nn.ReLU()])
    >>> choice.active = 1
    >>> choice(torch.tensor([-1.0])).tolist()
    [0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

__all__ = ["ChoiceModule"]


class ChoiceModule(nn.Module):
    """Routes its input to one of several modules with the same channel contract.

    Args:
        key: The decision key (``backbone.block.P3``), for messages.
        names: Option names, in the decision's order.
        options: One module per option.
    """

    def __init__(self, key: str, names: Sequence[Any], options: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(names) != len(options) or not options:
            raise ValueError(f"{key}: {len(names)} option names for {len(options)} modules")
        self.key = key
        self.names = tuple(names)
        self.options = nn.ModuleList(options)
        self.active = 0

    def select(self, name: Any) -> None:
        """Make option ``name`` the one ``forward`` runs."""
        self.active = self.index(name)

    def index(self, name: Any) -> int:
        """Position of option ``name``; the error lists the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.key}: no option {name!r}; valid: {list(self.names)}") from None

    def option(self, name: Any) -> nn.Module:
        """The module of option ``name``."""
        return self.options[self.index(name)]

    def forward(self, x: Any) -> Any:
        return self.options[self.active](x)

    def extra_repr(self) -> str:
        return f"key={self.key!r}, active={self.names[self.active]!r}"
