"""One search trial: sample -> build -> count -> budget check -> dedupe -> fit -> record.

Every trial stores as user attributes ``params``, ``gflops``, ``latency_ms``, ``map50``,
``map50_95``, ``train_seconds``, ``arch_yaml`` and ``arch_hash`` (and ``design`` for the
enqueued baseline and seeds), and as Optuna artifacts the model YAML and, when kept, the
weights. The outcome says how the study should close the trial (``tell``): a candidate over a
hard budget is PRUNED before training with ``reject_reason``; a candidate identical to a
finished one (same model YAML) copies its scores instead of training again.

Example:
    >>> from nas.search.objective import Objectives
    >>> Objectives(minimize=("params",)).directions
    ['maximize', 'minimize']
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from nas.search.space import SearchSpace
from nas.search.wiring import to_arch

__all__ = [
    "LatencySettings",
    "Objectives",
    "TrialContext",
    "TrialOutcome",
    "TrialSettings",
    "run_trial",
]

MAXIMIZE_METRICS = ("map50_95", "map50")
MINIMIZE_METRICS = ("params", "gflops", "latency_ms")
_BUDGET_KEYS = {"params": "max_params", "gflops": "max_gflops", "latency_ms": "max_latency_ms"}
_COPIED_ATTRS = ("map50", "map50_95", "train_seconds", "epochs")


@dataclass(frozen=True)
class Objectives:
    """What the study optimises: one metric maximised, zero or more cost metrics minimised.

    With no cost metric the study is single-objective (mAP under the hard budgets), the only
    mode where pruners apply.
    """

    maximize: str = "map50_95"
    minimize: tuple[str, ...] = ("params",)

    def __post_init__(self) -> None:
        if self.maximize not in MAXIMIZE_METRICS:
            raise ValueError(
                f"objectives.maximize: {self.maximize!r}; valid: {list(MAXIMIZE_METRICS)}"
            )
        object.__setattr__(self, "minimize", tuple(self.minimize))
        for name in self.minimize:
            if name not in MINIMIZE_METRICS:
                raise ValueError(
                    f"objectives.minimize: {name!r}; valid: {list(MINIMIZE_METRICS)}"
                )
        if len(set(self.minimize)) != len(self.minimize):
            raise ValueError(f"objectives.minimize: duplicate metric in {list(self.minimize)}")

    @property
    def names(self) -> list[str]:
        """Metric names in the order of the study's values."""
        return [self.maximize, *self.minimize]

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + ["minimize"] * len(self.minimize)

    @property
    def single(self) -> bool:
        return not self.minimize


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured for every trial (median over ``repeats``)."""

    imgsz: int = 320
    batch: int = 1
    warmup: int = 2
    repeats: int = 10
    device: str = "cpu"


@dataclass(frozen=True)
class TrialSettings:
    """Per-trial options that are not training hyper-parameters."""

    keep_weights: bool = True
    gflops_imgsz: int = 640
    latency: LatencySettings = field(default_factory=LatencySettings)
    stale_after_s: float = 600.0
    progress: bool = False


@dataclass
class TrialContext:
    """What every trial of one process shares: the space, data, settings and artifact store."""

    space: SearchSpace
    objectives: Objectives
    data: Any  # nas.data.PreparedData
    train: Any  # nas.train.TrainConfig
    settings: TrialSettings
    artifact_dir: Path
    nc: int
    fit: Callable[..., Any] | None = None  # nas.train.fit unless replaced (tests)
    _store: FileSystemArtifactStore | None = field(default=None, repr=False)

    @property
    def store(self) -> FileSystemArtifactStore:
        if self._store is None:
            self.artifact_dir.mkdir(parents=True, exist_ok=True)
            self._store = FileSystemArtifactStore(str(self.artifact_dir))
        return self._store


@dataclass(frozen=True)
class TrialOutcome:
    """How to close a trial: ``state`` and, for COMPLETE, the objective ``values``."""

    state: TrialState
    values: list[float] | None = None
    reason: str = ""


def arch_hash(yaml_text: str) -> str:
    """Identity of a candidate: sha256 of its dumped model YAML (16 hex digits)."""
    return hashlib.sha256(yaml_text.encode()).hexdigest()[:16]


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> TrialOutcome:
    """Evaluate one candidate; exceptions from building or training propagate to the caller.

    Raises:
        optuna.TrialPruned: a pruner stopped training (single-objective mode).
    """
    from nas.model.arch import dump_arch
    from nas.model.counting import count_gflops, count_params, measure_latency
    from nas.model.detector import build_model

    choices = ctx.space.sample(trial)
    arch = to_arch(ctx.space, choices, ctx.nc)
    text = dump_arch(arch)
    key = arch_hash(text)
    trial.set_user_attr("choices", choices)
    trial.set_user_attr("arch_yaml", text)
    trial.set_user_attr("arch_hash", key)

    torch.manual_seed(int(getattr(ctx.train, "seed", 0)))  # same initial weights per design
    model = build_model(arch)
    lat = ctx.settings.latency
    metrics: dict[str, float] = {
        "params": float(count_params(model)),
        "gflops": float(count_gflops(model, imgsz=ctx.settings.gflops_imgsz)),
        "latency_ms": measure_latency(
            model, imgsz=lat.imgsz, batch=lat.batch, device=lat.device,
            warmup=lat.warmup, repeats=lat.repeats,
        ).median_ms,
    }
    trial.set_user_attr("params", int(metrics["params"]))
    trial.set_user_attr("gflops", metrics["gflops"])
    trial.set_user_attr("latency_ms", metrics["latency_ms"])
    _upload_text(trial, ctx, text, f"trial{trial.number}.yaml", "text/yaml")

    reason = _check_budgets(trial, ctx, metrics)
    if reason:
        trial.set_user_attr("reject_reason", reason)
        return TrialOutcome(TrialState.PRUNED, reason=reason)

    twin = _finished_twin(trial, key)
    if twin is not None:
        for name in _COPIED_ATTRS:
            if name in twin.user_attrs:
                trial.set_user_attr(name, twin.user_attrs[name])
        trial.set_user_attr("duplicate_of", twin.number)
        metrics.update({m: float(twin.user_attrs[m]) for m in MAXIMIZE_METRICS})
        return TrialOutcome(TrialState.COMPLETE, [metrics[n] for n in ctx.objectives.names])

    result = _train(trial, ctx, model)
    metrics["map50"] = float(result.map50)
    metrics["map50_95"] = float(result.map50_95)
    trial.set_user_attr("map50", metrics["map50"])
    trial.set_user_attr("map50_95", metrics["map50_95"])
    trial.set_user_attr("train_seconds", float(result.train_seconds))
    trial.set_user_attr("epochs", int(result.epochs))
    if ctx.settings.keep_weights:
        _upload_weights(trial, ctx, model)
    values = [metrics[n] for n in ctx.objectives.names]
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"non-finite objective values {values}")
    return TrialOutcome(TrialState.COMPLETE, values)


def _check_budgets(trial: optuna.Trial, ctx: TrialContext, metrics: dict[str, float]) -> str:
    """Set one constraint per budget (feasible when <= 0); the reason of a violation or ''."""
    reasons = []
    for metric, budget_key in _BUDGET_KEYS.items():
        budget = getattr(ctx.space.budgets, budget_key)
        if budget is None:
            continue
        excess = metrics[metric] - budget
        trial.set_constraint(budget_key, excess)
        if excess > 0:
            reasons.append(f"{metric} {metrics[metric]:.6g} > {budget_key} {budget:.6g}")
    return "over budget: " + ", ".join(reasons) if reasons else ""


def _finished_twin(trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
    """A COMPLETE trial that trained the same model YAML (the earliest), or None."""
    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for other in sorted(done, key=lambda t: t.number):
        attrs = other.user_attrs
        if attrs.get("arch_hash") == key and "map50_95" in attrs and other.number != trial.number:
            return other
    return None


def _train(trial: optuna.Trial, ctx: TrialContext, model: torch.nn.Module) -> Any:
    fit = ctx.fit
    if fit is None:
        from nas.train import fit

    single = ctx.objectives.single
    metric = ctx.objectives.maximize

    def on_epoch(epoch: Any) -> None:
        value = getattr(epoch, metric, None)
        trial.set_user_attr("last_epoch", int(epoch.epoch))
        if single and value is not None:
            trial.report(float(value), int(epoch.epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch.epoch} ({metric}={value:.4f})")

    model.to(ctx.train.device)
    return fit(model, ctx.data, ctx.train, on_epoch=on_epoch, progress=ctx.settings.progress)


def _upload_text(trial: optuna.Trial, ctx: TrialContext, text: str, name: str, mime: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        artifact_id = upload_artifact(
            artifact_store=ctx.store, file_path=str(path), study_or_trial=trial, mimetype=mime
        )
    trial.set_user_attr("yaml_artifact", artifact_id)


def _upload_weights(trial: optuna.Trial, ctx: TrialContext, model: torch.nn.Module) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial{trial.number}.pt"
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        artifact_id = upload_artifact(
            artifact_store=ctx.store, file_path=str(path), study_or_trial=trial,
            mimetype="application/octet-stream",
        )
    trial.set_user_attr("weights_artifact", artifact_id)


def objective_values(attrs: dict[str, Any], names: Sequence[str]) -> list[float] | None:
    """The objective values recorded in a trial's user attrs (None if one is missing)."""
    try:
        return [float(attrs[n]) for n in names]
    except (KeyError, TypeError, ValueError):
        return None
