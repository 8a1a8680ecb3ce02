"""AFPN neck: shapes at strides 8/16/32, parameter count against the formula, no dead layers,
ASFF's convex fusion, the row contract with ``Index``, and a whole model from its YAML."""

from __future__ import annotations

import pytest
import torch

from nas.blocks.afpn import AFPN, ASFF
from nas.blocks.registry import BlockError, RowContext, Scale, create_block


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv(c1: int, c2: int, k: int = 1) -> int:
    """Params of Conv (no bias) + BatchNorm."""
    return k * k * c1 * c2 + 2 * c2


def asff(c: int, levels: int) -> int:
    return levels * conv(c, 8) + (8 * levels * levels + levels) + conv(c, c, 3)


def afpn_formula(ins: tuple[int, ...], outs: tuple[int, ...], blocks: int, comp: int) -> int:
    h = [c // comp for c in ins]
    total = sum(conv(c, x) + conv(x, x) for c, x in zip(ins, h, strict=True))  # compress
    total += sum(conv(x, o) for x, o in zip(h, outs, strict=True))  # expand
    for levels in (2, 3):  # stage 1 over P3, P4; stage 2 over P3, P4, P5
        for dst in range(levels):
            total += asff(h[dst], levels) + blocks * 2 * conv(h[dst], h[dst], 3)
            for src in range(levels):
                if src < dst:  # to a coarser level: Conv with kernel = stride = 2^(dst - src)
                    total += conv(h[src], h[dst], 2 ** (dst - src))
                elif src > dst:  # to a finer level: 1x1 Conv, then upsampling
                    total += conv(h[src], h[dst])
    return total


def pyramid(chans: tuple[int, ...], size: int = 32, batch: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(batch, c, size >> i, size >> i, generator=gen) for i, c in enumerate(chans)
    ]


@pytest.mark.parametrize(
    "ins,outs,blocks,comp",
    [
        ((64, 128, 256), (64, 64, 64), 4, 4),  # yolov8n-afpn's neck
        ((64, 128, 256), (128, 128, 128), 4, 4),
        ((32, 64, 128), (16, 32, 48), 3, 8),
        ((16, 32, 64), (8, 8, 8), 0, 2),
    ],
)
def test_params_match_formula(
    ins: tuple[int, ...], outs: tuple[int, ...], blocks: int, comp: int
) -> None:
    assert n_params(AFPN(ins, outs, blocks, comp)) == afpn_formula(ins, outs, blocks, comp)


def test_n_scale_figure() -> None:
    # n-scale inputs (P3, P4, P5) = (64, 128, 256), outputs 128 wide, the official defaults;
    # the public AFPN port builds 30,656 more parameters it never calls
    assert n_params(AFPN((64, 128, 256), (128, 128, 128))) == 621_717


def test_shapes_at_strides_8_16_32() -> None:
    neck = AFPN((16, 32, 64), (24, 40, 56), blocks_per_stage=1)
    ys = neck(pyramid((16, 32, 64), size=32))
    assert [tuple(y.shape) for y in ys] == [(2, 24, 32, 32), (2, 40, 16, 16), (2, 56, 8, 8)]
    ys = neck.eval()(pyramid((16, 32, 64), size=40, batch=1))  # 320 px image at P3 = 40
    assert [tuple(y.shape) for y in ys] == [(1, 24, 40, 40), (1, 40, 20, 20), (1, 56, 10, 10)]
    # an 80 px image: P3, P4, P5 = 10, 5, 3 (ceil sizes of stride-2 convolutions)
    xs = [torch.randn(1, c, s, s) for c, s in zip((16, 32, 64), (10, 5, 3), strict=True)]
    assert [tuple(y.shape[-2:]) for y in neck(xs)] == [(10, 10), (5, 5), (3, 3)]


def test_every_parameter_is_used() -> None:
    neck = AFPN((16, 32, 64), (16, 16, 16), blocks_per_stage=2, compression=2)
    sum(y.square().mean() for y in neck(pyramid((16, 32, 64), size=16))).backward()  # type: ignore[union-attr]
    unused = [n for n, p in neck.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not unused


def test_asff_is_a_convex_combination() -> None:
    torch.manual_seed(0)
    fuse = ASFF(8, 3).eval()
    x = torch.randn(1, 8, 6, 6)
    # identical inputs: the softmax weights sum to one, so the fusion returns the input
    assert torch.allclose(fuse([x, x, x]), fuse.conv(x), atol=1e-6)
    y = [torch.randn(1, 8, 6, 6) for _ in range(3)]
    votes = [m(t) for m, t in zip(fuse.weight_convs, y, strict=True)]
    logits = fuse.weight_levels(torch.cat(votes, 1))
    w = logits.softmax(1)
    expected = fuse.conv(sum(w[:, i : i + 1] * y[i] for i in range(3)))
    assert torch.allclose(fuse(y), expected, atol=1e-6)


def _row(module: str, ch_in: tuple, args: tuple) -> RowContext:
    return RowContext(10, module, ch_in, args, 1, Scale(0.33, 0.25, 1024), 80)


def test_row_contract_and_index() -> None:
    neck, ch = create_block(_row("AFPN", (64, 128, 256), (256,)))  # defaults 4 blocks, /4
    assert ch == (64, 64, 64) and isinstance(neck, AFPN) and neck.hidden == (16, 32, 64)
    _, ch = create_block(_row("AFPN", (64, 128, 256), ([256, 512, 1024], 3, 8)))
    assert ch == (64, 128, 256)
    _, ch = create_block(_row("AFPN", ((40, 80, 160),), (256, 1)))  # one 3-output row (timm)
    assert ch == (64, 64, 64)
    pick, c = create_block(_row("Index", ((64, 128, 256),), (2,)))
    assert c == 256
    xs = pyramid((64, 128, 256))
    assert pick(xs) is xs[2]


@pytest.mark.parametrize(
    "module,ch_in,args,message",
    [
        ("AFPN", (64, 128), (256,), "three single-tensor inputs"),
        ("AFPN", (64, 128, 256), ([256, 512],), "list of 3 ints"),
        ("AFPN", (64, 128, 256), (256, 4, 128), "leaves no channels"),
        ("AFPN", (64, 128, 256), (256, 4, 4, 1), "takes \\[out_channels"),
        ("Index", (64,), (0,), "multi-output row"),
        ("Index", ((64, 128, 256),), (3,), "valid 0..2"),
    ],
)
def test_row_errors(module: str, ch_in: tuple, args: tuple, message: str) -> None:
    with pytest.raises(BlockError, match=f"row 10 \\({module}\\).*{message}"):
        create_block(_row(module, ch_in, args))


@pytest.mark.slow
def test_yolov8n_afpn_model() -> None:
    model_mod = pytest.importorskip("nas.model")
    model = model_mod.build_model("yolov8n-afpn.yaml", nc=80)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    backbone = 1_272_656  # yolov8n layers 0..9
    detect = 565_888  # Detect(nc=80) over three 64-wide levels, DFL's 16 frozen weights included
    neck = afpn_formula((64, 128, 256), (64, 64, 64), 4, 4)
    assert model_mod.count_params(model) == backbone + neck + detect == 2_452_709
    maps = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 144, 8, 8), (1, 144, 4, 4), (1, 144, 2, 2)]
    arch = model_mod.load_arch(model_mod.dump_arch(model.arch))
    assert arch == model.arch
