"""The Optuna study: storage resolution, samplers, enqueued designs, the trial loop.

- Storage: ``nas.search.storage`` (``journal_path``, ``resolve_storage``, ``open_study``),
  re-exported here.
- Resume: re-running the same command loads the study and runs until ``n_trials`` trials
  really finished. Trials left RUNNING by a dead process are failed and enqueued again, and
  workers sharing a journal file take a file lock to ask for a trial (``nas.search.workers``).

Example:
    >>> from nas.search.study import journal_path
    >>> journal_path(None, "demo", "results").as_posix()
    'results/demo/journal.log'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.search.objective import (
    Objectives,
    TrialContext,
    TrialOutcome,
    TrialSettings,
    run_trial,
)
from nas.search.space import SearchSpace, load_space
from nas.search.storage import (
    _JOURNAL_SUFFIXES,  # noqa: F401 - re-exported
    journal_path,
    open_study,
    resolve_storage,
)
from nas.search.workers import (
    WORKER_ATTR,
    Heartbeat,
    counted_trials,
    fail_stale_trials,
    lock_for,
    study_lock,
    worker_id,
)

__all__ = [
    "default_sampler",
    "enqueue_designs",
    "journal_path",
    "open_study",
    "resolve_storage",
    "run_search",
    "SearchSettings",
]


def default_sampler(seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Optuna 5's default sampler (what ``create_study`` picks without one), seeded.

    In Optuna 5.0 that is ``TPESampler()`` for single- and multi-objective studies alike
    (independent TPE for several objectives, multivariate for one).
    """
    return optuna.samplers.TPESampler(seed=seed)


def enqueue_designs(study: optuna.Study, space: SearchSpace) -> list[str]:
    """Enqueue the baseline and the space's seed designs, once per study; their names.

    A study user attribute (``designs_enqueued``) records that it was done, so resuming or a
    second worker does not enqueue them again (call under ``study_lock`` when workers may
    start together).
    """
    if study.user_attrs.get("designs_enqueued"):
        return []
    designs = {"baseline": space.baseline_choices(), **space.seeds}
    for name, choices in designs.items():
        study.enqueue_trial(space.suggested(choices), user_attrs={"design": name})
    study.set_user_attr("designs_enqueued", list(designs))
    return list(designs)


@dataclass
class SearchSettings:
    """Everything ``run_search`` needs (built from the Hydra config by ``nas.search.__main__``).

    Attributes:
        study_name: the study's name (also the results folder's name).
        n_trials: finished trials wanted in the study (resuming continues up to it).
        storage: storage setting (see ``resolve_storage``); None = journal file in results.
        seed: seed of the sampler (already applied) and of training.
        results_dir: parent of ``<study_name>/`` (trials.csv, plots, front/, artifacts/).
        space_path: the search-space YAML file.
        budget_overrides: non-None values replace the space file's budgets.
        objectives: what is maximised / minimised.
        data: a ``nas.data.DataConfig``.
        train: a ``nas.train.TrainConfig``.
        sampler: the Optuna sampler (None: Optuna's default).
        pruner: the Optuna pruner (None: no pruning).
        trial: per-trial options.
    """

    study_name: str
    n_trials: int
    space_path: Path
    data: Any
    train: Any
    storage: str | None = None
    seed: int = 0
    results_dir: Path = Path("results")
    budget_overrides: dict[str, float | None] = field(default_factory=dict)
    objectives: Objectives = field(default_factory=Objectives)
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    trial: TrialSettings = field(default_factory=TrialSettings)


def run_search(settings: SearchSettings) -> optuna.Study:
    """Run (or resume) a search until ``n_trials`` trials finished; write the results.

    Example:
        >>> study = run_search(settings)  # doctest: +SKIP
    """
    from nas.search.results import write_results

    space = load_space(settings.space_path)
    space = replace(space, budgets=space.budgets.merged(settings.budget_overrides))
    if settings.n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {settings.n_trials}")
    if (
        settings.pruner is not None
        and not settings.objectives.single
        and not isinstance(settings.pruner, optuna.pruners.NopPruner)
    ):
        raise ValueError(
            "pruners work only in single-objective studies: use objectives=map_under_budget "
            "with pruner=hyperband|sha, or pruner=none"
        )
    train = settings.train
    if (
        settings.objectives.single
        and not isinstance(settings.pruner, optuna.pruners.NopPruner | None)
        and getattr(train, "eval_every", 1) != 1
    ):
        train = replace(train, eval_every=1)  # a pruner needs mAP after every epoch
        settings = replace(settings, train=train)
    if getattr(train, "threads", None):
        torch.set_num_threads(int(train.threads))  # counting and latency use it too
    out_dir = Path(settings.results_dir) / settings.study_name
    storage, url = resolve_storage(settings.storage, settings.study_name, settings.results_dir)
    lock = lock_for(settings.storage, settings.study_name, settings.results_dir)
    study = open_study(
        study_name=settings.study_name,
        storage=storage,
        directions=settings.objectives.directions,
        sampler=settings.sampler,
        pruner=settings.pruner or optuna.pruners.NopPruner(),
    )
    stale = settings.trial.stale_after_s
    with study_lock(lock):
        failed = fail_stale_trials(study, stale, locked=lock is not None)
        designs = enqueue_designs(study, space)
    if failed:
        print(f"[search] marked interrupted trials {failed} as FAIL")
    if designs:
        print(f"[search] enqueued designs: {', '.join(designs)}")
    print(
        f"[search] study {settings.study_name!r} in {url} "
        f"(optuna-dashboard {url}); {counted_trials(study, stale)}/{settings.n_trials} done"
    )

    ctx = _make_context(settings, space, out_dir)
    while True:
        with study_lock(lock):
            failed = fail_stale_trials(study, stale, locked=lock is not None)  # died since
            if counted_trials(study, stale) >= settings.n_trials:
                break
            trial = study.ask()
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_id())
        if failed:
            print(f"[search] marked interrupted trials {failed} as FAIL (their workers died)")
        started = time.perf_counter()
        with Heartbeat(study, trial):
            outcome = _evaluate(trial, ctx)
        frozen = study.tell(trial, outcome.values, state=outcome.state, skip_if_finished=True)
        _progress(study, frozen, settings, time.perf_counter() - started, stale)
    write_results(study, out_dir, settings.objectives, space=space)
    return study


def _make_context(settings: SearchSettings, space: SearchSpace, out_dir: Path) -> TrialContext:
    from nas.data import prepare_data

    data = prepare_data(settings.data, settings.train.imgsz, settings.train.device)
    return TrialContext(
        space=space,
        objectives=settings.objectives,
        data=data,
        train=settings.train,
        settings=settings.trial,
        artifact_dir=out_dir / "artifacts",
        nc=len(data.names),
    )


def _evaluate(trial: optuna.Trial, ctx: TrialContext) -> TrialOutcome:
    """``run_trial`` with every failure turned into a FAIL outcome that names the reason."""
    try:
        return run_trial(trial, ctx)
    except optuna.TrialPruned as e:
        trial.set_user_attr("prune_reason", str(e) or "pruned")
        return TrialOutcome(TrialState.PRUNED, reason=str(e))
    except Exception as e:  # noqa: BLE001 - a bad candidate must not stop the study
        if isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        reason = f"{type(e).__name__}: {e}"[:2000]
        trial.set_user_attr("fail_reason", reason)
        return TrialOutcome(TrialState.FAIL, reason=reason)


def _progress(
    study: optuna.Study,
    trial: FrozenTrial,
    settings: SearchSettings,
    seconds: float,
    stale: float,
) -> None:
    a = trial.user_attrs
    done = counted_trials(study, stale)
    parts = [f"[{done}/{settings.n_trials}] trial {trial.number} {trial.state.name}"]
    if "design" in a:
        parts.append(f"({a['design']})")
    if "params" in a:
        parts.append(f"params={a['params'] / 1e6:.3f}M gflops={a['gflops']:.2f}")
    if "map50_95" in a:
        parts.append(f"mAP50-95={a['map50_95']:.4f} mAP50={a['map50']:.4f}")
    if "duplicate_of" in a:
        parts.append(f"(copy of trial {a['duplicate_of']})")
    reason = a.get("reject_reason") or a.get("prune_reason") or a.get("fail_reason")
    if reason and trial.state != TrialState.COMPLETE:
        parts.append(f"- {reason}")
    parts.append(f"[{seconds:.1f} s]")
    print(" ".join(parts), flush=True)
