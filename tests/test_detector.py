"""The built detector and its Detect head: wiring, strides, biases, decoding, errors."""

from __future__ import annotations

import math

import pytest
import torch

from nas.blocks.head import DFL, Detect
from nas.blocks.registry import BlockError
from nas.model.counting import count_params, count_trainable_params
from nas.model.detector import Detector, build_model

TINY = {
    "nc": 2,
    "backbone": [
        [-1, 1, "Conv", [8, 3, 2]],  # 0 /2
        [-1, 1, "Conv", [8, 3, 2]],  # 1 /4
        [-1, 1, "Conv", [16, 3, 2]],  # 2 /8
        [-1, 1, "C2f", [16, True]],  # 3
        [-1, 1, "Conv", [32, 3, 2]],  # 4 /16
    ],
    "head": [
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 5 /8
        [[-1, 3, 2], 1, "Concat", [1]],  # 6: reads 5, 3 and 2 (saved outputs)
        [-1, 2, "C2f", [16]],  # 7
        [[7, 4], 1, "Detect", ["nc"]],  # 8
    ],
}


@pytest.fixture(scope="module")
def tiny() -> Detector:
    return build_model(TINY)


def test_training_forward_returns_raw_maps(tiny: Detector):
    tiny.train()
    maps = tiny(torch.rand(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 66, 8, 8), (2, 66, 4, 4)]
    assert tiny.head.no == 66 and tiny.head.reg_max == 16 and tiny.nc == 2


def test_eval_forward_decodes(tiny: Detector):
    tiny.eval()
    out = tiny(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 4 + 2, 8 * 12 + 4 * 6)
    assert torch.isfinite(out).all()
    assert ((out[:, 4:] > 0) & (out[:, 4:] < 1)).all()
    assert (out[:, 2:4] > 0).all()  # widths and heights


def test_forward_matches_reference_wiring(tiny: Detector):
    """Keeping only the ``save`` outputs gives what storing every output gives."""
    tiny.eval()
    x = torch.rand(1, 3, 64, 64)
    outputs: list[torch.Tensor] = []
    feed = x
    for i, (layer, row) in enumerate(zip(tiny.layers, tiny.arch.rows, strict=True)):
        if isinstance(row.frm, tuple):
            feed = [outputs[i + f] if f < 0 else outputs[f] for f in row.frm]
        elif i > 0:
            feed = outputs[i + row.frm] if row.frm < 0 else outputs[row.frm]
        outputs.append(layer(feed))
    torch.testing.assert_close(tiny(x), outputs[-1])


def test_strides_biases_and_untouched_bn():
    model = build_model(TINY, nc=5)
    assert model.stride.tolist() == [8.0, 16.0] == model.head.stride.tolist()
    assert model.training
    for box, cls, s in zip(model.head.cv2, model.head.cv3, (8, 16), strict=True):
        assert (box[-1].bias == 1.0).all()
        prior = math.log(5 / 5 / (640 / s) ** 2)
        torch.testing.assert_close(cls[-1].bias, torch.full((5,), prior))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(int(m.num_batches_tracked) == 0 for m in bns)
    assert "stride" not in model.state_dict() and "layers.8.stride" not in model.state_dict()


def test_every_trainable_parameter_gets_a_gradient():
    model = build_model(TINY)
    maps = model(torch.rand(2, 3, 64, 64))
    sum(m.square().mean() for m in maps).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert count_params(model) - count_trainable_params(model) == 16
    assert not model.head.dfl.conv.weight.requires_grad


def test_detect_decoding_hand_built_case():
    """Final convs set to constant logits: each side's distribution peaks on a known bin."""
    head = Detect(nc=2, channels=(4, 4)).eval()
    head.stride = torch.tensor([8.0, 16.0])
    distances = (3, 1, 2, 4)  # left, top, right, bottom in grid cells
    with torch.no_grad():
        for box, cls in zip(head.cv2, head.cv3, strict=True):
            box[-1].weight.zero_()
            box[-1].bias.fill_(-50.0)
            for side, d in enumerate(distances):
                box[-1].bias[side * 16 + d] = 50.0
            cls[-1].weight.zero_()
            cls[-1].bias.copy_(torch.tensor([math.log(0.25 / 0.75), 0.0]))
    feats = [torch.rand(1, 4, 2, 3), torch.rand(1, 4, 1, 2)]  # 6 + 2 anchors
    out = head(feats)
    assert out.shape == (1, 6, 8)
    # anchor 4 = level 0, row y=1, column x=1: centre (1.5, 1.5) cells, stride 8
    # box x1 = 1.5 - 3, y1 = 1.5 - 1, x2 = 1.5 + 2, y2 = 1.5 + 4 -> xywh (1.0, 3.0, 5, 5) cells
    torch.testing.assert_close(out[0, :, 4], torch.tensor([8.0, 24.0, 40.0, 40.0, 0.25, 0.5]))
    # anchor 7 = level 1, x=1, y=0: centre (1.5, 0.5), stride 16 -> (1.0, 2.0, 5, 5) * 16
    torch.testing.assert_close(out[0, :, 7], torch.tensor([16.0, 32.0, 80.0, 80.0, 0.25, 0.5]))


def test_dfl_is_the_expectation_of_the_softmax():
    dfl = DFL(16)
    logits = torch.randn(2, 64, 5)
    expected = (logits.view(2, 4, 16, 5).softmax(2) * torch.arange(16.0).view(1, 1, 16, 1)).sum(2)
    torch.testing.assert_close(dfl(logits), expected)
    assert dfl.conv.weight.flatten().tolist() == list(range(16))


def test_anchor_cache_follows_shape_and_stride():
    head = Detect(nc=1, channels=(4,)).eval()
    head.stride = torch.tensor([8.0])
    head([torch.rand(1, 4, 2, 2)])
    cached = head._anchors
    head([torch.rand(1, 4, 2, 2)])
    assert head._anchors is cached
    head([torch.rand(1, 4, 3, 2)])
    assert head._anchors.shape == (2, 6)
    head.stride = torch.tensor([4.0])
    out = head([torch.rand(1, 4, 3, 2)])
    assert head._strides.unique().tolist() == [4.0]
    assert out.shape == (1, 5, 6)


def test_detect_head_widths_follow_ultralytics():
    head = Detect(nc=150, channels=(32, 64))
    assert head.cv2[0][0].conv.out_channels == 64  # max(16, 32 // 4, 64)
    assert head.cv3[0][0].conv.out_channels == 100  # max(32, min(150, 100))
    assert Detect(nc=1, channels=(512,)).cv2[0][0].conv.out_channels == 128


def test_in_channels_from_yaml_key():
    model = build_model({**TINY, "channels": 1})
    assert model.layers[0].conv.in_channels == 1
    assert model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 6, 16 + 4)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"head": TINY["head"][:-1]}, ValueError, r"exactly one Detect head, as its last row"),
        ({"head": [[[2, 4], 1, "Detect", ["nc"]], [-1, 1, "Conv", [8]]]}, ValueError,
         r"found Detect at rows \[5\] of 7"),
        ({"head": [[[2, 4], 1, "Detect", ["nc", 3]]]}, BlockError,
         r"row 5 \(Detect\): expects args \[nc\], got \[2, 3\]"),
        ({"head": [[[2, -3], 1, "Concat", [1]], [-1, 1, "C2f", []]]}, BlockError,
         r"row 6 \(C2f\): missing argument 0 \(out_channels\)"),
        ({"head": [[[2, 4], 1, "Detect", ["two"]]]}, BlockError,
         r"row 5 \(Detect\): argument 0 \(nc\) must be int, got 'two'"),
        ({"activation": "nn.ReLU()"}, ValueError, r"top-level key 'activation'"),
        ({"reg_max": 8}, ValueError, r"top-level key 'reg_max' must be 16"),
    ],
)
def test_build_errors(change, error, message):
    with pytest.raises(error, match=message):
        build_model({**TINY, **change})


def test_build_accepts_architecture_and_overrides():
    model = build_model("yolov8n.yaml", nc=4, scale="n")
    again = build_model(model.arch, nc=7)
    assert again.arch.nc == 7 and again.nc == 7 and again.arch.scale == "n"
    with pytest.warns(UserWarning, match="assuming scale 'n'"):
        unscaled = build_model({**TINY, "scales": {"n": [1.0, 0.5, 64], "s": [1.0, 1.0, 64]}})
    assert unscaled.arch.scale == "n"
    assert unscaled.layers[0].conv.out_channels == 8  # make_divisible(8 * 0.5, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_and_fuse():
    model = build_model(TINY).cuda().eval()
    x = torch.rand(2, 3, 64, 64, device="cuda")
    with torch.no_grad():
        out = model(x)
        assert out.device.type == "cuda"
        torch.testing.assert_close(model.fuse()(x), out, rtol=1e-3, atol=1e-3)
