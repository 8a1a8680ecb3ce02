"""Multi-fidelity Pareto search: asynchronous successive halving over several objectives.

Every candidate is first evaluated at rung 0 (the cheapest recipe). A candidate finished at
rung ``r`` is promoted to rung ``r + 1`` (``eta`` times the budget, possibly more seeds) when it
is among the best ``floor(n_r / eta)`` of the ``n_r`` candidates finished at rung ``r``, ranked
by non-dominated sorting of the study's objectives, ties within a front broken by crowding
distance (NSGA-II's), then by trial number. As in ASHA, promotions are decided whenever a worker
asks for work, from the highest rung down, so no worker waits for a rung to fill; a candidate
is promoted at most once per rung. Designs named in ``always_promote`` (the baseline) climb every
rung, so the final answer is read against them at the same fidelity.

A rung with ``promote_after_all`` instead promotes only once it is *closed*, when every
candidate it will get has finished there (rung 0: ``n_trials`` candidates; a higher rung: the
rung below closed and its promotions finished). With a cap (``promote_at_most``) that is the
difference between the best of all candidates and the best of the first few: ASHA's early
decisions use up a cap of 3 within the first dozen of a hundred candidates scored on a supernet.

This module is pure (no Optuna, no training): ``nas.search.study`` feeds it the finished trials.

Example:
    >>> nondominated_ranks([[0.5, 3.0], [0.4, 2.0], [0.3, 2.5]], ["maximize", "minimize"])
    [0, 0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Evaluated",
    "Progress",
    "Rung",
    "RungSchedule",
    "best_first",
    "crowding_distance",
    "next_promotion",
    "nondominated_ranks",
    "promotions_settled",
]


@dataclass(frozen=True)
class Rung:
    """One fidelity level: overrides of the training recipe and the data, and seeds.

    Attributes:
        train: ``TrainConfig`` fields to override (``epochs``, ``imgsz``, ...).
        data: ``DataConfig`` fields to override (``train_subset``, ...).
        seeds: trainings per candidate (seeds ``seed .. seed + seeds - 1``); the score is their
            mean and the spread their sd.
        evaluator: the evaluator scoring this rung (``standalone``, ``supernet``; None: the
            study's ``evaluator``). A supernet search confirms its best candidates with a
            standalone top rung.
        promote_at_most: at most this many candidates leave this rung (None: ``1 / eta`` of
            them, no cap); a supernet rung scores hundreds, the next rung trains a few.
        promote_after_all: promote only once the rung is closed (search, then confirm); the
            ``always_promote`` designs leave with the others, so every worker stays on the
            rung while it is open (the top rung then trains them all together).
        promote_designs: every enqueued design (the baseline and the space's seeds) leaves
            this rung, outside the quota and the cap: a zero-cost screening rung still has the
            hand-made designs trained, so the answer is read against them.
    """

    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1
    evaluator: str | None = None
    promote_at_most: int | None = None
    promote_after_all: bool = False
    promote_designs: bool = False

    def __post_init__(self) -> None:
        if int(self.seeds) < 1:
            raise ValueError(f"rungs: seeds must be >= 1, got {self.seeds!r}")
        if self.promote_at_most is not None and int(self.promote_at_most) < 0:
            raise ValueError(f"rungs: promote_at_most must be >= 0, got {self.promote_at_most}")
        object.__setattr__(self, "train", dict(self.train or {}))
        object.__setattr__(self, "data", dict(self.data or {}))


@dataclass(frozen=True)
class RungSchedule:
    """The rungs, cheapest first, and the promotion rate.

    Attributes:
        rungs: at least one rung; a single rung is a plain (single-fidelity) search.
        eta: the best ``1 / eta`` of a rung are promoted (>= 2).
        always_promote: design names promoted at every rung regardless of rank.
    """

    rungs: tuple[Rung, ...] = (Rung(),)
    eta: int = 3
    always_promote: tuple[str, ...] = ("baseline",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rungs", tuple(self.rungs))
        object.__setattr__(self, "always_promote", tuple(self.always_promote))
        if not self.rungs:
            raise ValueError("rungs: give at least one rung")
        if int(self.eta) < 2:
            raise ValueError(f"rungs: eta must be an integer >= 2, got {self.eta!r}")

    @property
    def top(self) -> int:
        """The index of the last rung (the final answer's fidelity)."""
        return len(self.rungs) - 1


@dataclass(frozen=True)
class Evaluated:
    """A candidate's finished evaluation at one rung.

    Attributes:
        number: the trial number.
        key: the candidate's identity (its architecture hash).
        rung: the rung it was evaluated at.
        values: the objective values (in the study's order and directions).
        design: the enqueued design's name, if any.
    """

    number: int
    key: str
    rung: int
    values: tuple[float, ...]
    design: str | None = None


def _oriented(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[list[float]]:
    """Every coordinate turned to 'higher is better'."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    return [[s * float(v) for s, v in zip(signs, p, strict=True)] for p in points]


def nondominated_ranks(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """The non-dominated front index of every point (0 = the Pareto front), NSGA-II's sort."""
    pts = _oriented(points, directions)
    n = len(pts)

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    dominated_by = [[j for j in range(n) if dominates(pts[i], pts[j])] for i in range(n)]
    count = [sum(dominates(pts[j], pts[i]) for j in range(n)) for i in range(n)]
    ranks = [0] * n
    front = [i for i in range(n) if count[i] == 0]
    rank = 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = rank
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        front, rank = nxt, rank + 1
    return ranks


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance within one front (boundary points: infinity)."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    dist = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return dist


def best_first(items: Sequence[Evaluated], directions: Sequence[str]) -> list[Evaluated]:
    """``items`` ordered best first: front index, then crowding distance, then trial number."""
    points = [list(e.values) for e in items]
    ranks = nondominated_ranks(points, directions)
    crowd = [0.0] * len(items)
    for r in set(ranks):
        # identical points share one crowding distance (computed over the distinct points)
        distinct = sorted({tuple(points[i]) for i, x in enumerate(ranks) if x == r})
        dist = dict(zip(distinct, crowding_distance([list(p) for p in distinct]), strict=True))
        for i, x in enumerate(ranks):
            if x == r:
                crowd[i] = dist[tuple(points[i])]
    order = sorted(range(len(items)), key=lambda i: (ranks[i], -crowd[i], items[i].number))
    return [items[i] for i in order]


@dataclass(frozen=True)
class Progress:
    """Where the search stands, for the ``promote_after_all`` rungs.

    Attributes:
        rung0_done: all ``n_trials`` candidates have finished rung 0.
        busy: rungs with a trial running or queued.
    """

    rung0_done: bool = False
    busy: frozenset[int] = frozenset()


def _unique(evaluated: Sequence[Evaluated], rung: int) -> list[Evaluated]:
    """The first evaluation of each candidate at ``rung``."""
    seen: set[str] = set()
    unique = []
    for e in sorted((e for e in evaluated if e.rung == rung), key=lambda e: e.number):
        if e.key not in seen:
            seen.add(e.key)
            unique.append(e)
    return unique


def _chosen(ranked: list[Evaluated], rung: int, closed: bool, claimed: set[tuple[str, int]],
            schedule: RungSchedule) -> list[Evaluated]:  # fmt: skip
    """The candidates of ``rung`` (ranked best first) that belong at ``rung + 1``."""
    spec = schedule.rungs[rung]

    def forced(e: Evaluated) -> bool:  # leaves the rung whatever its rank
        return e.design in schedule.always_promote or (spec.promote_designs
                                                       and e.design is not None)

    if spec.promote_after_all and not closed:  # the forced ones too: every worker on the rung
        return []
    quota = len(ranked) // schedule.eta
    cap = spec.promote_at_most
    if cap is not None:  # a hard cap: early promotions that later fell out of the top count
        left = sum((e.key, rung + 1) in claimed for e in ranked if not forced(e))
        quota = min(quota, int(cap)) if left < int(cap) else 0
    if spec.promote_designs:  # the designs leave on top of the quota, not inside it
        return [e for e in ranked if not forced(e)][:quota] + [e for e in ranked if forced(e)]
    return ranked[:quota] + [e for e in ranked if forced(e)]


def _decisions(
    evaluated: Sequence[Evaluated],
    claimed: set[tuple[str, int]],
    schedule: RungSchedule,
    directions: Sequence[str],
    progress: Progress,
) -> tuple[list[bool], list[list[Evaluated]]]:
    """Per rung below the top: whether it is closed, and its candidates due one rung up."""
    closed: list[bool] = []
    chosen: list[list[Evaluated]] = []
    for rung in range(schedule.top):
        if rung == 0:
            is_closed = progress.rung0_done and 0 not in progress.busy
        else:  # nothing more can arrive: the rung below is closed and sent all it will send
            is_closed = (closed[-1] and rung not in progress.busy
                         and all((e.key, rung) in claimed for e in chosen[-1]))  # fmt: skip
        ranked = best_first(_unique(evaluated, rung), directions)
        closed.append(is_closed)
        chosen.append(_chosen(ranked, rung, is_closed, claimed, schedule))
    return closed, chosen


def next_promotion(
    evaluated: Sequence[Evaluated],
    claimed: set[tuple[str, int]],
    schedule: RungSchedule,
    directions: Sequence[str],
    progress: Progress = Progress(),
) -> tuple[Evaluated, int] | None:
    """The next candidate to promote and its new rung, or None (sample a new candidate).

    Args:
        evaluated: every finished, feasible evaluation of the study.
        claimed: ``(key, rung)`` pairs already evaluated, running or queued at that rung.
        schedule: the rungs and ``eta``.
        directions: the study's objective directions.
        progress: what closes the ``promote_after_all`` rungs (default: nothing yet).
    """
    _, chosen = _decisions(evaluated, claimed, schedule, directions, progress)
    for rung in range(schedule.top - 1, -1, -1):
        for e in chosen[rung]:
            if (e.key, rung + 1) not in claimed:
                return e, rung + 1
    return None


def promotions_settled(
    evaluated: Sequence[Evaluated],
    claimed: set[tuple[str, int]],
    schedule: RungSchedule,
    directions: Sequence[str],
    progress: Progress,
) -> bool:
    """No ``promote_after_all`` rung can still promote: every one of them is closed (a worker
    that finds nothing to do waits while this is False, instead of leaving the promotions to
    the last worker alone)."""
    closed, _ = _decisions(evaluated, claimed, schedule, directions, progress)
    return all(c for c, r in zip(closed, schedule.rungs, strict=False) if r.promote_after_all)
