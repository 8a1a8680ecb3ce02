"""Weight sharing (nas.supernet): plan, choice routing, extraction, sampling, resume, config."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from nas.data import DataConfig, PreparedData, prepare_data
from nas.fidelity.proxies import validation_loss
from nas.model.counting import count_gflops, count_params
from nas.model.detector import build_model
from nas.search.evaluators import EvalContext, make_evaluator
from nas.search.space import SearchSpace, load_space, parse_space
from nas.search.wiring import to_arch
from nas.supernet import (
    ChoiceModule,
    PathSampler,
    SuperNet,
    SupernetError,
    SupernetEvaluator,
    SupernetSettings,
    inherit_weights,
    option_sizes,
    plan_supernet,
    recalibrate_bn,
    train_supernet,
)
from nas.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
LIGHT = {"backbone.block.P3": "CSPPC", "backbone.downsample.P5": "ADown",
         "neck.block.out_P5": "C2fGhost"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_space() -> SearchSpace:
    return load_space(REPO / "search_spaces" / "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    root = tmp_path_factory.mktemp("synthetic")
    cfg = DataConfig.from_dict(
        {"path": str(root), "synthetic": {"num_train": 8, "num_val": 4, "image_size": 64,
                                          "min_size": 8, "max_size": 0.5, "max_objects": 3,
                                          "num_classes": 3}}
    )  # fmt: skip
    return prepare_data(cfg, imgsz=64, device="cpu", progress=False)


def recipe(**changes: Any) -> TrainConfig:
    base = {"epochs": 2, "imgsz": 64, "batch_size": 4, "optimizer": "adamw", "lr0": 0.002,
            "warmup_epochs": 0.5, "threads": 1, "eval_batch_size": 4, "ema_tau": 2.0}  # fmt: skip
    base.update(changes)
    return TrainConfig.from_dict(base)


def supernet_of(space: SearchSpace, nc: int = 3) -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(plan_supernet(space, nc))


def test_plan_reads_rows_and_branches_off_the_wiring() -> None:
    space = load_space(REPO / "search_spaces" / "default.yaml")
    plan = plan_supernet(space, nc=4)
    assert plan.structural == ("neck", "width")
    assert [b.label for b in plan.branches] == [
        "neck=PAN,width=0.1875", "neck=PAN,width=0.25", "neck=AFPN,width=0.1875",
        "neck=AFPN,width=0.25",
    ]  # fmt: skip
    pan, afpn = plan.branches[0], plan.branches[2]
    assert pan.rows["backbone.downsample.P1"] == 0 and pan.rows["backbone.block.P5"] == 8
    assert pan.rows["neck.downsample.P5"] == 19 and "neck.block.out_P3" not in afpn.rows
    assert pan.shared_prefix(afpn) == 10  # the backbone up to SPPF
    assert pan.shared_prefix(plan.branches[1]) == 0  # other width: nothing shared


def test_branches_share_the_backbone_modules() -> None:
    space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC"]}},
                         "neck": {"type": ["PAN", "AFPN"]}}, source="<test>")  # fmt: skip
    net = supernet_of(space)
    pan, afpn = net.branch(0), net.branch(1)
    assert all(pan.layers[i] is afpn.layers[i] for i in range(10))
    assert pan.layers[10] is not afpn.layers[10] and pan.head is not afpn.head


def test_choice_module_runs_and_trains_only_the_sampled_option(tiny_space: SearchSpace) -> None:
    net = supernet_of(tiny_space)
    choices = tiny_space.complete(LIGHT)
    net.set_path(choices)
    choice_rows = [m for m in net.modules() if isinstance(m, ChoiceModule)]
    assert len(choice_rows) == 3
    calls: dict[int, int] = {}
    for row in choice_rows:
        for option in row.options:
            option.register_forward_hook(
                lambda m, i, o: calls.__setitem__(id(m), calls.get(id(m), 0) + 1)
            )
    net.train()
    sum(f.square().mean() for f in net(torch.rand(2, 3, 64, 64))).backward()
    for row in choice_rows:
        for name, option in zip(row.names, row.options, strict=True):
            chosen = name == choices[row.key]
            assert calls.get(id(option), 0) == (1 if chosen else 0), (row.key, name)
            grads = [p.grad is not None and bool(p.grad.abs().sum() > 0)
                     for p in option.parameters()]  # fmt: skip
            assert (any(grads) if chosen else not any(grads)), (row.key, name)


def test_extracted_subnetwork_equals_the_standalone_build(tiny_space: SearchSpace) -> None:
    net = supernet_of(tiny_space)
    for partial in ({}, LIGHT):
        choices = tiny_space.complete(partial)
        torch.manual_seed(1)  # other initial weights than the supernet's
        model = build_model(to_arch(tiny_space, choices, 3))
        net.set_path(choices)
        path_params = sum(
            sum(p.numel() for p in (m.options[m.active] if isinstance(m, ChoiceModule)
                                    else m).parameters())
            for m in net.branch().layers
        )  # fmt: skip
        assert path_params == count_params(model)
        assert count_gflops(net, imgsz=64) == pytest.approx(count_gflops(model, imgsz=64))
        inherit_weights(net, model, choices)
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(net.eval()(x), model.eval()(x))


def test_inherit_refuses_a_model_of_other_choices(tiny_space: SearchSpace) -> None:
    net = supernet_of(tiny_space)
    model = build_model(to_arch(tiny_space, tiny_space.complete(LIGHT), 3))
    with pytest.raises(SupernetError, match="not the standalone build"):
        inherit_weights(net, model, tiny_space.baseline_choices())


def test_fair_sampling_trains_every_option_equally() -> None:
    space = load_space(REPO / "search_spaces" / "default.yaml")
    sampler = PathSampler(space, "fair", seed=3)
    paths = [sampler.path(s) for s in range(8)]
    for key in ("backbone.block.P2", "backbone.downsample.P3", "width", "neck"):
        counts = [sum(p.get(key) == name for p in paths)
                  for name in space.decisions[key].names]  # fmt: skip
        assert counts == [8 // len(counts)] * len(counts), key
    assert paths == [PathSampler(space, "fair", seed=3).path(s) for s in range(8)]
    assert paths != [PathSampler(space, "uniform", seed=3).path(s) for s in range(8)]


def test_weight_balance_draws_pan_as_often_as_its_block_options() -> None:
    """``balance: weights``: the neck decision draws PAN 4 times per AFPN (PAN opens the neck's
    block slots, 4 options each), so each PAN block option trains as often as AFPN's neck;
    the other decisions open nothing and keep equal draws, identical to ``balance: options``."""
    from nas.supernet.sampling import option_weights

    space = load_space(REPO / "search_spaces" / "default.yaml")
    weights = option_weights(space)
    assert list(space.decisions["neck"].names) == ["PAN", "AFPN"] and weights["neck"] == [4, 1]
    assert {k: w for k, w in weights.items() if k != "neck"} == {
        k: [1] * len(space.decisions[k].options) for k in weights if k != "neck"}
    for rule in ("fair", "uniform"):
        balanced = PathSampler(space, rule, seed=3, balance="weights")
        paths = [balanced.path(s) for s in range(400)]
        pan = sum(p["neck"] == "PAN" for p in paths)
        if rule == "fair":  # 80 rounds of 5 draws: exactly 4 PAN each
            assert pan == 320
            per_option = [sum(p.get("neck.block.out_P4") == name for p in paths)
                          for name in space.decisions["neck.block.out_P4"].names]  # fmt: skip
            assert sum(per_option) == 320 and min(per_option) >= 64  # each near AFPN's 80
        else:
            assert 280 <= pan <= 360
        plain = PathSampler(space, rule, seed=3)
        assert [p["width"] for p in paths] == [plain.path(s)["width"] for s in range(400)]
    with pytest.raises(ValueError, match="balance: 'params'; valid: \\['options', 'weights'\\]"):
        PathSampler(space, "fair", balance="params")


def test_recalibrated_bn_statistics_are_the_batch_average(tiny_space: SearchSpace,
                                                          tiny_data: PreparedData) -> None:
    model = build_model(to_arch(tiny_space, tiny_space.baseline_choices(), 3))
    bn = model.layers[0].bn
    seen = recalibrate_bn(model, tiny_data.train, batches=2, batch_size=4)
    assert seen == 8 and bn.momentum == 0.03 and int(bn.num_batches_tracked) == 2
    # two batches of four: the cumulative average of the batch means is the mean of all eight
    with torch.no_grad():
        conv = model.layers[0].conv(tiny_data.train.images.float() / 255)
    torch.testing.assert_close(bn.running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_finetune_follows_the_trainings_mixed_precision(tiny_space: SearchSpace,
                                                        tiny_data: PreparedData) -> None:
    """A candidate's fine-tuning autocasts as ``fit`` does: bfloat16 on the CPU with amp, float32
    without; the weights stay float32 and move either way."""
    from nas.supernet.inherit import finetune

    for amp, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        torch.manual_seed(0)
        model = build_model(to_arch(tiny_space, tiny_space.baseline_choices(), 3))
        before = model.layers[0].conv.weight.detach().clone()
        seen: set[torch.dtype] = set()
        model.layers[0].conv.register_forward_hook(lambda m, i, o, seen=seen: seen.add(o.dtype))
        loss = finetune(model, tiny_data, recipe(amp=amp), steps=2)
        assert seen == {dtype} and math.isfinite(loss) and loss > 0
        weight = model.layers[0].conv.weight
        assert weight.dtype == torch.float32 and not torch.equal(weight, before)


def sampler_of(space: SearchSpace, rule: str) -> PathSampler:
    sizes = option_sizes(space, 3) if rule == "sandwich" else None
    return PathSampler(space, rule, sizes=sizes)


def test_sandwich_runs_the_largest_the_smallest_and_uniform_paths(
        tiny_space: SearchSpace) -> None:  # fmt: skip
    sampler = PathSampler(tiny_space, "sandwich", seed=1, sizes=option_sizes(tiny_space, 3),
                          n_random=2)  # fmt: skip
    for step in range(6):
        paths = sampler.paths(step)
        assert len(paths) == 4 and paths[:2] == sampler.paths(0)[:2]
        size = [count_params(build_model(to_arch(tiny_space, p, 3))) for p in paths]
        assert size[0] == max(size) and size[1] == min(size) and size[0] > size[1]
    random_paths = [tuple(sorted(p.items())) for s in range(6) for p in sampler.paths(s)[2:]]
    assert len(set(random_paths)) > 2  # drawn per step and draw
    again = PathSampler(tiny_space, "sandwich", seed=1, sizes=option_sizes(tiny_space, 3))
    assert [again.paths(s) for s in range(6)] == [sampler.paths(s) for s in range(6)]
    assert PathSampler(tiny_space, "fair").paths(2) == [PathSampler(tiny_space, "fair").path(2)]
    with pytest.raises(ValueError, match="sandwich needs the options' sizes"):
        PathSampler(tiny_space, "sandwich")


def test_inplace_distillation_changes_the_update(tiny_space: SearchSpace,
                                                 tiny_data: PreparedData,
                                                 tmp_path: Path) -> None:  # fmt: skip
    cfg = recipe(epochs=1)
    states = []
    for weight in (0.0, 1.0):
        net = supernet_of(tiny_space)
        run = train_supernet(net, tiny_data, cfg, sampler_of(tiny_space, "sandwich"),
                             checkpoint=tmp_path / f"w{weight}.pt", checkpoint_every=10,
                             fingerprint={}, distill_weight=weight)  # fmt: skip
        assert run.steps == 2 and all(math.isfinite(sum(r[3:])) for r in run.history)
        states.append(net.state_dict())
    assert any(not torch.equal(v, states[1][k]) for k, v in states[0].items()
               if v.is_floating_point())  # fmt: skip


@pytest.mark.parametrize("rule", ["fair", "sandwich"])
def test_resume_after_a_kill_ends_in_the_uninterrupted_state(
    tiny_space: SearchSpace, tiny_data: PreparedData, tmp_path: Path, rule: str
) -> None:
    cfg = recipe()  # 2 epochs x 2 steps

    def run(ckpt: Path, on_step: Any = None) -> tuple[SuperNet, Any]:
        net = supernet_of(tiny_space)
        result = train_supernet(net, tiny_data, cfg, sampler_of(tiny_space, rule),
                                checkpoint=ckpt, checkpoint_every=1, fingerprint={"a": 1},
                                on_step=on_step, distill_weight=1.0)  # fmt: skip
        return net, result

    reference, ref_run = run(tmp_path / "a.pt")

    class Killed(Exception):
        pass

    def kill(step: int) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run(tmp_path / "b.pt", kill)
    resumed, res_run = run(tmp_path / "b.pt")
    assert res_run.resumed_from == 3 and res_run.steps == ref_run.steps == 4
    assert res_run.history == ref_run.history
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    with pytest.raises(SupernetError, match="differs in \\['a'\\]"):
        train_supernet(supernet_of(tiny_space), tiny_data, cfg, PathSampler(tiny_space, "fair"),
                       checkpoint=tmp_path / "b.pt", checkpoint_every=1,
                       fingerprint={"a": 2})  # fmt: skip


def test_evaluator_prepares_once_records_and_scores(
    tiny_space: SearchSpace, tiny_data: PreparedData, tmp_path: Path
) -> None:
    cfg = recipe(epochs=1)
    study = optuna.create_study()
    evaluator = make_evaluator({"name": "supernet", "epochs": 1, "bn_batches": 1})
    assert isinstance(evaluator, SupernetEvaluator)
    ctx = EvalContext(tiny_space, tiny_data, cfg, tmp_path, study, nc=3)
    evaluator.prepare(ctx)
    record = study.user_attrs["supernet"]
    assert record["steps"] == 2 and record["resumed_from"] == 0 and record["train_seconds"] > 0
    folder = tmp_path / "supernet"
    assert {"ckpt.pt", "loss.csv", "loss.png"} <= {p.name for p in folder.iterdir()}
    assert len((folder / "loss.csv").read_text().splitlines()) == 3
    choices = tiny_space.complete(LIGHT)
    model = build_model(to_arch(tiny_space, choices, 3))
    score = evaluator.score(model, choices, data=tiny_data, train=cfg)
    # the default score: the validation loss of the inherited, recalibrated model, negated
    assert score.map50_95 is None and score.epochs == 0
    assert score.proxy == pytest.approx(-validation_loss(model, tiny_data,
                                                         batch_size=cfg.eval_batch_size))
    assert score.attrs["supernet_val_loss"] == pytest.approx(-score.proxy, abs=1e-5)
    assert score.attrs["evaluator"] == "supernet" and score.attrs["supernet_steps"] == 2
    by_map = make_evaluator({"name": "supernet", "epochs": 1, "bn_batches": 1,
                             "score": "map50_95"})  # fmt: skip
    by_map.prepare(ctx)
    score = by_map.score(model, choices, data=tiny_data, train=cfg)
    assert score.proxy is None and 0 <= score.map50_95 <= score.map50 <= 1
    again = make_evaluator({"name": "supernet", "epochs": 1, "bn_batches": 1})
    again.prepare(ctx)  # a second process: loads the finished supernet, trains nothing
    assert study.user_attrs["supernet"]["resumed_from"] == 2


@pytest.mark.parametrize(("threads", "expected"), [(None, "cores"), (1, 1)])
def test_supernet_trains_on_every_usable_core_unless_pinned(
    tiny_space: SearchSpace, tiny_data: PreparedData, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, threads: int | None, expected: object,
) -> None:
    """The other workers wait for the supernet, so its training takes the host's cores, not a
    worker's one-thread share (``train.threads``); ``evaluator.threads`` pins it."""
    import nas.supernet.evaluator as module

    class Seen(Exception):
        pass

    def spy(supernet: object, data: object, cfg: object, *args: object, **kwargs: object) -> None:
        raise Seen(cfg.threads)  # type: ignore[attr-defined]

    monkeypatch.setattr(module, "train_supernet", spy)
    monkeypatch.setattr(module, "usable_cores", lambda: 7)
    evaluator = make_evaluator({"name": "supernet", "epochs": 1, "threads": threads})
    ctx = EvalContext(tiny_space, tiny_data, recipe(epochs=1, threads=1), tmp_path, None, nc=3)
    with pytest.raises(Seen) as seen:
        evaluator.prepare(ctx)
    assert seen.value.args[0] == (7 if expected == "cores" else expected)
    with pytest.raises(ValueError, match="threads=0 must be null"):
        SupernetSettings(threads=0)


def test_settings_reject_unknown_keys_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]; valid: \['epochs', "):
        make_evaluator({"name": "supernet", "epoch": 3})
    with pytest.raises(ValueError, match=r"sampling='bignas'; valid: \['fair', 'sandwich', "
                                         r"'uniform'\]"):
        SupernetSettings(sampling="bignas")
    with pytest.raises(ValueError, match=r"balance='paths'; valid: \['options', 'weights'\]"):
        SupernetSettings(balance="paths")
    with pytest.raises(ValueError, match=r"score='map'; valid: \['val_loss', 'map50_95'\]"):
        SupernetSettings(score="map")
    with pytest.raises(ValueError, match="inplace_distill=-1"):
        SupernetSettings(sampling="sandwich", inplace_distill=-1)
    with pytest.raises(ValueError, match="bn_batches=-1"):
        SupernetSettings.from_dict({"bn_batches": -1})
    shipped = (REPO / "conf" / "evaluator" / "supernet.yaml").read_text()
    import yaml

    values = yaml.safe_load(shipped)["evaluator"]  # the option sets the global package
    assert values.pop("name") == "supernet"
    assert SupernetSettings.from_dict(values) == SupernetSettings()


@pytest.mark.parametrize("name", ["standalone", "supernet"])
def test_evaluator_group_composes_and_builds(name: str) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[f"evaluator={name}"])
    values = OmegaConf.to_container(cfg.evaluator, resolve=True)
    assert make_evaluator(values).name == name  # type: ignore[arg-type]
