"""The training loop: determinism, callbacks, NaN guard, schedule, optimizer groups, EMA."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from nas.data import DataConfig, PreparedData, prepare_data
from nas.model import Detector, build_model
from nas.train import (
    EpochResult,
    ModelEMA,
    NonFiniteLossError,
    TrainConfig,
    build_optimizer,
    fit,
    schedule_at,
)

REPO = Path(__file__).resolve().parents[1]


def tiny_model(nc: int, seed: int = 0) -> Detector:
    """YOLOv8 rows at 1/16 width (about 0.35 M parameters), for fast CPU tests."""
    arch = yaml.safe_load((REPO / "models" / "yolov8.yaml").read_text())
    arch["scales"] = {"t": [0.33, 0.0625, 1024]}
    arch["scale"] = "t"
    torch.manual_seed(seed)
    return build_model(arch, nc=nc)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    root = tmp_path_factory.mktemp("synthetic")
    cfg = DataConfig.from_dict(
        {
            "path": str(root),
            "synthetic": {"num_train": 8, "num_val": 4, "image_size": 64, "min_size": 8,
                          "max_size": 0.5, "max_objects": 3, "num_classes": 3},
        }
    )  # fmt: skip
    return prepare_data(cfg, imgsz=64, device="cpu", progress=False)


def quick(**changes: object) -> TrainConfig:
    base = {"epochs": 2, "imgsz": 64, "batch_size": 4, "optimizer": "adamw", "lr0": 0.002,
            "warmup_epochs": 0.5, "threads": 1, "eval_batch_size": 4}  # fmt: skip
    base.update(changes)
    return TrainConfig.from_dict(base)


def test_fit_is_deterministic_on_cpu(tiny_data: PreparedData) -> None:
    runs = []
    for _ in range(2):
        model = tiny_model(tiny_data.num_classes)
        result = fit(model, tiny_data, quick(), progress=False)
        runs.append((result, model.state_dict()))
    (a, wa), (b, wb) = runs
    assert [(h.loss_box, h.loss_cls, h.loss_dfl) for h in a.history] == [
        (h.loss_box, h.loss_cls, h.loss_dfl) for h in b.history
    ]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.map50 == b.map50
    # another seed shuffles and augments differently
    other = fit(tiny_model(tiny_data.num_classes), tiny_data, quick(seed=1), progress=False)
    assert other.history[0].loss_cls != a.history[0].loss_cls


def test_fit_result_and_on_epoch_each_epoch(tiny_data: PreparedData) -> None:
    seen: list[EpochResult] = []
    result = fit(tiny_model(3), tiny_data, quick(epochs=3, eval_every=2), on_epoch=seen.append,
                 progress=False)  # fmt: skip
    assert [e.epoch for e in seen] == [0, 1, 2]
    assert result.history == seen
    assert [e.map50 is None for e in seen] == [True, False, False]  # epoch 2, and the last
    assert result.epochs == 3 and result.images_per_second > 0 and result.train_seconds > 0
    assert 0.0 <= result.map50 <= 1.0 and 0.0 <= result.map50_95 <= result.map50
    assert all(math.isfinite(e.loss_box + e.loss_cls + e.loss_dfl) for e in seen)
    assert torch.get_num_threads() >= 1


def test_exception_in_on_epoch_propagates_and_stops(tiny_data: PreparedData) -> None:
    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune_at_second(result: EpochResult) -> None:
        calls.append(result.epoch)
        if result.epoch == 1:
            raise Pruned

    with pytest.raises(Pruned):
        fit(tiny_model(3), tiny_data, quick(epochs=4), on_epoch=prune_at_second, progress=False)
    assert calls == [0, 1]


def test_nan_loss_raises_non_finite_loss_error(tiny_data: PreparedData) -> None:
    model = tiny_model(3)
    with torch.no_grad():
        next(model.head.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="epoch 0, step 0") as info:
        fit(model, tiny_data, quick(), progress=False)
    assert (info.value.epoch, info.value.step) == (0, 0)


def test_class_count_mismatch_is_named(tiny_data: PreparedData) -> None:
    with pytest.raises(ValueError, match="nc=5"):
        fit(tiny_model(5), tiny_data, quick(), progress=False)


def test_schedule_warm_up_then_decay() -> None:
    cfg = TrainConfig(optimizer="sgd", lr0=0.01, lrf=0.1, warmup_bias_lr=0.1, momentum=0.9,
                      warmup_momentum=0.5)  # fmt: skip
    total, warm = 100, 10
    w0, b0, m0 = schedule_at(0, total, warm, cfg)
    assert (w0, b0, m0) == (0.0, 0.1, 0.5)
    w5, b5, m5 = schedule_at(5, total, warm, cfg)
    lr5 = 0.01 * (0.1 + 0.9 * (1 + math.cos(math.pi * 0.05)) / 2)
    assert w5 == pytest.approx(lr5 / 2) and b5 == pytest.approx(0.1 + (lr5 - 0.1) / 2)
    assert m5 == pytest.approx(0.7)
    assert schedule_at(50, total, warm, cfg)[0] == pytest.approx(0.01 * 0.55)
    assert schedule_at(100, total, warm, cfg) == pytest.approx((0.001, 0.001, 0.9))
    lin = cfg.replace(schedule="linear")
    assert schedule_at(50, total, 0, lin)[0] == pytest.approx(0.01 * 0.55)
    # AdamW biases warm up from 0 like the weights (a 0.1 Adam step would blow up)
    assert schedule_at(0, total, warm, cfg.replace(optimizer="adamw"))[1] == 0.0
    lrs = [schedule_at(s, total, warm, cfg)[0] for s in range(warm, total + 1)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_optimizer_groups_decay_only_conv_weights() -> None:
    model = tiny_model(3)
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", weight_decay=0.01))
    decay, bn, bias = opt.param_groups
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay["params"]) + len(bn["params"]) + len(bias["params"]) == len(trainable)
    assert decay["weight_decay"] == 0.01 and bn["weight_decay"] == bias["weight_decay"] == 0.0
    bn_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in bn["params"]} == bn_weights
    assert all(p.ndim == 4 for p in decay["params"])
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)


def test_ema_follows_the_formula() -> None:
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = ModelEMA(net, decay=0.9, tau=1.0)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    d = 0.9 * (1 - math.exp(-1))
    assert ema.module.weight[0, 0].item() == pytest.approx(d * 1 + (1 - d) * 3)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_averages_weights_and_bn_statistics_but_not_counters() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = ModelEMA(net, decay=0.5, tau=1e-9)  # decay 0.5 from the first update
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    net(torch.randn(2, 3, 8, 8))  # moves BN running stats and its counter
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    after, live = ema.module.state_dict(), net.state_dict()
    for k, v in after.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.5 * before[k] + 0.5 * live[k])
        else:  # num_batches_tracked: an integer counter, not averaged
            assert torch.equal(v, before[k])


def test_close_mosaic_turns_mosaic_off_for_the_last_epochs(
    tiny_data: PreparedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nas.train.engine as engine

    seen: list[float] = []
    real = engine.iterate_batches

    def spy(*args: object, **kwargs: object):  # noqa: ANN202
        seen.append(kwargs["augment"].mosaic)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "iterate_batches", spy)
    augment = {"mosaic": 1.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}
    fit(tiny_model(3), tiny_data, quick(epochs=3, close_mosaic=2, augment=augment),
        progress=False)  # fmt: skip
    assert seen == [1.0, 0.0, 0.0]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="optimizer='adam'.*sgd"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="imgsz=100"):
        TrainConfig(imgsz=100)
    with pytest.raises(ValueError, match=r"unknown keys \['lr'\]"):
        TrainConfig.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match="train.augment: unknown keys"):
        TrainConfig.from_dict({"augment": {"mixup": 1.0}})
    with pytest.raises(ValueError, match="close_mosaic=-1"):
        TrainConfig(close_mosaic=-1)
    cfg = TrainConfig.from_dict({"augment": {"enabled": False}, "epochs": 3})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_fused_optimizer_makes_the_per_tensor_update() -> None:
    """build_optimizer's fused AdamW and SGD step as torch's per-tensor loop does (float
    rounding aside, which Adam's normalisation amplifies over later steps), with the three
    groups' settings."""
    for name in ("adamw", "sgd"):
        cfg = TrainConfig(optimizer=name, weight_decay=0.01, lr0=0.01)
        model = tiny_model(3)
        twin = tiny_model(3)
        fused = build_optimizer(model, cfg)
        assert all(g["fused"] for g in fused.param_groups)
        loop = build_optimizer(twin, cfg)
        for group in loop.param_groups:
            group["fused"], group["foreach"] = False, False
        x = torch.randn(2, 3, 64, 64)
        for net, opt in ((model, fused), (twin, loop)):
            sum(f.square().mean() for f in net(x)).backward()
            opt.step()
        moved, initial = 0, tiny_model(3).state_dict()
        for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(),
                             strict=True):  # fmt: skip
            assert torch.allclose(a.float(), b.float(), atol=1e-6, rtol=0), (name, k)
            moved += int(not torch.equal(a, initial[k]))
        assert moved > 50  # the step changed the weights


def test_amp_resolves_per_device_and_auto_follows_the_cpu() -> None:
    """amp None: CUDA only; auto: also a CPU with native bfloat16; a bool as given. The
    layout follows (channels-last when autocasting) unless set."""
    from nas.train.config import amp_dtype, grad_scaler, use_amp, use_channels_last

    native = bool(torch.cpu._is_avx512_bf16_supported())
    assert (use_amp(None, "cpu"), use_amp(None, "cuda")) == (False, True)
    assert use_amp("auto", "cpu") is native and use_amp("auto", "cuda")
    assert use_amp(True, "cpu") and not use_amp(False, "cuda")
    assert (amp_dtype("cpu"), amp_dtype("cuda:0")) == (torch.bfloat16, torch.float16)
    assert not grad_scaler("cpu", True).is_enabled()  # bfloat16: no loss scaling
    assert use_channels_last(None, "cpu", amp=True) and not use_channels_last(None, "cpu", False)
    assert not use_channels_last(False, "cuda", amp=True)
    assert TrainConfig.from_dict({"amp": "auto"}).amp == "auto"
    with pytest.raises(ValueError, match="train.amp"):
        TrainConfig.from_dict({"amp": "maybe"})


def test_amp_on_the_cpu_trains_in_bfloat16(tiny_data: PreparedData) -> None:
    """amp=true on the CPU: the training's convolutions run in bfloat16 (no loss scaling), the
    evaluation's in float32 (box precision), the weights stay float32, the run is finite and
    deterministic."""
    seen: set[tuple[bool, torch.dtype]] = set()
    results = []
    for _ in range(2):
        model = tiny_model(tiny_data.num_classes)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        hook = conv.register_forward_hook(lambda m, i, o: seen.add((m.training, o.dtype)))
        results.append(fit(model, tiny_data, quick(amp=True), progress=False))
        hook.remove()
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {(True, torch.bfloat16), (False, torch.float32)}
    a, b = results
    assert all(math.isfinite(h.loss_cls) for h in a.history)
    assert [h.loss_cls for h in a.history] == [h.loss_cls for h in b.history]
