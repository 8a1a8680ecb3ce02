"""The block registry: YAML module names -> block classes, and the channel contracts.

A block class registers itself with ``@register_block("Name")`` and states its channel
contract by implementing ``from_row(row) -> (module, out_channels)``. The model builder calls
only ``create_block``; it has no per-block branches, so adding a block never edits the builder.

Most blocks follow one of two ultralytics contracts, provided as mixins:

- ``ChannelBlock``: YAML args ``[c2, *rest]`` -> ``cls(c1, c2, *rest)``; ``c2`` is scaled by the
  width multiplier; a row with ``repeats > 1`` becomes ``nn.Sequential`` of copies (as
  ultralytics does for modules outside its ``repeat_modules``).
- ``RepeatBlock``: YAML args ``[c2, *rest]`` -> ``cls(c1, c2, n, *rest)``: the block repeats
  its inner units itself (C2f, C3, ...).

Example:
    >>> import torch.nn as nn
    >>> from nas.blocks.registry import ChannelBlock, register_block
    >>> @register_block("MyConv1x1", replace=True)
    ... class MyConv1x1(ChannelBlock, nn.Conv2d):
    ...     def __init__(self, c1: int, c2: int) -> None:
    ...         super().__init__(c1, c2, 1)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.nn as nn

from nas.errors import UserError

__all__ = [
    "BlockError",
    "Channels",
    "ChannelBlock",
    "RepeatBlock",
    "RowContext",
    "Scale",
    "block_names",
    "create_block",
    "get_block",
    "make_divisible",
    "register_block",
    "row_arg_count",
]

# A row's output: one feature map (int channels) or several (a tuple, e.g. a timm backbone).
Channels = int | tuple[int, ...]

_REGISTRY: dict[str, type[nn.Module]] = {}
T = TypeVar("T", bound=type)


class BlockError(UserError, ValueError):
    """A row of a model description cannot be built; the message names the row and the value."""


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x`` (ultralytics' channel rounding)."""
    return int(math.ceil(x / divisor) * divisor)


@dataclass(frozen=True)
class Scale:
    """Compound scaling constants of one model scale: ``[depth, width, max_channels]``."""

    depth: float = 1.0
    width: float = 1.0
    max_channels: int = 1024

    def channels(self, c: int) -> int:
        """Output width of a row that asks for ``c`` channels at scale 1."""
        return make_divisible(min(c, self.max_channels) * self.width, 8)

    def repeats(self, n: int) -> int:
        """Depth-scaled repeat count: ``max(round(n * depth), 1)`` when ``n > 1``."""
        return max(round(n * self.depth), 1) if n > 1 else n


@dataclass(frozen=True)
class RowContext:
    """Everything a block needs to build itself from one ``[from, repeats, module, args]`` row.

    Attributes:
        index: row index in the model (backbone rows first), for error messages.
        module: the module name as written in the YAML.
        ch_in: channels of each input named by ``from``, in order.
        args: the row's YAML args, with the string ``nc`` already replaced by ``nc``.
        repeats: the depth-scaled repeat count.
        scale: the model's scaling constants.
        nc: number of classes.
    """

    index: int
    module: str
    ch_in: tuple[Channels, ...]
    args: tuple[Any, ...]
    repeats: int
    scale: Scale
    nc: int

    @property
    def c1(self) -> int:
        """The single input's channel count (errors if the row has several or a multi-output)."""
        if len(self.ch_in) != 1 or not isinstance(self.ch_in[0], int):
            raise self.error(f"expects one single-tensor input, got input channels {self.ch_in}")
        return self.ch_in[0]

    def arg(self, i: int, name: str, kind: type | tuple[type, ...] = int) -> Any:
        """The ``i``-th arg, checked for presence and type."""
        if i >= len(self.args):
            raise self.error(f"missing argument {i} ({name}); args were {list(self.args)}")
        value = self.args[i]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise self.error(f"argument {i} ({name}) must be {_kind_name(kind)}, got {value!r}")
        return value

    def error(self, message: str) -> BlockError:
        return BlockError(f"row {self.index} ({self.module}): {message}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _positional_after(cls: type, leading: int) -> int | None:
    """Positional parameters of ``cls.__init__`` after the first ``leading`` (None: any)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return max(sum(p.kind in kinds for p in params) - leading, 0)


class ChannelBlock:
    """Contract ``[c2, *rest] -> cls(c1, c2, *rest)``, ``c2`` width-scaled, repeats stacked."""

    @classmethod
    def row_arg_count(cls) -> int | None:
        """How many YAML args a row may give (``c2`` and the constructor's rest)."""
        rest = _positional_after(cls, 2)
        return None if rest is None else 1 + rest

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        c2 = row.scale.channels(row.arg(0, "out_channels"))
        c1 = row.c1
        try:
            mods = [cls(c1 if i == 0 else c2, c2, *row.args[1:]) for i in range(row.repeats)]
        except BlockError:
            raise
        except (TypeError, ValueError) as e:  # wrong arguments for the constructor
            raise row.error(f"bad arguments {list(row.args)}: {e}") from e
        return (mods[0] if len(mods) == 1 else nn.Sequential(*mods)), c2


class RepeatBlock:
    """Contract ``[c2, *rest] -> cls(c1, c2, n, *rest)``: the block repeats its own units."""

    @classmethod
    def row_arg_count(cls) -> int | None:
        """How many YAML args a row may give (``c2`` and the constructor's rest after ``n``)."""
        rest = _positional_after(cls, 3)
        return None if rest is None else 1 + rest

    @classmethod
    def from_row(cls, row: RowContext) -> tuple[nn.Module, Channels]:
        c2 = row.scale.channels(row.arg(0, "out_channels"))
        try:
            return cls(row.c1, c2, row.repeats, *row.args[1:]), c2
        except BlockError:
            raise
        except (TypeError, ValueError) as e:
            raise row.error(f"bad arguments {list(row.args)}: {e}") from e


def register_block(
    *names: str, replace: bool = False
) -> Callable[[T], T]:
    """Class decorator adding a block to the registry under one or more YAML names.

    The class must provide ``from_row(row: RowContext) -> (module, out_channels)``, usually
    through ``ChannelBlock`` or ``RepeatBlock``.

    Raises:
        ValueError: a name is already registered (unless ``replace``), or no name was given.
    """
    if not names:
        raise ValueError("register_block needs at least one name")

    def decorator(cls: T) -> T:
        if not callable(getattr(cls, "from_row", None)):
            raise TypeError(f"{cls.__name__} must define from_row(row) to be registered")
        for name in names:
            if name in _REGISTRY and not replace and _REGISTRY[name] is not cls:
                raise ValueError(
                    f"block name {name!r} is already registered by {_REGISTRY[name].__name__}"
                )
            _REGISTRY[name] = cls
        return cls

    return decorator


def block_names() -> list[str]:
    """All registered YAML module names, sorted."""
    _load_builtin_blocks()
    return sorted(_REGISTRY)


def get_block(name: str) -> type[nn.Module]:
    """The class registered under ``name``; the error lists the valid names."""
    _load_builtin_blocks()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown block {name!r}; registered blocks: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create_block(row: RowContext) -> tuple[nn.Module, Channels]:
    """Build the module of one row through its class's channel contract."""
    try:
        cls = get_block(row.module)
    except KeyError as e:
        raise row.error(str(e.args[0])) from None
    return cls.from_row(row)  # type: ignore[attr-defined]


def row_arg_count(name: str) -> int | None:
    """How many YAML args a row of block ``name`` accepts (None: unknown or unlimited).

    Used to fill a template row with another block of the same channel contract: ``Conv``'s
    ``[c2, k, s]`` become ``[c2]`` for ``ADown``, whose constructor takes only ``c1, c2``.
    """
    counter = getattr(get_block(name), "row_arg_count", None)
    return counter() if callable(counter) else None


def _load_builtin_blocks() -> None:
    """Import the block modules shipped with the project (their decorators fill the registry)."""
    import nas.blocks  # noqa: F401  (nas/blocks/__init__.py imports every block module)

