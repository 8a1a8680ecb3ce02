"""The study side of the multi-fidelity schedule: promotions as enqueued Optuna trials.

A promotion is a new trial enqueued with the candidate's parameters and the user attributes
``rung`` and ``promoted_from``, so it survives a crash (a WAITING trial in the storage), shows
in optuna-dashboard, and any worker picks it up with ``study.ask()``. Call
``enqueue_promotion`` under the study lock, right before asking, so two workers never
promote the same candidate twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search import attrs as A
from nas.search.rungs import (
    Evaluated,
    Progress,
    RungSchedule,
    next_promotion,
    promotions_settled,
)
from nas.search.workers import finished_counts

__all__ = [
    "enqueue_promotion",
    "evaluated",
    "is_candidate",
    "pending_promotions",
    "sampler_exhausted",
    "settled",
]

logger = logging.getLogger(__name__)


def rung_of(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(A.RUNG, 0))


def is_candidate(trial: FrozenTrial) -> bool:
    """A trial that counts towards ``n_trials``: a new candidate at rung 0, not a promotion and
    not a copy of a design the study already scored (``duplicate_of``: a sampler that proposes
    the same design again gets its score for free, and the search samples on)."""
    return rung_of(trial) == 0 and A.DUPLICATE_OF not in trial.user_attrs


def sampler_exhausted(trials: Sequence[FrozenTrial], n_trials: int | None) -> bool:
    """The last ``n_trials`` rung-0 samples were all copies: the sampler has nothing new to
    propose (a space with fewer designs, or a sampler settled on a few), so rung 0 ends with
    the candidates it has."""
    if not n_trials:
        return False
    samples = sorted((t for t in trials if rung_of(t) == 0 and finished_counts(t)),
                     key=lambda t: t.number)  # fmt: skip
    last = samples[-n_trials:]
    return len(last) == n_trials and all(A.DUPLICATE_OF in t.user_attrs for t in last)


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def evaluated(trials: Sequence[FrozenTrial]) -> list[Evaluated]:
    """The finished, feasible COMPLETE evaluations, as the schedule sees them."""
    out = []
    for t in trials:
        if t.state != TrialState.COMPLETE or t.values is None or not _feasible(t):
            continue
        key = t.user_attrs.get(A.ARCH_HASH)
        if key is None:
            continue
        out.append(Evaluated(t.number, str(key), rung_of(t), tuple(t.values),
                             t.user_attrs.get(A.DESIGN)))
    return out


def _claimed(trials: Sequence[FrozenTrial]) -> set[tuple[str, int]]:
    """(candidate, rung) pairs done, running, or queued (promotions carry the hash)."""
    claimed = set()
    for t in trials:
        key = t.user_attrs.get(A.ARCH_HASH)
        if key is not None and t.state != TrialState.FAIL:
            claimed.add((str(key), rung_of(t)))
    return claimed


def _progress(trials: Sequence[FrozenTrial], n_trials: int | None) -> Progress:
    """What ``promote_after_all`` rungs wait for: all ``n_trials`` candidates finished at rung
    0 (an interrupted one does not count: it runs again; nor does a copy) or the sampler
    exhausted, and the rungs still at work."""
    finished = sum(is_candidate(t) and finished_counts(t) for t in trials)
    busy = {rung_of(t) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    done = n_trials is not None and (finished >= n_trials or sampler_exhausted(trials, n_trials))
    return Progress(done, frozenset(busy))


def settled(study: optuna.Study, schedule: RungSchedule, directions: Sequence[str],
            n_trials: int) -> bool:  # fmt: skip
    """No promotion can come any more (see ``nas.search.rungs.promotions_settled``)."""
    trials = study.get_trials(deepcopy=False)
    return promotions_settled(evaluated(trials), _claimed(trials), schedule, directions,
                              _progress(trials, n_trials))  # fmt: skip


def pending_promotions(study: optuna.Study) -> int:
    """Promotions enqueued and not yet asked for."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sum(rung_of(t) > 0 for t in waiting)


def enqueue_promotion(
    study: optuna.Study, schedule: RungSchedule, directions: Sequence[str],
    n_trials: int | None = None,
) -> tuple[int, int] | None:
    """Enqueue the next promotion, if any: ``(trial number promoted, new rung)``.

    ``n_trials``: the candidates the search will evaluate (a ``promote_after_all`` rung 0
    closes when all have finished; None: never).
    """
    if schedule.top == 0:
        return None
    trials = study.get_trials(deepcopy=False)
    chosen = next_promotion(evaluated(trials), _claimed(trials), schedule, directions,
                            _progress(trials, n_trials))  # fmt: skip
    if chosen is None:
        return None
    item, rung = chosen
    source = next(t for t in trials if t.number == item.number)
    user_attrs = {A.RUNG: rung, A.PROMOTED_FROM: item.number, A.ARCH_HASH: item.key}
    if item.design is not None:
        user_attrs[A.DESIGN] = item.design
    study.enqueue_trial(source.params, user_attrs=user_attrs, skip_if_exists=False)
    logger.info("promoted trial %d (%s) to rung %d", item.number, item.design or "sampled", rung)
    return item.number, rung
