"""The counters on small hand-computed modules: params, GFLOPs rules, latency statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nas.model.counting import (
    LatencyStats,
    count_gflops,
    count_params,
    count_trainable_params,
    measure_latency,
)


def test_count_params_and_trainable():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4))
    assert count_params(model) == 3 * 4 * 9 + 4 + 8
    model[0].weight.requires_grad_(False)
    assert count_trainable_params(model) == 4 + 8


def test_conv_gflops_excludes_bias_and_respects_groups_and_stride():
    # 3 -> 8, k3, s2, p1 on 16x16: output 8x8x8 = 512 elements, each 3 * 9 multiply-adds
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=True))
    assert count_gflops(conv, 16) == pytest.approx(2 * 512 * 27 / 1e9)
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, 1, 1, groups=2, bias=False))
    grouped.in_channels = 4  # the probe image has this many channels
    assert count_gflops(grouped, 8) == pytest.approx(2 * (8 * 8 * 8) * 2 * 9 / 1e9)


def test_norm_and_linear_rules():
    bn = nn.Sequential(nn.BatchNorm2d(3))
    assert count_gflops(bn, 10) == pytest.approx(2 * 4 * 300 / 1e9)
    plain = nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.Conv2d(3, 1, 1))
    assert count_gflops(plain, 10) == pytest.approx(2 * (2 * 300 + 100 * 3) / 1e9)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    assert count_gflops(mlp, 4) == pytest.approx(2 * 48 * 5 / 1e9)


def test_free_ops_count_zero():
    model = nn.Sequential(nn.SiLU(), nn.MaxPool2d(2), nn.Upsample(scale_factor=2), nn.ReLU())
    model.register_parameter("dummy", nn.Parameter(torch.zeros(1)))  # a device/dtype anchor
    assert count_gflops(model, 32) == 0.0


def test_rectangular_image_and_bad_sizes():
    conv = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False))
    assert count_gflops(conv, (8, 16)) == pytest.approx(2 * 2 * 128 * 3 / 1e9)
    for bad in (0, (8,), "640", (8, -1)):
        with pytest.raises(ValueError, match="imgsz"):
            count_gflops(conv, bad)  # type: ignore[arg-type]


def test_counting_restores_training_flags_and_removes_hooks():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    model.train()
    model[1].eval()
    count_gflops(model, 8)
    assert model.training and model[0].training and not model[1].training
    assert not model[0]._forward_hooks and not model[1]._forward_hooks
    assert model[1].num_batches_tracked.item() == 0  # ran in eval mode: BN stats untouched


def test_measure_latency_stats():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU())
    model.train()
    stats = measure_latency(model, imgsz=32, batch=2, device="cpu", warmup=1, repeats=5)
    assert isinstance(stats, LatencyStats)
    assert stats.repeats == 5 and stats.batch == 2 and stats.imgsz == 32 and stats.device == "cpu"
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.min_ms <= stats.mean_ms
    assert stats.images_per_second == pytest.approx(2000 / stats.median_ms)
    assert model.training  # restored
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_latency_cuda():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    stats = measure_latency(model, imgsz=64, device="cuda", warmup=1, repeats=3)
    assert stats.device.startswith("cuda") and stats.median_ms > 0


def test_meta_pass_equals_real_pass_and_leaves_model_usable():
    from nas.model.detector import build_model

    model = build_model("yolov8n.yaml", nc=3)
    on_meta = count_gflops(model, (96, 64))
    assert on_meta == count_gflops(model, (96, 64), on_meta=False)
    assert on_meta == pytest.approx(8.1938 * 96 * 64 / 640**2, abs=1e-4)
    assert all(not p.is_meta for p in model.parameters())
    out = model.eval()(torch.rand(1, 3, 64, 64))
    assert out.device.type == "cpu" and torch.isfinite(out).all()
