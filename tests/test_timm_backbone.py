"""TimmBackbone: strides 8/16/32 from feature_info, channels, no weight download, clear errors,
and a whole model (timm GhostNet backbone + PAN neck) from its YAML."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nas.blocks.registry import BlockError, RowContext, Scale, create_block
from nas.blocks.timm_backbone import TimmBackbone, TimmBackboneError

timm = pytest.importorskip("timm")


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "name,channels,size",
    [("ghostnet_100", (40, 80, 160), 64), ("mobilenetv3_small_100", (24, 48, 576), 96)],
)
def test_strides_channels_and_shapes(name: str, channels: tuple[int, ...], size: int) -> None:
    net = TimmBackbone(name)
    assert net.channels == channels
    ys = net(torch.randn(2, 3, size, size))
    assert [tuple(y.shape) for y in ys] == [
        (2, c, size // s, size // s) for c, s in zip(channels, (8, 16, 32), strict=True)
    ]
    # exactly timm's feature extractor for those levels, truncated after stride 32
    ref = timm.create_model(name, pretrained=False, features_only=True, out_indices=(2, 3, 4))
    assert n_params(net) == n_params(ref)
    full = timm.create_model(name, pretrained=False)
    assert n_params(net) < n_params(full)  # the classifier and later layers are not built


def test_never_requests_pretrained_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = timm.create_model

    def spy(name: str, **kwargs: Any) -> torch.nn.Module:
        calls.append(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    TimmBackbone("mobilenetv3_small_100")
    assert calls and all(c["pretrained"] is False and c["features_only"] for c in calls)
    with pytest.raises(TimmBackboneError, match="never downloaded"):
        TimmBackbone("mobilenetv3_small_100", pretrained=True)


def test_in_chans_follows_the_row_input() -> None:
    row = RowContext(0, "TimmBackbone", (1,), ("mobilenetv3_small_100",), 1, Scale(), 80)
    net, ch = create_block(row)
    assert ch == (24, 48, 576)
    assert [y.shape[1] for y in net(torch.randn(1, 1, 64, 64))] == [24, 48, 576]


def test_errors_name_the_model_and_why() -> None:
    with pytest.raises(TimmBackboneError, match=r"'vit_tiny_patch16_224'.*reductions \[16"):
        TimmBackbone("vit_tiny_patch16_224")
    with pytest.raises(TimmBackboneError, match="unknown timm model 'ghostnet_999'.*ghostnet_100"):
        TimmBackbone("ghostnet_999")
    row = RowContext(0, "TimmBackbone", (3,), ("no_such_net",), 1, Scale(), 80)
    with pytest.raises(BlockError, match=r"row 0 \(TimmBackbone\): unknown timm model"):
        create_block(row)
    row = RowContext(0, "TimmBackbone", (3,), (5,), 1, Scale(), 80)
    with pytest.raises(BlockError, match="model_name.*must be str"):
        create_block(row)


@pytest.mark.slow
def test_yolov8n_timm_ghostnet_model() -> None:
    model_mod = pytest.importorskip("nas.model")
    model = model_mod.build_model("yolov8n-timm-ghostnet.yaml", nc=1)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    table = model.layer_table()
    assert table[0].channels == (40, 80, 160) and [r.channels for r in table[1:4]] == [40, 80, 160]
    ghostnet = n_params(TimmBackbone("ghostnet_100"))
    assert table[0].params == ghostnet
    assert model_mod.count_params(model) == sum(r.params for r in table)
    maps = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 65, 8, 8), (1, 65, 4, 4), (1, 65, 2, 2)]
