"""The Optuna study: storage resolution, samplers, enqueued designs, the trial loop.

- Storage: ``nas.search.storage`` (``journal_path``, ``resolve_storage``, ``open_study``),
  re-exported here.
- Resume: re-running the same command loads the study and runs until ``n_trials`` candidates
  really finished (distinct designs: a sample that repeats a scored design copies its score
  and does not count; if the sampler's last ``n_trials`` samples were all copies, rung 0
  ends). Trials left RUNNING by a dead process are failed and enqueued again, and
  workers sharing a journal file take a file lock to ask for a trial (``nas.search.workers``).

Example:
    >>> from nas.search.study import journal_path
    >>> journal_path(None, "demo", "results").as_posix()
    'results/demo/journal.log'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.data import DataConfig
from nas.errors import ConfigError
from nas.search import attrs as A
from nas.search.artifacts import drop_weights_off_front, keep_policy
from nas.search.evaluators import EvalContext, evaluator_names, make_evaluator
from nas.search.objective import (
    Objectives,
    TrialContext,
    TrialOutcome,
    TrialSettings,
    run_trial,
)
from nas.search.optuna_api import set_system_attr
from nas.search.promotion import (
    enqueue_promotion,
    is_candidate,
    pending_promotions,
    sampler_exhausted,
    settled,
)
from nas.search.rungs import RungSchedule
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
from nas.train import TrainConfig

__all__ = [
    "default_sampler",
    "enqueue_designs",
    "journal_path",
    "open_study",
    "resolve_storage",
    "run_search",
    "SearchSettings",
]


logger = logging.getLogger(__name__)
PROMOTION_POLL_S = 2.0  # how often a worker waiting for another's trial to close a rung looks


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
    if study.user_attrs.get(A.DESIGNS_ENQUEUED):
        return []
    designs = {"baseline": space.baseline_choices(), **space.seeds}
    for name, choices in designs.items():
        study.enqueue_trial(space.suggested(choices), user_attrs={A.DESIGN: name})
    study.set_user_attr(A.DESIGNS_ENQUEUED, list(designs))
    return list(designs)


@dataclass
class SearchSettings:
    """Everything ``run_search`` needs (built from the Hydra config by ``nas.search.__main__``).

    Attributes:
        study_name: the study's name (also the results folder's name).
        n_trials: candidates wanted in the study (distinct designs finished at rung 0; copies
            and promotions to higher rungs come on top; resuming continues up to it).
        storage: storage setting (see ``resolve_storage``); None = journal file in results.
        results_dir: parent of ``<study_name>/`` (trials.csv, plots, front/, artifacts/).
        space_path: the search-space YAML file.
        budget_overrides: non-None values replace the space file's budgets.
        objectives: what is maximised / minimised.
        data: a ``nas.data.DataConfig``.
        train: a ``nas.train.TrainConfig``.
        sampler: the Optuna sampler (None: Optuna's default).
        pruner: the Optuna pruner (None: no pruning).
        trial: per-trial options.
        rungs: the multi-fidelity schedule (one rung: a plain search).
        evaluator: the evaluator's config (``{"name": ..., **settings}``; None: standalone).
        write_results: write trials.csv, the plots and front/ at the end (a launched worker
            does not: its launcher does, once, when every worker finished).
    """

    study_name: str
    n_trials: int
    space_path: Path
    data: DataConfig
    train: TrainConfig
    storage: str | None = None
    results_dir: Path = Path("results")
    budget_overrides: dict[str, float | None] = field(default_factory=dict)
    objectives: Objectives = field(default_factory=Objectives)
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    trial: TrialSettings = field(default_factory=TrialSettings)
    rungs: RungSchedule = field(default_factory=RungSchedule)
    evaluator: dict[str, Any] | None = None
    write_results: bool = True


def run_search(settings: SearchSettings) -> optuna.Study:
    """Run (or resume) a search until ``n_trials`` candidates finished; write the results.

    Before each new candidate, the worker promotes a finished one if the schedule says so
    (``nas.search.promotion``); the search ends when ``n_trials`` candidates finished and no
    promotion is due.

    Example:
        >>> study = run_search(settings)  # doctest: +SKIP
    """
    from nas.search.results import write_results

    space = load_space(settings.space_path)
    space = replace(space, budgets=space.budgets.merged(settings.budget_overrides))
    if settings.n_trials < 1:
        raise ConfigError(f"n_trials: must be >= 1, got {settings.n_trials}")
    if (
        settings.pruner is not None
        and not settings.objectives.single
        and not isinstance(settings.pruner, optuna.pruners.NopPruner)
    ):
        raise ValueError(
            "pruners work only in single-objective studies: use objectives=map_under_budget "
            "with pruner=hyperband|sha, or pruner=none"
        )
    if _has_pruner(settings.pruner) and settings.rungs.top > 0:
        raise ValueError(
            "pruners and rungs are two ways of stopping weak candidates early: use rungs=single "
            "with a pruner, or pruner=none with rungs"
        )
    _check_rung_evaluators(settings.rungs)
    if settings.trial.latency.runtime == "onnxruntime":  # up front, not as every trial's FAIL
        import nas.deploy  # noqa: F401 - the [deploy] extra, or one line that names it
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
        logger.warning("marked interrupted trials %s as FAIL", failed)
    if designs:
        logger.info("enqueued designs: %s", ", ".join(designs))
    study.set_user_attr(A.SCHEDULE, _schedule_record(settings.rungs))
    logger.info(
        "study %r in %s (optuna-dashboard %s); %d/%d candidates done",
        settings.study_name, url, url, _done(study, stale), settings.n_trials,
    )

    ctx = _make_context(settings, space, out_dir, study)
    directions = settings.objectives.directions
    warned = False
    while True:
        trial = None
        with study_lock(lock):
            failed = fail_stale_trials(study, stale, locked=lock is not None)  # died since
            promoted = enqueue_promotion(study, settings.rungs, directions, settings.n_trials)
            closed = _rung0_closed(study, stale, settings.n_trials)
            idle = promoted is None and not pending_promotions(study) and closed is not None
            if idle and settled(study, settings.rungs, directions, settings.n_trials):
                break
            if not idle:
                trial = study.ask()
                set_system_attr(study, trial, WORKER_ATTR, worker_id())
        if failed:
            logger.warning("marked interrupted trials %s as FAIL (their workers died)", failed)
        if closed == "exhausted" and not warned:
            warned = True
            logger.warning("the sampler proposed only designs already scored in its last %d "
                           "samples: rung 0 ends with %d candidates", settings.n_trials,
                           _done(study, stale))  # fmt: skip
        if trial is None:  # another worker's trial still decides a promote_after_all rung
            time.sleep(PROMOTION_POLL_S)
            continue
        started = time.perf_counter()
        with Heartbeat(study, trial):
            outcome = _evaluate(trial, ctx)
        frozen = study.tell(trial, outcome.values, state=outcome.state, skip_if_finished=True)
        keep = keep_policy(ctx.settings.keep_weights)
        if frozen.state == TrialState.COMPLETE and keep == "front":
            with study_lock(lock):
                drop_weights_off_front(study, ctx.store, settings.objectives.directions)
        _progress(study, frozen, settings, time.perf_counter() - started, stale)
    if settings.write_results:
        write_results(study, out_dir, settings.objectives, space=space,
                      top_rung=settings.rungs.top)
    return study


def _check_rung_evaluators(schedule: RungSchedule) -> None:
    """Every evaluator a rung names is registered (one line naming the key otherwise)."""
    for i, rung in enumerate(schedule.rungs):
        if rung.evaluator is not None and rung.evaluator not in evaluator_names():
            raise ConfigError(f"rungs.rungs.{i}.evaluator: {rung.evaluator!r}; valid: "
                              f"{evaluator_names()} or null (the study's evaluator)")


def _has_pruner(pruner: optuna.pruners.BasePruner | None) -> bool:
    return pruner is not None and not isinstance(pruner, optuna.pruners.NopPruner)


def _done(study: optuna.Study, stale: float) -> int:
    """Candidates that count towards ``n_trials`` (promotions and copies do not)."""
    return counted_trials(study, stale, where=is_candidate)


def _rung0_closed(study: optuna.Study, stale: float, n_trials: int) -> str | None:
    """Why no new candidate is asked for: ``"done"`` (``n_trials`` counted), ``"exhausted"``
    (the sampler's last ``n_trials`` samples were copies), or None (ask on)."""
    if _done(study, stale) >= n_trials:
        return "done"
    return "exhausted" if sampler_exhausted(study.get_trials(deepcopy=False), n_trials) else None


def _schedule_record(schedule: RungSchedule) -> dict[str, Any]:
    """The schedule as a study attribute (shown in optuna-dashboard, read by the results)."""
    return {
        "eta": schedule.eta,
        "top": schedule.top,
        "rungs": [{"train": dict(r.train), "data": dict(r.data), "seeds": r.seeds,
                   "evaluator": r.evaluator, "promote_at_most": r.promote_at_most,
                   "promote_after_all": r.promote_after_all,
                   "promote_designs": r.promote_designs} for r in schedule.rungs],
    }


def _make_context(
    settings: SearchSettings, space: SearchSpace, out_dir: Path, study: optuna.Study
) -> TrialContext:
    from nas.data import prepare_data

    data = prepare_data(settings.data, settings.train.imgsz, settings.train.device)
    evaluator = make_evaluator(settings.evaluator)
    ctx = TrialContext(
        space=space,
        objectives=settings.objectives,
        data=data,
        train=settings.train,
        settings=settings.trial,
        artifact_dir=out_dir / "artifacts",
        nc=len(data.names),
        evaluator=evaluator,
        schedule=settings.rungs,
        data_config=settings.data,
    )
    evaluator.prepare(EvalContext(space=space, data=data, train=settings.train, out_dir=out_dir,
                                  study=study, nc=ctx.nc, progress=settings.trial.progress))
    return ctx


def _evaluate(trial: optuna.Trial, ctx: TrialContext) -> TrialOutcome:
    """``run_trial`` with every failure turned into a FAIL outcome that names the reason."""
    try:
        return run_trial(trial, ctx)
    except optuna.TrialPruned as e:
        trial.set_user_attr(A.PRUNE_REASON, str(e) or "pruned")
        return TrialOutcome(TrialState.PRUNED, reason=str(e))
    except Exception as e:  # noqa: BLE001 - a bad candidate must not stop the study
        if isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        reason = f"{type(e).__name__}: {e}"[:2000]
        trial.set_user_attr(A.FAIL_REASON, reason)
        return TrialOutcome(TrialState.FAIL, reason=reason)


def _progress(
    study: optuna.Study,
    trial: FrozenTrial,
    settings: SearchSettings,
    seconds: float,
    stale: float,
) -> None:
    """One log line per finished trial."""
    a = trial.user_attrs
    parts = [f"[{_done(study, stale)}/{settings.n_trials}] trial {trial.number} "
             f"{trial.state.name}"]
    if a.get(A.RUNG, 0):
        parts.append(f"rung {a[A.RUNG]} (from trial {a.get(A.PROMOTED_FROM)})")
    if A.DESIGN in a:
        parts.append(f"({a[A.DESIGN]})")
    if A.PARAMS in a:
        parts.append(f"params={a[A.PARAMS] / 1e6:.3f}M gflops={a[A.GFLOPS]:.2f}")
    if A.MAP50_95 in a:
        sd = a.get(A.MAP50_95_SD)
        spread = f" sd {sd:.4f} over {a.get(A.N_SEEDS)} seeds" if sd is not None else ""
        parts.append(f"mAP50-95={a[A.MAP50_95]:.4f}{spread} mAP50={a[A.MAP50]:.4f}")
    elif A.PROXY in a:
        parts.append(f"{a.get(A.EVALUATOR)}={a[A.PROXY]:.3f}")
    if A.DUPLICATE_OF in a:
        parts.append(f"(copy of trial {a[A.DUPLICATE_OF]})")
    reason = next((a[r] for r in A.REASONS if a.get(r)), None)
    if reason and trial.state != TrialState.COMPLETE:
        parts.append(f"- {reason}")
    parts.append(f"[{seconds:.1f} s]")
    logger.info(" ".join(parts))
