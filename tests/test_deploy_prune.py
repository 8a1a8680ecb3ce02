"""Structured pruning with Torch-Pruning: reaches the target, stays runnable, trainable and
exportable, its counts agree with nas.info's, and its checkpoint loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

pytest.importorskip("torch_pruning")
pytest.importorskip("onnxruntime")

from conftest import tiny_synthetic  # noqa: E402

from nas.blocks.pconv import PConv  # noqa: E402
from nas.data import PreparedData  # noqa: E402
from nas.deploy.checkpoint import load_detector, save_checkpoint  # noqa: E402
from nas.deploy.onnx_export import export_onnx  # noqa: E402
from nas.deploy.prune import PruneConfig, prune_detector  # noqa: E402
from nas.deploy.session import make_session  # noqa: E402
from nas.info import model_summary  # noqa: E402
from nas.model import Detector, build_model, count_gflops, count_params  # noqa: E402
from nas.train import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tiny(name: str, nc: int = 3, width: float = 0.125) -> Detector:
    arch = yaml.safe_load((REPO / "models" / name).read_text())
    arch["scales"] = {"t": [0.33, width, 1024]}
    arch["scale"] = "t"
    torch.manual_seed(0)
    return build_model(arch, nc=nc)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.mark.slow
def test_pruned_model_reaches_the_target_runs_trains_and_loads_back(
    tiny_data: PreparedData, tmp_path: Path
) -> None:
    model = tiny("yolov8.yaml")
    head_out = [b[-1].weight.shape for b in (*model.head.cv2, *model.head.cv3)]
    recipe = TrainConfig(epochs=1, imgsz=64, batch_size=4, optimizer="adamw", lr0=0.002,
                         warmup_epochs=0.0, threads=1, eval_batch_size=4)  # fmt: skip
    result = prune_detector(model, tiny_data, PruneConfig(target_ratio=0.7, steps=2),
                            finetune=recipe)  # fmt: skip
    assert result.params == count_params(model) <= 0.7 * result.original_params
    assert len(result.history) == 2 and result.history[0][0] > result.history[1][0]
    assert result.history[-1][1] is not None  # fine-tuned through nas.train.fit
    assert result.skipped_groups > 0  # C2f's chunk: its cv1 groups stay whole
    # the head's outputs are ignored layers: their shapes are unchanged
    assert [b[-1].weight.shape[0] for b in (*model.head.cv2, *model.head.cv3)] == [
        s[0] for s in head_out
    ]
    # runnable in both modes, with the head's layout
    model.train()
    maps = model(torch.zeros(2, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [64 + 3] * 3
    model.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    assert expected.shape == (1, 4 + 3, 84)
    # counts: nas.info's summary, the tensors themselves, and the per-layer table agree
    summary = model_summary(model, imgsz=64)
    assert summary["params"] == result.params == sum(p.numel() for p in model.parameters())
    assert sum(row["params"] for row in summary["layers"]) == result.params
    assert summary["gflops"] == pytest.approx(count_gflops(model, 64))
    # the checkpoint loads back (weights_only) with the same counts and outputs
    path = save_checkpoint(model, tmp_path / "pruned.pt")
    torch.load(path, weights_only=True)
    loaded = load_detector(None, path, nc=3).eval()
    assert count_params(loaded) == result.params
    assert count_gflops(loaded, 64) == pytest.approx(count_gflops(model, 64))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)
    # and exports to ONNX with the same outputs
    onnx_path = export_onnx(loaded, tmp_path / "pruned.onnx", imgsz=64)
    got = make_session(onnx_path, threads=1).run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["yolov8-csppc.yaml", "yolov8-afpn.yaml"])
def test_light_designs_prune_with_custom_blocks_handled(name: str) -> None:
    model = tiny(name)
    pconv = {n: m.partial_conv3.weight.shape for n, m in model.named_modules()
             if isinstance(m, PConv)}  # fmt: skip
    result = prune_detector(model, None, PruneConfig(target_ratio=0.8, steps=1))
    assert count_params(model) <= 0.8 * result.original_params
    # PConv's split sizes are fixed in its code: its channels are never pruned
    after = {n: m.partial_conv3.weight.shape for n, m in model.named_modules()
             if isinstance(m, PConv)}  # fmt: skip
    assert after == pconv
    head_only = 2 * 3 + 1  # Detect's six output convolutions and its DFL
    assert len(result.ignored) == (head_only if "afpn" not in name else len(result.ignored))
    if "afpn" in name:  # AFPN is ignored whole: its convolutions keep their widths
        assert len(result.ignored) > head_only
    model.eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7, 84)


def test_round_to_keeps_pruned_widths_multiples() -> None:
    """``round_to=8``: every pruned conv keeps a multiple of 8 output channels."""
    model = tiny("yolov8.yaml", width=0.25)
    before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    prune_detector(model, None, PruneConfig(target_ratio=0.7, steps=1, round_to=8))
    after = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pruned = [n for n in before if after[n] != before[n]]
    assert pruned and all(after[n] % 8 == 0 for n in pruned)
    with pytest.raises(ValueError, match="round_to"):
        PruneConfig(round_to=0)


def test_unreachable_target_is_an_error() -> None:
    with pytest.raises(ValueError, match="target_ratio"):
        PruneConfig(target_ratio=0.0)
    with pytest.raises(ValueError, match="out of reach"):
        prune_detector(tiny("yolov8.yaml"), None, PruneConfig(target_ratio=0.01, steps=1))
