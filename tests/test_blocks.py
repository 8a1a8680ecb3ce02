"""Every registered block: builds from a row at several widths, forward + backward, no NaN,
every parameter gets a gradient, output shapes as specified and as its channel contract says.

The test is parametrized over ``nas.blocks.block_names()``: a newly registered block fails here
until it has an entry in ``EXAMPLES`` (one small example row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from nas.blocks import block_names
from nas.blocks.registry import Channels, RowContext, Scale, create_block

S = 16  # spatial size of a single-tensor example input (batch 2)
WIDTHS = (0.25, 0.5, 1.0)

# An input: (channels, size) for one tensor, or a tuple of those for a multi-output row.
Input = tuple[int, int] | tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Example:
    """One example row: args, its inputs, and the expected output shape(s) ``(C, H)``."""

    args: tuple[Any, ...]
    inputs: tuple[Input, ...]
    outputs: tuple[tuple[int, int], ...]
    repeats: int = 1


def _level3(w: Callable[[int], int], chans: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    """Three pyramid levels at sizes S, S/2, S/4."""
    return tuple((w(c), S >> i) for i, c in enumerate(chans))


# name -> (width function -> Example). ``w`` maps a scale-1 width to the scaled one.
EXAMPLES: dict[str, Callable[[Callable[[int], int]], Example]] = {
    "Conv": lambda w: Example((64, 3, 2), ((w(32), S),), ((w(64), S // 2),)),
    "DWConv": lambda w: Example((64, 3, 1), ((w(64), S),), ((w(64), S),)),
    "Concat": lambda w: Example((1,), ((w(32), S), (w(64), S)), ((w(32) + w(64), S),)),
    "Upsample": lambda w: Example((None, 2, "nearest"), ((w(32), S),), ((w(32), 2 * S),)),
    "nn.Upsample": lambda w: Example((None, 2, "nearest"), ((w(32), S),), ((w(32), 2 * S),)),
    "Bottleneck": lambda w: Example((64,), ((w(64), S),), ((w(64), S),)),
    "C2f": lambda w: Example((64, True), ((w(32), S),), ((w(64), S),), repeats=2),
    "C3": lambda w: Example((64,), ((w(32), S),), ((w(64), S),), repeats=2),
    "SPPF": lambda w: Example((64, 5), ((w(64), S),), ((w(64), S),)),
    "Detect": lambda w: Example(
        (3,), _level3(w, (32, 64, 128)), tuple((67, S >> i) for i in range(3))
    ),
    "GhostConv": lambda w: Example((64, 3, 2), ((w(32), S),), ((w(64), S // 2),)),
    "GhostBottleneck": lambda w: Example((64, 3, 2), ((w(32), S),), ((w(64), S // 2),)),
    "C3Ghost": lambda w: Example((64,), ((w(32), S),), ((w(64), S),), repeats=2),
    "C2fGhost": lambda w: Example((64, True), ((w(32), S),), ((w(64), S),), repeats=2),
    "PConv": lambda w: Example((64,), ((w(64), S),), ((w(64), S),)),
    "FasterNetBlock": lambda w: Example((64,), ((w(64), S),), ((w(64), S),), repeats=2),
    "CSPPC": lambda w: Example((64, True), ((w(32), S),), ((w(64), S),), repeats=2),
    "C2fFaster": lambda w: Example((64,), ((w(32), S),), ((w(64), S),), repeats=2),
    "ADown": lambda w: Example((64,), ((w(32), S),), ((w(64), S // 2),)),
    "Down_wt": lambda w: Example((64,), ((w(32), S),), ((w(64), S // 2),)),
    "AFPN": lambda w: Example((64, 1, 4), _level3(w, (64, 128, 256)), _level3(w, (64, 64, 64))),
    "TimmBackbone": lambda w: Example(
        ("mobilenetv3_small_100",), ((3, 64),), ((24, 8), (48, 4), (576, 2))
    ),
    "Index": lambda w: Example((1,), (_level3(w, (32, 64, 128)),), ((w(64), S // 2),)),
}


def _channels_of(spec: Input) -> Channels:
    if isinstance(spec[0], tuple):
        return tuple(c for c, _ in spec)  # type: ignore[misc]
    return spec[0]  # type: ignore[return-value]


def _tensor_of(spec: Input, gen: torch.Generator) -> torch.Tensor | list[torch.Tensor]:
    if isinstance(spec[0], tuple):
        return [torch.randn(2, c, s, s, generator=gen) for c, s in spec]  # type: ignore[misc]
    c, s = spec
    return torch.randn(2, c, s, s, generator=gen)  # type: ignore[arg-type]


def _as_list(y: Any) -> list[torch.Tensor]:
    return list(y) if isinstance(y, list | tuple) else [y]


def test_every_example_names_a_registered_block() -> None:
    stale = sorted(set(EXAMPLES) - set(block_names()))
    assert not stale, f"EXAMPLES has entries for unregistered blocks: {stale}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", block_names())
def test_block_builds_runs_and_trains(name: str, width: float) -> None:
    if name not in EXAMPLES:
        pytest.fail(
            f"registered block {name!r} has no example row: add one to EXAMPLES in "
            "tests/test_blocks.py"
        )
    scale = Scale(1.0, width, 1024)
    ex = EXAMPLES[name](scale.channels)
    row = RowContext(
        index=5,
        module=name,
        ch_in=tuple(_channels_of(s) for s in ex.inputs),
        args=ex.args,
        repeats=ex.repeats,
        scale=scale,
        nc=3,
    )
    module, channels = create_block(row)
    module.train()
    gen = torch.Generator().manual_seed(0)
    feeds = [_tensor_of(s, gen) for s in ex.inputs]
    for t in (t for f in feeds for t in _as_list(f)):
        t.requires_grad_(True)
    out = module(feeds if len(feeds) > 1 else feeds[0])
    outs = _as_list(out)

    assert [(y.shape[0], y.shape[1], y.shape[2], y.shape[3]) for y in outs] == [
        (2, c, s, s) for c, s in ex.outputs
    ]
    # the channel contract agrees with the tensors (Detect: one width for every level)
    expected = channels if isinstance(channels, tuple) else (channels,) * len(outs)
    assert tuple(y.shape[1] for y in outs) == expected
    assert all(torch.isfinite(y).all() for y in outs)

    loss = sum((y.float() ** 2).mean() for y in outs)
    loss.backward()  # type: ignore[union-attr]
    assert any(t.grad is not None for f in feeds for t in _as_list(f)), "no gradient reaches x"
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"{name}: parameters without gradient: {missing}"
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]  # type: ignore[arg-type]
    assert not bad, f"{name}: non-finite gradients in {bad}"


@pytest.mark.parametrize("name", ["Concat", "Upsample", "nn.Upsample", "Index"])
def test_wiring_rows_have_no_parameters(name: str) -> None:
    ex = EXAMPLES[name](Scale().channels)
    row = RowContext(0, name, tuple(_channels_of(s) for s in ex.inputs), ex.args, 1, Scale(), 3)
    module, _ = create_block(row)
    assert sum(p.numel() for p in module.parameters()) == 0
