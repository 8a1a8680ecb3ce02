"""Ghost, PConv/CSPPC/FasterNet and downsampling blocks: exact parameter counts (the
papers' formulas and n-scale check figures), forward math against ultralytics' originals and an
independent Haar DWT, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.csp import Bottleneck, C2f
from nas.blocks.downsample import ADown, Down_wt, haar_dwt
from nas.blocks.ghost import C2fGhost, C3Ghost, GhostBottleneck, GhostConv
from nas.blocks.pconv import CSPPC, C2fFaster, FasterNetBlock, PConv
from nas.blocks.registry import BlockError, RowContext, Scale, create_block


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---- parameter counts -------------------------------------------------------------------------


def test_n_scale_check_figures() -> None:
    # the formulas: layer 6 (128 -> 128, n=2) and layer 3 (32 -> 64, stride 2) at n-scale
    assert n_params(C2f(128, 128, 2, True)) == 197_632
    assert n_params(CSPPC(128, 128, 2, True)) == 58_880
    assert n_params(C2fGhost(128, 128, 2, True)) == 56_544
    assert n_params(ADown(32, 64)) == 5_248
    assert n_params(GhostConv(32, 64, 3, 2)) == 10_144
    assert n_params(Down_wt(32, 64)) == 8_384


@pytest.mark.parametrize("c1,c2,k", [(16, 32, 1), (32, 64, 3), (24, 48, 3), (64, 32, 5)])
def test_ghostconv_formula(c1: int, c2: int, k: int) -> None:
    c_ = c2 // 2
    assert n_params(GhostConv(c1, c2, k, 2)) == k * k * c1 * c_ + 29 * c_


@pytest.mark.parametrize("c1,c2,n", [(32, 32, 1), (64, 128, 2), (96, 64, 3)])
def test_csp_variant_formulas(c1: int, c2: int, n: int) -> None:
    c = c2 // 2
    stem = 2 * c * c1 + 4 * c + (2 + n) * c * c2 + 2 * c2  # cv1 + cv2 of C2f
    assert n_params(CSPPC(c1, c2, n)) == stem + n * 18 * (c // 4) ** 2
    assert n_params(C2fGhost(c1, c2, n)) == stem + n * (c * c // 2 + 87 * c // 4)
    assert n_params(C2fFaster(c1, c2, n)) == stem + n * (9 * (c // 4) ** 2 + 4 * c * c + 4 * c)


@pytest.mark.parametrize("c1,c2", [(16, 32), (32, 64), (64, 128), (48, 48)])
def test_downsample_formulas(c1: int, c2: int) -> None:
    assert n_params(ADown(c1, c2)) == 5 * c1 * c2 // 2 + 2 * c2
    assert n_params(Down_wt(c1, c2)) == 4 * c1 * c2 + 3 * c2


@pytest.mark.parametrize("dim,n_div", [(16, 4), (64, 4), (30, 3), (8, 8)])
def test_pconv_and_fasternet_formulas(dim: int, n_div: int) -> None:
    dc = dim // n_div
    assert n_params(PConv(dim, n_div)) == 9 * dc * dc
    assert n_params(FasterNetBlock(dim, n_div)) == 9 * dc * dc + 4 * dim * dim + 4 * dim


def test_variants_build_only_their_own_units() -> None:
    # make_unit overrides: no default Bottleneck is built and thrown away
    for block in (CSPPC(32, 32, 2), C2fGhost(32, 32, 2), C2fFaster(32, 32, 2), C3Ghost(32, 32, 2)):
        assert not any(isinstance(m, Bottleneck) for m in block.modules()), type(block).__name__
    assert all(isinstance(u, GhostBottleneck) for u in C3Ghost(32, 32, 2).m)
    unit = CSPPC(32, 32, 1, n_div=2).m[0]
    assert [type(m) for m in unit] == [PConv, PConv] and unit[0].dim_conv == 8


# ---- forward math -----------------------------------------------------------------------------


def test_pconv_leaves_untouched_channels_bit_identical() -> None:
    torch.manual_seed(0)
    m = PConv(16, 4)
    x = torch.randn(2, 16, 9, 7)
    y = m(x)
    assert torch.equal(y[:, 4:], x[:, 4:])
    assert torch.allclose(y[:, :4], F.conv2d(x[:, :4], m.partial_conv3.weight, padding=1))
    # training through split+cat leaves the input untouched and reaches the conv weight
    x.requires_grad_(True)
    m(x).sum().backward()
    assert m.partial_conv3.weight.grad is not None
    assert torch.equal(x.grad[:, 4:], torch.ones_like(x[:, 4:]))  # type: ignore[index]


def test_pconv_slicing_mode_is_inference_only() -> None:
    torch.manual_seed(0)
    ref = PConv(16, 4).eval()
    fast = PConv(16, 4, forward_mode="slicing").eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(1, 16, 8, 8)
    x_before = x.clone()
    assert torch.equal(fast(x), ref(x))
    assert torch.equal(x, x_before)  # the input is not modified in place
    with pytest.raises(RuntimeError, match="inference"):
        fast.train()(x)
    with pytest.raises(ValueError, match="forward_mode"):
        PConv(16, forward_mode="inplace")


def test_csppc_units_have_no_residual() -> None:
    torch.manual_seed(0)
    block = CSPPC(16, 16, 1)
    unit = block.m[0]
    x = torch.randn(1, 8, 6, 6)
    a, b = unit[0].partial_conv3.weight, unit[1].partial_conv3.weight
    first = torch.cat((F.conv2d(x[:, :2], a, padding=1), x[:, 2:]), 1)
    expected = torch.cat((F.conv2d(first[:, :2], b, padding=1), first[:, 2:]), 1)
    assert torch.allclose(unit(x), expected)


def _haar_reference(x: np.ndarray) -> np.ndarray:
    """Haar DWT by explicit loops over 2x2 cells with the four 2x2 filters (zero padding)."""
    b, c, h, w = x.shape
    hp, wp = h + h % 2, w + w % 2
    padded = np.zeros((b, c, hp, wp))
    padded[:, :, :h, :w] = x
    filters = 0.5 * np.array(
        [[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]]
    )
    out = np.zeros((b, 4 * c, hp // 2, wp // 2))
    for band in range(4):
        for ch in range(c):
            for i in range(hp // 2):
                for j in range(wp // 2):
                    cell = padded[:, ch, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                    out[:, band * c + ch, i, j] = (cell * filters[band]).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize("h,w", [(6, 8), (5, 7), (7, 4), (1, 1)])
def test_haar_dwt_matches_loop_reference(h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = haar_dwt(x)
    assert y.shape == (2, 12, (h + 1) // 2, (w + 1) // 2)
    np.testing.assert_allclose(y.numpy(), _haar_reference(x.numpy()), rtol=0, atol=1e-12)
    # orthonormal: the energy of the (zero-padded) input is preserved
    assert torch.allclose((y**2).sum(), (x**2).sum())


def test_down_wt_is_dwt_then_conv_bn_relu() -> None:
    torch.manual_seed(0)
    m = Down_wt(3, 8)
    nn.init.uniform_(m.bn.running_mean, -0.5, 0.5)
    m.eval()
    x = torch.randn(2, 3, 9, 10)
    ref = torch.from_numpy(_haar_reference(x.double().numpy())).float()
    expected = F.relu(m.bn(m.conv(ref)))
    assert torch.allclose(m(x), expected, atol=1e-5)
    assert m(x).shape == (2, 8, 5, 5)


# ---- equality with ultralytics' originals -----------------------------------------------------


def _same_as_ultralytics(ours: nn.Module, theirs: nn.Module, shape: tuple[int, ...]) -> None:
    assert n_params(ours) == n_params(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # same structure and names
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    for mode in (True, False):
        ours.train(mode)
        theirs.train(mode)
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize(
    "name,args,shape",
    [
        ("GhostConv", (16, 32, 3, 2), (2, 16, 12, 12)),
        ("GhostConv", (24, 16, 1, 1), (2, 24, 8, 8)),
        ("GhostBottleneck", (32, 32, 3, 1), (2, 32, 8, 8)),
        ("GhostBottleneck", (16, 32, 3, 2), (2, 16, 8, 8)),
        ("C3Ghost", (16, 32, 2), (2, 16, 8, 8)),
        ("ADown", (16, 32), (2, 16, 9, 9)),
    ],
)
def test_equal_to_ultralytics(name: str, args: tuple[int, ...], shape: tuple[int, ...]) -> None:
    ul = pytest.importorskip("ultralytics.nn.modules")
    ours = {"GhostConv": GhostConv, "GhostBottleneck": GhostBottleneck, "C3Ghost": C3Ghost,
            "ADown": ADown}[name]
    torch.manual_seed(0)
    theirs = getattr(ul, name)(*args)
    for m in theirs.modules():  # ultralytics' model init sets eps/momentum; random statistics
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
            nn.init.uniform_(m.running_mean, -0.2, 0.2)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
    _same_as_ultralytics(ours(*args), theirs, shape)


def test_c2fghost_equals_ultralytics_c2f_with_ghost_units() -> None:
    # seed 001's C2f_Ghost: ultralytics' C2f with its units swapped for GhostBottleneck(c, c)
    ul = pytest.importorskip("ultralytics.nn.modules")
    torch.manual_seed(0)
    theirs = ul.C2f(16, 32, 2, True)
    theirs.m = nn.ModuleList(ul.GhostBottleneck(16, 16) for _ in range(2))
    for m in theirs.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    _same_as_ultralytics(C2fGhost(16, 32, 2, True), theirs, (2, 16, 8, 8))


# ---- rows and errors --------------------------------------------------------------------------


def _row(module: str, c1: int, args: tuple, repeats: int = 1) -> RowContext:
    return RowContext(7, module, (c1,), args, repeats, Scale(0.33, 0.25, 1024), 80)


def test_rows_follow_ultralytics_conventions() -> None:
    m, c = create_block(_row("GhostConv", 32, (256, 3, 2)))  # [c2, k, s], c2 width-scaled
    assert c == 64 and n_params(m) == 10_144
    m, c = create_block(_row("ADown", 32, (256,)))
    assert c == 64 and n_params(m) == 5_248
    m, c = create_block(_row("Down_wt", 32, (256,)))
    assert c == 64 and n_params(m) == 8_384
    m, c = create_block(_row("CSPPC", 128, (512, True), repeats=2))
    assert c == 128 and n_params(m) == 58_880
    m, c = create_block(_row("C3Ghost", 128, (512,), repeats=2))
    assert c == 128 and isinstance(m, C3Ghost) and len(m.m) == 2
    m, c = create_block(_row("PConv", 64, (256, 2)))
    assert c == 64 and isinstance(m, PConv) and m.dim_conv == 32


def test_errors_name_the_row_and_value() -> None:
    with pytest.raises(BlockError, match=r"row 7 \(PConv\).*scales to 32.*input has 64"):
        create_block(_row("PConv", 64, (128,)))
    with pytest.raises(BlockError, match=r"row 7 \(FasterNetBlock\)"):
        create_block(_row("FasterNetBlock", 64, (128,)))
    with pytest.raises(BlockError, match=r"row 7 \(Down_wt\): bad arguments \[256, 3, 2\]"):
        create_block(_row("Down_wt", 32, (256, 3, 2)))
    with pytest.raises(BlockError, match=r"row 7 \(GhostBottleneck\).*c1 \(16\) must equal c2"):
        create_block(_row("GhostBottleneck", 16, (128,)))
    with pytest.raises(ValueError, match="even number of output channels, got c2=33"):
        GhostConv(16, 33)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        GhostBottleneck(16, 16, 3, 3)
    with pytest.raises(ValueError, match="even channel counts.*c1=15"):
        ADown(15, 32)
    with pytest.raises(ValueError, match="n_div"):
        PConv(4, 8)


# ---- whole models (figures computed from the blocks' specifications, n-scale) -------------

C2F_ROWS = (2, 4, 6, 8, 12, 15, 18, 21)
SUBSTITUTIONS = {  # configuration -> (rows, module, keep only [c2] as args), params nc=80, nc=1
    "baseline": ((), "C2f", False, 3_157_200, 3_011_043),
    "csppc_all": (C2F_ROWS, "CSPPC", False, 2_269_104, 2_122_947),
    "csppc_neck": ((12, 15, 18, 21), "CSPPC", False, 2_724_048, 2_577_891),
    "csppc_backbone": ((2, 4, 6, 8), "CSPPC", False, 2_702_256, 2_556_099),
    "adown_3_5_7": ((3, 5, 7), "ADown", True, 2_877_648, 2_731_491),
    "adown_3_5_7_16_19": ((3, 5, 7, 16, 19), "ADown", True, 2_744_528, 2_598_371),
    "down_wt_3_5_7": ((3, 5, 7), "Down_wt", True, 2_942_608, 2_796_451),
    "c2fghost_all": (C2F_ROWS, "C2fGhost", False, 2_249_876, 2_103_719),
}


def _yolov8_variant(rows: tuple[int, ...], module: str, only_c2: bool) -> dict:
    import copy
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "models" / "yolov8.yaml"
    d = copy.deepcopy(yaml.safe_load(path.read_text()))
    table = d["backbone"] + d["head"]
    for i in rows:
        table[i][2] = module
        if only_c2:
            table[i][3] = table[i][3][:1]
    return d


def _params(source: object, **overrides: object) -> int:
    """Parameters of the detector built from ``source`` (no stride probe: counting only)."""
    model = pytest.importorskip("nas.model")
    return model.count_params(model.Detector(model.load_arch(source, **overrides)))


@pytest.mark.parametrize("config", sorted(SUBSTITUTIONS))
def test_whole_model_figures(config: str) -> None:
    rows, module, only_c2, p80, p1 = SUBSTITUTIONS[config]
    d = _yolov8_variant(rows, module, only_c2)
    assert _params(d, nc=80, scale="n") == p80
    assert _params(d, nc=1, scale="n") == p1


def test_shipped_variant_yamls() -> None:
    assert _params("yolov8n-csppc.yaml") == 2_269_104
    # C2fFaster: the baseline minus, per C2f unit of width c, Bottleneck - FasterNet block
    units = {16: 1, 32: 2 + 1, 64: 2 + 1 + 1, 128: 1 + 1}  # c -> units at n-scale
    saved = sum(
        n * ((18 * c * c + 4 * c) - (9 * (c // 4) ** 2 + 4 * c * c + 4 * c))
        for c, n in units.items()
    )
    assert _params("yolov8n-faster.yaml") == 3_157_200 - saved


@pytest.mark.parametrize("name", ["yolov8-csppc", "yolov8-faster", "yolov8-afpn",
                                  "yolov8-timm-ghostnet"])
def test_shipped_yamls_round_trip(name: str) -> None:
    model = pytest.importorskip("nas.model")
    arch = model.load_arch(f"{name}.yaml", scale="n")
    assert model.load_arch(model.dump_arch(arch)) == arch
