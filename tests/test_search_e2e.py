"""The trial objective (contract tests with a stand-in trainer) and the search end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.search.objective import (
    LatencySettings,
    Objectives,
    TrialContext,
    TrialSettings,
)
from nas.search.results import front_table, pareto_mask, trials_table, write_results
from nas.search.space import parse_space
from nas.search.study import _evaluate

ROOT = Path(__file__).resolve().parents[1]
CHEAP = TrialSettings(gflops_imgsz=64, latency=LatencySettings(imgsz=64, repeats=1, warmup=0),
                      keep_weights=False)
SPACE = {"backbone": {"block": {"P3": ["C2f", "CSPPC"]}}, "neck": {"type": ["PAN"]},
         "width": [0.0625]}


class FakeFit:
    """Stands in for nas.train.fit: deterministic mAP per design, per-epoch callbacks."""

    def __init__(self, maps: list[float] | None = None, error: Exception | None = None):
        self.calls = 0
        self.maps = maps or [0.1, 0.2]
        self.error = error

    def __call__(self, model, data, cfg, *, on_epoch=None, progress=True):
        self.calls += 1
        if self.error is not None:
            raise self.error
        params = sum(p.numel() for p in model.parameters())
        for epoch, m in enumerate(self.maps, start=1):
            on_epoch(SimpleNamespace(epoch=epoch, map50=m, map50_95=m / 2, seconds=0.0))
        final = self.maps[-1] + params % 7 / 1000
        return SimpleNamespace(map50=final, map50_95=final / 2, train_seconds=1.5,
                               epochs=len(self.maps))


def make_ctx(tmp_path: Path, fit: FakeFit, *, objectives: Objectives | None = None,
             budgets: dict | None = None) -> TrialContext:
    space = parse_space({**SPACE, "budgets": budgets or {}}, source="test.yaml")
    return TrialContext(space=space, objectives=objectives or Objectives(), data=None,
                        train=SimpleNamespace(seed=0, device="cpu"), settings=CHEAP,
                        artifact_dir=tmp_path / "artifacts", nc=2, fit=fit)


def run(study: optuna.Study, ctx: TrialContext, params: dict | None = None):
    if params is not None:
        study.enqueue_trial(params)
    trial = study.ask()
    outcome = _evaluate(trial, ctx)
    return study.tell(trial, outcome.values, state=outcome.state)


def test_trial_records_attrs_and_artifact(tmp_path: Path) -> None:
    fit = FakeFit()
    ctx = make_ctx(tmp_path, fit)
    study = optuna.create_study(directions=Objectives().directions)
    t = run(study, ctx, {"backbone.block.P3": "C2f"})
    assert t.state == TrialState.COMPLETE and fit.calls == 1
    for key in ("params", "gflops", "latency_ms", "map50", "map50_95", "train_seconds",
                "arch_yaml", "arch_hash", "yaml_artifact"):
        assert key in t.user_attrs, key
    assert t.values == [t.user_attrs["map50_95"], t.user_attrs["params"]]
    assert "C2f" in t.user_attrs["arch_yaml"]
    assert any((tmp_path / "artifacts").iterdir())


def test_identical_candidate_is_not_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy takes its twin's scores, counts and latency: no training, no latency run."""
    from nas.search import objective

    timed = []
    torch_latency = objective.LATENCY_RUNTIMES["torch"]
    monkeypatch.setitem(objective.LATENCY_RUNTIMES, "torch",
                        lambda *a: timed.append(1) or torch_latency(*a))  # fmt: skip
    fit = FakeFit()
    ctx = make_ctx(tmp_path, fit)
    study = optuna.create_study(directions=Objectives().directions)
    first = run(study, ctx, {"backbone.block.P3": "CSPPC"})
    second = run(study, ctx, {"backbone.block.P3": "CSPPC"})
    assert fit.calls == 1 and len(timed) == 1
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.values == first.values
    for key in ("params", "gflops", "latency_ms", "map50_95", "arch_hash"):
        assert second.user_attrs[key] == first.user_attrs[key], key
    assert second.user_attrs["yaml_artifact"] != first.user_attrs["yaml_artifact"]  # its own


def test_a_copy_is_held_to_the_studys_current_budgets(tmp_path: Path) -> None:
    """A design scored before budgets were tightened (a resumed study with new limits) is not
    copied back as feasible: the copy is PRUNED like a new candidate over budget."""
    fit = FakeFit()
    study = optuna.create_study(directions=Objectives().directions)
    first = run(study, make_ctx(tmp_path, fit), {"backbone.block.P3": "CSPPC"})
    tight = make_ctx(tmp_path, fit, budgets={"max_params": 1.0e5})
    second = run(study, tight, {"backbone.block.P3": "CSPPC"})
    assert first.state == TrialState.COMPLETE and second.state == TrialState.PRUNED
    assert second.user_attrs["duplicate_of"] == first.number and fit.calls == 1
    assert "over budget: params" in second.user_attrs["reject_reason"]


def test_over_budget_is_rejected_before_training(tmp_path: Path) -> None:
    fit = FakeFit()
    ctx = make_ctx(tmp_path, fit, budgets={"max_params": 1.0e5})
    study = optuna.create_study(directions=Objectives().directions)
    t = run(study, ctx, {"backbone.block.P3": "C2f"})
    assert t.state == TrialState.PRUNED and fit.calls == 0
    assert "over budget: params" in t.user_attrs["reject_reason"]
    assert t.constraints["max_params"] > 0


def test_within_budget_sets_feasible_constraint(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, FakeFit(), budgets={"max_params": 9.0e6, "max_gflops": 100})
    study = optuna.create_study(directions=Objectives().directions)
    t = run(study, ctx, {"backbone.block.P3": "C2f"})
    assert t.state == TrialState.COMPLETE
    assert set(t.constraints) == {"max_params", "max_gflops"}
    assert all(c <= 0 for c in t.constraints.values())


def test_failure_is_recorded_with_reason(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, FakeFit(error=FloatingPointError("loss is NaN at epoch 1")))
    study = optuna.create_study(directions=Objectives().directions)
    t = run(study, ctx)
    assert t.state == TrialState.FAIL
    assert t.user_attrs["fail_reason"] == "FloatingPointError: loss is NaN at epoch 1"


def test_single_objective_prunes_from_epoch_map(tmp_path: Path) -> None:
    single = Objectives(minimize=())
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    )
    good = make_ctx(tmp_path, FakeFit(maps=[0.8, 0.9, 0.95]), objectives=single)
    assert run(study, good, {"backbone.block.P3": "C2f"}).state == TrialState.COMPLETE
    bad = FakeFit(maps=[0.01, 0.02, 0.03])
    t = run(study, make_ctx(tmp_path, bad, objectives=single), {"backbone.block.P3": "CSPPC"})
    assert t.state == TrialState.PRUNED
    assert "pruned at epoch 1" in t.user_attrs["prune_reason"]
    assert t.intermediate_values == {1: 0.005}


def test_pareto_mask() -> None:
    pts = [[0.5, 3.0], [0.4, 2.0], [0.3, 2.5], [0.5, 3.0], [0.6, 3.5]]
    assert pareto_mask(pts, ["maximize", "minimize"]) == [True, True, False, True, True]


def test_results_files(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, FakeFit())
    study = optuna.create_study(directions=Objectives().directions)
    run(study, ctx, {"backbone.block.P3": "C2f"})
    study.set_user_attr("x", 1)
    run(study, ctx, {"backbone.block.P3": "CSPPC"})
    paths = write_results(study, tmp_path / "out", Objectives(), space=ctx.space, show=False)
    trials = pd.read_csv(paths["trials"])
    for col in ("number", "state", "params", "gflops", "map50", "map50_95",
                "param_backbone.block.P3"):
        assert col in trials.columns
    front = front_table(trials_table(study), Objectives())
    assert list(pd.read_csv(paths["pareto"])["number"]) == list(front["number"])
    assert len(list((tmp_path / "out" / "front").glob("yolov8n-trial*.yaml"))) == len(front)
    for key in ("plot_params", "plot_gflops"):
        assert paths[key].read_bytes()[:4] == b"\x89PNG"


def _run_search(tmp_path: Path, *overrides: str, timeout: float = 600
                ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", f"results_dir={tmp_path}",
           *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_search_end_to_end(tmp_path: Path) -> None:
    proc = _run_search(tmp_path, "n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "quick"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3
    assert list(trials["design"].iloc[:2]) == ["baseline", "light"]
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert (out / "pareto.csv").is_file() and (out / "pareto_params.png").is_file()
    assert list((out / "front").glob("*.yaml"))
    assert "mAP50-95" in proc.stdout and "[3/3]" in proc.stdout
