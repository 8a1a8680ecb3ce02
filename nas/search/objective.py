"""One search trial: sample -> build -> count -> budget check -> dedupe -> score -> record.

A trial evaluates one candidate at one rung of the multi-fidelity schedule (``nas.search.rungs``;
rung 0 for a sampled candidate, the rung it was promoted to for an enqueued promotion). It
records the attributes of ``nas.search.attrs`` (counts, the rung's mean score over its seeds
and their sd, the YAML and its hash) and, as Optuna artifacts, the model YAML and, when kept,
the weights. The outcome says how the study should close the trial (``tell``): a candidate over
a hard budget is PRUNED before training with ``reject_reason``; a candidate identical to one
finished at the same rung (same model YAML) copies its scores instead of training again.

Example:
    >>> from nas.search.objective import Objectives
    >>> Objectives(minimize=("params",)).directions
    ['maximize', 'minimize']
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from nas.search import attrs as A
from nas.search.artifacts import keep_policy, store_artifact
from nas.search.evaluators import (
    Evaluator,
    Score,
    StandaloneEvaluator,
    is_study_wide,
    make_evaluator,
)
from nas.search.rungs import RungSchedule
from nas.search.space import SearchSpace
from nas.search.wiring import to_arch

if TYPE_CHECKING:
    from nas.data import DataConfig, PreparedData
    from nas.train import TrainConfig

__all__ = [
    "LATENCY_RUNTIMES",
    "LatencySettings",
    "Objectives",
    "TrialContext",
    "TrialOutcome",
    "TrialSettings",
    "arch_hash",
    "run_trial",
]


@dataclass(frozen=True)
class Objectives:
    """What the study optimises: one metric maximised, zero or more cost metrics minimised.

    With no cost metric the study is single-objective (mAP under the hard budgets), the only
    mode where pruners apply.
    """

    maximize: str = A.MAP50_95
    minimize: tuple[str, ...] = (A.PARAMS,)

    def __post_init__(self) -> None:
        if self.maximize not in A.MAXIMIZE:
            raise ValueError(f"objectives.maximize: {self.maximize!r}; valid: {list(A.MAXIMIZE)}")
        object.__setattr__(self, "minimize", tuple(self.minimize))
        for name in self.minimize:
            if name not in A.MINIMIZE:
                raise ValueError(f"objectives.minimize: {name!r}; valid: {list(A.MINIMIZE)}")
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
    """How latency is measured for every trial (median over ``repeats``, batch ``batch``).

    ``runtime``: ``torch`` (eager PyTorch) or ``onnxruntime`` (the exported model on
    onnxruntime's CPU provider, threads pinned; needs the ``deploy`` extra).
    """

    imgsz: int = 320
    batch: int = 1
    warmup: int = 2
    repeats: int = 10
    device: str = "cpu"
    runtime: str = "torch"

    def __post_init__(self) -> None:
        if self.runtime not in LATENCY_RUNTIMES:
            raise ValueError(
                f"trial.latency.runtime: {self.runtime!r}; valid: {sorted(LATENCY_RUNTIMES)}"
            )


@dataclass(frozen=True)
class TrialSettings:
    """Per-trial options that are not training hyper-parameters."""

    keep_weights: bool | str = True  # all (true) | front | none (false)
    gflops_imgsz: int = 640
    latency: LatencySettings = field(default_factory=LatencySettings)
    stale_after_s: float = 600.0
    progress: bool = False


@dataclass
class TrialContext:
    """What every trial of one process shares.

    Attributes:
        space: the search space.
        objectives: what the study optimises.
        data: the prepared data of the base recipe (rungs that change no data key use it).
        train: the base training recipe (rungs override some of its fields).
        settings: per-trial options.
        artifact_dir: the Optuna artifact store's folder.
        nc: number of classes.
        fit: the standalone evaluator's training function (None: ``nas.train.fit``; tests).
        evaluator: how a candidate is scored (None: standalone training with ``fit``); a rung
            may name another (``Rung.evaluator``; see ``evaluator_for``).
        schedule: the rungs (default: one rung, the base recipe, one seed).
        data_config: the base data configuration, to prepare rungs whose data differ.
    """

    space: SearchSpace
    objectives: Objectives
    data: PreparedData | None
    train: TrainConfig
    settings: TrialSettings
    artifact_dir: Path
    nc: int
    fit: Callable[..., Any] | None = None
    evaluator: Evaluator | None = None
    schedule: RungSchedule = field(default_factory=RungSchedule)
    data_config: DataConfig | None = None
    _store: FileSystemArtifactStore | None = field(default=None, repr=False)
    _prepared: dict[Any, Any] = field(default_factory=dict, repr=False)
    _evaluators: dict[str, Evaluator] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.evaluator is None:
            self.evaluator = StandaloneEvaluator(self.fit)
        self._evaluators[self.evaluator.name] = self.evaluator

    def evaluator_for(self, rung: int) -> Evaluator:
        """The evaluator of ``rung``: its own (``Rung.evaluator``) or the study's."""
        name = self.schedule.rungs[rung].evaluator or self.evaluator.name
        if name not in self._evaluators:
            if name == "standalone":
                self._evaluators[name] = StandaloneEvaluator(self.fit)
            elif is_study_wide(name):
                raise ValueError(f"rung {rung}: evaluator {name!r} needs evaluator={name} "
                                 f"as the study's evaluator (it is {self.evaluator.name!r})")
            else:
                self._evaluators[name] = make_evaluator({"name": name})
        return self._evaluators[name]

    @property
    def store(self) -> FileSystemArtifactStore:
        if self._store is None:
            self.artifact_dir.mkdir(parents=True, exist_ok=True)
            self._store = FileSystemArtifactStore(str(self.artifact_dir))
        return self._store

    def recipe(self, rung: int) -> tuple[PreparedData | None, TrainConfig]:
        """The data and training recipe of ``rung`` (data prepared once per distinct recipe)."""
        spec = self.schedule.rungs[rung]
        if not spec.train and not spec.data:
            return self.data, self.train
        train = dataclasses.replace(self.train, **spec.train)
        if not spec.data and train.imgsz == self.train.imgsz:
            return self.data, train
        if self.data_config is None:
            raise ValueError(f"rung {rung} changes the data but the context has no data_config")
        key = (tuple(sorted(spec.data.items())), train.imgsz)
        if key not in self._prepared:
            from nas.data import prepare_data

            config = dataclasses.replace(self.data_config, **spec.data)
            self._prepared[key] = prepare_data(config, train.imgsz, train.device)
        return self._prepared[key], train


@dataclass(frozen=True)
class TrialOutcome:
    """How to close a trial: ``state`` and, for COMPLETE, the objective ``values``."""

    state: TrialState
    values: list[float] | None = None
    reason: str = ""


def arch_hash(yaml_text: str) -> str:
    """Identity of a candidate: sha256 (16 hex digits) of its model YAML as ``dump_arch`` writes
    it with the class count resolved (``Detect, [nc]`` hashes as ``Detect, [4]`` for ``nc: 4``),
    so a design has one hash whether its YAML names the class count or writes the number."""
    from nas.model.arch import dump_arch, load_arch

    text = dump_arch(load_arch(yaml_text).with_literal_nc())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _torch_latency(model: torch.nn.Module, lat: LatencySettings) -> tuple[float, float | None]:
    from nas.model.counting import measure_latency

    stats = measure_latency(model, imgsz=lat.imgsz, batch=lat.batch, device=lat.device,
                            warmup=lat.warmup, repeats=lat.repeats)
    return stats.median_ms, None


def _ort_latency(model: torch.nn.Module, lat: LatencySettings) -> tuple[float, float | None]:
    from nas.deploy.latency import measure_ort_latency

    stats = measure_ort_latency(model, imgsz=lat.imgsz, batch=lat.batch, warmup=lat.warmup,
                                repeats=lat.repeats, threads=torch.get_num_threads())
    return stats.median_ms, getattr(stats, "iqr_ms", None)


# runtime name -> (model, settings) -> (median ms, interquartile range ms or None)
LATENCY_RUNTIMES: dict[str, Callable[..., tuple[float, float | None]]] = {
    "torch": _torch_latency,
    "onnxruntime": _ort_latency,
}


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> TrialOutcome:
    """Evaluate one candidate at its rung; exceptions from building or training propagate.

    Raises:
        optuna.TrialPruned: a pruner stopped training (single-objective, single-rung mode).
    """
    from nas.model.arch import dump_arch
    from nas.model.counting import count_gflops, count_params
    from nas.model.detector import build_model

    rung = int(trial.user_attrs.get(A.RUNG, 0))
    if not 0 <= rung <= ctx.schedule.top:
        raise ValueError(f"trial {trial.number}: rung {rung} is not in the schedule "
                         f"(0..{ctx.schedule.top})")
    trial.set_user_attr(A.RUNG, rung)
    evaluator = ctx.evaluator_for(rung)
    trial.set_user_attr(A.EVALUATOR, evaluator.name)
    choices = ctx.space.sample(trial)
    arch = to_arch(ctx.space, choices, ctx.nc)
    text = dump_arch(arch)
    key = arch_hash(text)
    trial.set_user_attr(A.CHOICES, choices)
    trial.set_user_attr(A.ARCH_YAML, text)
    trial.set_user_attr(A.ARCH_HASH, key)
    _upload(trial, ctx, A.YAML_ARTIFACT, f"trial{trial.number}.yaml", "text/yaml",
            lambda p: p.write_text(text, encoding="utf-8"))
    twin = _finished_twin(trial, key, rung)
    if twin is not None:  # scored before: its counts and scores, nothing built or timed again
        return _copy_of(trial, ctx, twin)

    data, train = ctx.recipe(rung)
    torch.manual_seed(int(train.seed))  # the same initial weights per design and seed
    model = build_model(arch)
    lat = ctx.settings.latency
    latency, iqr = LATENCY_RUNTIMES[lat.runtime](model, lat)
    metrics: dict[str, float] = {
        A.PARAMS: float(count_params(model)),
        A.GFLOPS: float(count_gflops(model, imgsz=ctx.settings.gflops_imgsz)),
        A.LATENCY_MS: latency,
    }
    trial.set_user_attr(A.PARAMS, int(metrics[A.PARAMS]))
    trial.set_user_attr(A.GFLOPS, metrics[A.GFLOPS])
    trial.set_user_attr(A.LATENCY_MS, latency)
    trial.set_user_attr(A.LATENCY_RUNTIME, lat.runtime)
    if iqr is not None:
        trial.set_user_attr(A.LATENCY_IQR_MS, iqr)

    reason = _check_budgets(trial, ctx, metrics)
    if reason:
        trial.set_user_attr(A.REJECT_REASON, reason)
        return TrialOutcome(TrialState.PRUNED, reason=reason)

    scores = _score_seeds(trial, ctx, evaluator, arch, model, choices, data, train, rung)
    if scores[0].proxy is not None:
        return _proxy_outcome(trial, ctx, scores, metrics)
    metrics[A.MAP50] = statistics.fmean(s.map50 for s in scores)
    metrics[A.MAP50_95] = statistics.fmean(s.map50_95 for s in scores)
    per_seed = [s.map50_95 for s in scores]
    trial.set_user_attr(A.MAP50, metrics[A.MAP50])
    trial.set_user_attr(A.MAP50_95, metrics[A.MAP50_95])
    trial.set_user_attr(A.MAP50_95_SEEDS, per_seed)
    trial.set_user_attr(A.MAP50_95_SD, statistics.stdev(per_seed) if len(per_seed) > 1 else None)
    trial.set_user_attr(A.N_SEEDS, len(scores))
    trial.set_user_attr(A.TRAIN_SECONDS, float(sum(s.seconds for s in scores)))
    trial.set_user_attr(A.EPOCHS, int(scores[0].epochs))
    for name, value in scores[0].attrs.items():
        trial.set_user_attr(name, value)
    if keep_policy(ctx.settings.keep_weights) != "none":
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _upload(trial, ctx, A.WEIGHTS_ARTIFACT, f"trial{trial.number}.pt",
                "application/octet-stream", lambda p: torch.save(state, p))
    values = [metrics[n] for n in ctx.objectives.names]
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"non-finite objective values {values}")
    return TrialOutcome(TrialState.COMPLETE, values)


def _proxy_outcome(trial: optuna.Trial, ctx: TrialContext, scores: list[Score],
                   metrics: dict[str, float]) -> TrialOutcome:  # fmt: skip
    """A zero-cost rung's trial: the proxy (its mean over the rung's seeds) stands in for the
    maximised metric, a rank signal within its rung (promotions compare trials of one rung
    only); no mAP, no weights."""
    value = statistics.fmean(float(s.proxy) for s in scores)
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite proxy score {value}")
    trial.set_user_attr(A.PROXY, value)
    trial.set_user_attr(A.TRAIN_SECONDS, float(sum(s.seconds for s in scores)))
    trial.set_user_attr(A.EPOCHS, 0)
    for name, attr in scores[0].attrs.items():
        trial.set_user_attr(name, attr)
    metrics[ctx.objectives.maximize] = value
    return TrialOutcome(TrialState.COMPLETE, [metrics[n] for n in ctx.objectives.names])


def _score_seeds(
    trial: optuna.Trial,
    ctx: TrialContext,
    evaluator: Evaluator,
    arch: Any,
    model: torch.nn.Module,
    choices: Mapping[str, Any],
    data: PreparedData | None,
    train: TrainConfig,
    rung: int,
) -> list[Score]:
    """The evaluator's score for each seed of the rung; ``model`` ends with seed 0's weights."""
    from nas.model.detector import build_model

    scores = []
    for s in range(ctx.schedule.rungs[rung].seeds):
        recipe = train if s == 0 else dataclasses.replace(train, seed=int(train.seed) + s)
        if s > 0:
            torch.manual_seed(int(recipe.seed))
        candidate = model if s == 0 else build_model(arch)
        on_epoch = _pruning_callback(trial, ctx) if s == 0 else None
        scores.append(evaluator.score(candidate, choices, data=data, train=recipe,
                                      on_epoch=on_epoch, progress=ctx.settings.progress))
    return scores


def _pruning_callback(trial: optuna.Trial, ctx: TrialContext) -> Callable[[Any], None]:
    """Reports the per-epoch metric to the pruner (single objective, single rung only)."""
    prune = ctx.objectives.single and ctx.schedule.top == 0
    metric = ctx.objectives.maximize

    def on_epoch(epoch: Any) -> None:
        value = getattr(epoch, metric, None)
        trial.set_user_attr(A.LAST_EPOCH, int(epoch.epoch))
        if prune and value is not None:
            trial.report(float(value), int(epoch.epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch.epoch} ({metric}={value:.4f})")

    return on_epoch


def _check_budgets(trial: optuna.Trial, ctx: TrialContext, metrics: dict[str, float]) -> str:
    """Set one constraint per budget (feasible when <= 0); the reason of a violation or ''."""
    reasons = []
    for metric, budget_key in A.BUDGETED.items():
        budget = getattr(ctx.space.budgets, budget_key)
        if budget is None:
            continue
        excess = metrics[metric] - budget
        trial.set_constraint(budget_key, excess)
        if excess > 0:
            reasons.append(f"{metric} {metrics[metric]:.6g} > {budget_key} {budget:.6g}")
    return "over budget: " + ", ".join(reasons) if reasons else ""


def _copy_of(trial: optuna.Trial, ctx: TrialContext,
             twin: optuna.trial.FrozenTrial) -> TrialOutcome:  # fmt: skip
    """The outcome of a design ``twin`` already scored at this rung: its counts, latency and
    scores (``duplicate_of``), under this study's budgets (the same constraints)."""
    a = twin.user_attrs
    for name in (A.PARAMS, A.GFLOPS, A.LATENCY_MS, A.LATENCY_RUNTIME, A.LATENCY_IQR_MS,
                 *A.SCORES):  # fmt: skip
        if name in a:
            trial.set_user_attr(name, a[name])
    trial.set_user_attr(A.DUPLICATE_OF, twin.number)
    metrics = {name: float(a[name]) for name in A.BUDGETED}
    reason = _check_budgets(trial, ctx, metrics)
    if reason:  # budgets tightened since the twin was scored
        trial.set_user_attr(A.REJECT_REASON, reason)
        return TrialOutcome(TrialState.PRUNED, reason=reason)
    if A.PROXY in a:
        metrics[ctx.objectives.maximize] = float(a[A.PROXY])
    else:
        metrics.update({m: float(a[m]) for m in A.MAXIMIZE})
    return TrialOutcome(TrialState.COMPLETE, [metrics[n] for n in ctx.objectives.names])


def _finished_twin(
    trial: optuna.Trial, key: str, rung: int
) -> optuna.trial.FrozenTrial | None:
    """A COMPLETE trial that scored the same model YAML at the same rung (the earliest)."""
    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for other in sorted(done, key=lambda t: t.number):
        a = other.user_attrs
        if (a.get(A.ARCH_HASH) == key and int(a.get(A.RUNG, 0)) == rung
                and (A.MAP50_95 in a or A.PROXY in a) and other.number != trial.number):
            return other
    return None


def _upload(
    trial: optuna.Trial,
    ctx: TrialContext,
    attr: str,
    name: str,
    mime: str,
    write: Callable[[Path], Any],
) -> None:
    """Write a file with ``write`` and store it as the trial's artifact; its id in ``attr``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write(path)
        artifact_id = store_artifact(ctx.store, trial, path, mime, ctx.artifact_dir)
    trial.set_user_attr(attr, artifact_id)
