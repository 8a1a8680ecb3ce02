"""Multi-fidelity search: non-dominated sorting, promotions, rungs with a fake trainer, resume."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from conftest import candidates
from optuna.trial import TrialState

from nas.search import attrs as A
from nas.search.objective import LatencySettings, Objectives, TrialContext, TrialSettings
from nas.search.optuna_api import set_system_attr
from nas.search.promotion import (
    enqueue_promotion,
    evaluated,
    is_candidate,
    pending_promotions,
    sampler_exhausted,
)
from nas.search.results import front_table, summary_text, trials_table
from nas.search.rungs import (
    Evaluated,
    Progress,
    Rung,
    RungSchedule,
    best_first,
    crowding_distance,
    next_promotion,
    nondominated_ranks,
    promotions_settled,
)
from nas.search.space import parse_space
from nas.search.study import _evaluate, enqueue_designs
from nas.search.workers import WORKER_ATTR, fail_stale_trials
from nas.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DIRS = ["maximize", "minimize"]
CHEAP = TrialSettings(gflops_imgsz=64, latency=LatencySettings(imgsz=64, repeats=1, warmup=0),
                      keep_weights=False)
# 2 x 2 x 2 = 8 candidates
SPACE = {"backbone": {"block": {"P3": ["C2f", "CSPPC"], "P4": ["C2f", "C2fGhost"]},
                      "downsample": {"P5": ["Conv", "ADown"]}},
         "width": [0.0625]}


# ---------------------------------------------------------------- non-dominated sorting


def test_rank_zero_is_optunas_pareto_front() -> None:
    rng = random.Random(0)
    for n_obj in (2, 3):
        directions = ["maximize"] + ["minimize"] * (n_obj - 1)
        study = optuna.create_study(directions=directions)
        # a coarse grid makes ties and duplicates frequent
        points = [[rng.randint(0, 5) for _ in range(n_obj)] for _ in range(60)]
        for p in points:
            study.add_trial(optuna.trial.create_trial(values=p, state=TrialState.COMPLETE))
        ranks = nondominated_ranks(points, directions)
        assert {i for i, r in enumerate(ranks) if r == 0} == {t.number for t in study.best_trials}
        # every point of front k+1 is dominated by some point of front k
        for i, r in enumerate(ranks):
            if r > 0:
                assert any(ranks[j] == r - 1 and _dominates(points[j], points[i], directions)
                           for j in range(len(points)))


def _dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    s = [1 if d == "maximize" else -1 for d in directions]
    a2, b2 = [x * k for x, k in zip(a, s, strict=True)], [x * k for x, k in zip(b, s, strict=True)]
    return all(x >= y for x, y in zip(a2, b2, strict=True)) and a2 != b2


def test_crowding_distance_known_values() -> None:
    d = crowding_distance([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == pytest.approx(3 / 4 + 3 / 4) and d[2] == pytest.approx(3 / 4 + 3 / 4)
    assert all(math.isinf(x) for x in crowding_distance([[1.0, 2.0], [2.0, 1.0]]))


def test_best_first_breaks_ties_by_crowding_then_number() -> None:
    items = [Evaluated(n, f"k{n}", 0, v) for n, v in
             enumerate([(0.5, 2.0), (0.5, 2.0), (0.3, 1.0), (0.1, 3.0), (0.4, 1.5)])]
    order = [e.number for e in best_first(items, DIRS)]
    # front 0: 0, 1 (identical), 2, 4; the boundary points (inf crowding) come first; equal
    # points keep trial order; 3 is dominated
    assert order[-1] == 3
    assert order.index(0) < order.index(1)
    assert set(order[:4]) == {0, 1, 2, 4}


# ---------------------------------------------------------------- promotion decisions


def _results(values: list[tuple[float, float]], rung: int = 0) -> list[Evaluated]:
    return [Evaluated(n, f"k{n}", rung, v) for n, v in enumerate(values)]


def test_promotes_top_fraction_best_first_and_once() -> None:
    schedule = RungSchedule((Rung(), Rung(seeds=2)), eta=3, always_promote=())
    # only the mAP differs (same params): the two best of six are promoted, best first
    done = _results([(0.1, 1.0), (0.6, 1.0), (0.3, 1.0), (0.5, 1.0), (0.2, 1.0), (0.4, 1.0)])
    claimed = {(e.key, 0) for e in done}
    first = next_promotion(done, claimed, schedule, DIRS)
    assert first is not None and (first[0].number, first[1]) == (1, 1)
    claimed.add((first[0].key, 1))
    second = next_promotion(done, claimed, schedule, DIRS)
    assert second is not None and second[0].number == 3
    claimed.add((second[0].key, 1))
    assert next_promotion(done, claimed, schedule, DIRS) is None  # quota 6 // 3 = 2 reached
    # asynchronous: with two results there is no quota yet, nothing waits for the rung
    assert next_promotion(done[:2], {("k0", 0), ("k1", 0)}, schedule, DIRS) is None


def test_always_promote_and_top_rung_is_final() -> None:
    schedule = RungSchedule((Rung(), Rung(), Rung()), eta=2)
    done = [Evaluated(0, "base", 0, (0.1, 3.0), "baseline"), Evaluated(1, "a", 0, (0.5, 1.0))]
    claimed = {("base", 0), ("a", 0)}
    got = next_promotion(done, claimed, schedule, DIRS)
    assert got is not None and got[0].number == 1  # quota 1: the better one first
    claimed.add(("a", 1))
    got = next_promotion(done, claimed, schedule, DIRS)
    assert got is not None and got[0].design == "baseline" and got[1] == 1
    # from rung 1 up the highest rung is decided first; nothing is promoted beyond the top
    done += [Evaluated(2, "a", 1, (0.6, 1.0)), Evaluated(3, "base", 1, (0.2, 3.0), "baseline")]
    claimed |= {("base", 1)}
    got = next_promotion(done, claimed, schedule, DIRS)
    assert got is not None and got[1] == 2 and got[0].number == 2
    claimed |= {("a", 2), ("base", 2)}
    assert next_promotion(done, claimed, schedule, DIRS) is None


def test_duplicate_evaluations_count_once() -> None:
    schedule = RungSchedule((Rung(), Rung()), eta=2, always_promote=())
    done = [Evaluated(0, "a", 0, (0.5, 1.0)), Evaluated(1, "a", 0, (0.5, 1.0)),
            Evaluated(2, "b", 0, (0.1, 1.0))]
    got = next_promotion(done, {("a", 0), ("b", 0)}, schedule, DIRS)
    assert got is not None and got[0].key == "a"
    assert next_promotion(done, {("a", 0), ("b", 0), ("a", 1)}, schedule, DIRS) is None


def test_promote_at_most_caps_a_rung() -> None:
    schedule = RungSchedule((Rung(promote_at_most=1), Rung()), eta=2, always_promote=())
    done = _results([(0.1 * i, 1.0) for i in range(10)])  # quota 5, capped at 1
    claimed = {(e.key, 0) for e in done}
    got = next_promotion(done, claimed, schedule, DIRS)
    assert got is not None and got[0].number == 9
    assert next_promotion(done, claimed | {("k9", 1)}, schedule, DIRS) is None


def test_promote_at_most_counts_early_promotions_that_fell_out_of_the_top() -> None:
    schedule = RungSchedule((Rung(promote_at_most=2), Rung()), eta=2, always_promote=())
    early = _results([(0.5, 1.0), (0.1, 1.0)])  # quota 1: candidate 0 leaves early
    got = next_promotion(early, {(e.key, 0) for e in early}, schedule, DIRS)
    assert got is not None and got[0].number == 0
    # later results rank above candidate 0; only one more may leave (cap 2, not 2 more)
    done = early + [Evaluated(i, f"k{i}", 0, (0.6 + 0.1 * i, 1.0)) for i in range(2, 6)]
    claimed = {(e.key, 0) for e in done} | {("k0", 1)}
    got = next_promotion(done, claimed, schedule, DIRS)
    assert got is not None and got[0].number == 5
    assert next_promotion(done, claimed | {("k5", 1)}, schedule, DIRS) is None


def test_promote_after_all_waits_for_the_rung_to_close() -> None:
    """A capped ``promote_after_all`` rung: nothing leaves before every candidate has finished,
    not even the baseline (its top-rung training would take a worker from the rung); then the
    best of all of them, not of the first few, and the baseline."""
    schedule = RungSchedule((Rung(promote_at_most=2, promote_after_all=True), Rung()), eta=2)
    done = [Evaluated(0, "base", 0, (0.3, 3.0), "baseline")] + [
        Evaluated(i, f"k{i}", 0, (0.1 * i, 1.0)) for i in range(1, 10)]  # best: 9, 8
    early = done[:3]
    claimed = {(e.key, 0) for e in early}
    assert next_promotion(early, claimed, schedule, DIRS, Progress(False, frozenset({0}))) is None
    assert not promotions_settled(early, claimed, schedule, DIRS, Progress(False, frozenset({0})))
    claimed |= {(e.key, 0) for e in done}
    # all finished, but a retry is queued at rung 0: still open
    assert next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({0, 1}))) is None
    got = next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({1})))
    assert got is not None and got[0].number == 9
    claimed.add(("k9", 1))
    got = next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({1})))
    assert got is not None and got[0].number == 8
    claimed.add(("k8", 1))
    got = next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({1})))
    assert got is not None and got[0].design == "baseline"  # with the others, not before
    claimed.add(("base", 1))
    assert next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({1}))) is None
    assert promotions_settled(done, claimed, schedule, DIRS, Progress(True, frozenset({1})))
    # without promote_after_all the same cap is used up by the first results (ASHA)
    asha = RungSchedule((Rung(promote_at_most=2), Rung()), eta=2, always_promote=())
    got = next_promotion(early, {(e.key, 0) for e in early}, asha, DIRS)
    assert got is not None and got[0].number < 3  # one of the first three leaves at once


def test_a_higher_rung_closes_after_the_rung_below_and_its_promotions() -> None:
    schedule = RungSchedule((Rung(promote_after_all=True), Rung(promote_after_all=True),
                             Rung()), eta=2, always_promote=())  # fmt: skip
    rung0 = _results([(0.1 * i, 1.0) for i in range(4)])  # 4 // 2 = 2 promoted: 3, 2
    claimed = {(e.key, 0) for e in rung0} | {("k3", 1)}
    got = next_promotion(rung0, claimed, schedule, DIRS, Progress(True))
    assert got is not None and (got[0].number, got[1]) == (2, 1)  # rung 1 not closed yet
    claimed.add(("k2", 1))
    done = rung0 + [Evaluated(4, "k3", 1, (0.5, 1.0))]  # k2 still running at rung 1
    assert next_promotion(done, claimed, schedule, DIRS, Progress(True, frozenset({1}))) is None
    done.append(Evaluated(5, "k2", 1, (0.6, 1.0)))
    got = next_promotion(done, claimed, schedule, DIRS, Progress(True))
    assert got is not None and (got[0].key, got[1]) == ("k2", 2)  # 2 // 2 = 1: the best


def test_promote_designs_leave_on_top_of_the_quota_and_cap() -> None:
    """A screening rung with ``promote_designs``: the enqueued designs (baseline, seeds) leave
    whatever their rank, and the quota and the cap go to the best of the others."""
    schedule = RungSchedule((Rung(promote_at_most=2, promote_designs=True), Rung()), eta=2,
                            always_promote=())  # fmt: skip
    done = [Evaluated(0, "base", 0, (0.9, 1.0), "baseline"),
            Evaluated(1, "seed", 0, (0.0, 1.0), "seed001")] + [
        Evaluated(i, f"k{i}", 0, (0.1 * i, 1.0)) for i in range(2, 8)]  # best others: 7, 6
    claimed = {(e.key, 0) for e in done}
    left = []
    while (got := next_promotion(done, claimed, schedule, DIRS)) is not None:
        claimed.add((got[0].key, got[1]))
        left.append(got[0].number)
    assert sorted(left) == [0, 1, 6, 7]  # both designs, and the cap of 2 on the best others
    # without it the baseline, ranked first, takes a place of the quota
    plain = RungSchedule((Rung(promote_at_most=2), Rung()), eta=2, always_promote=())
    claimed = {(e.key, 0) for e in done}
    left = []
    while (got := next_promotion(done, claimed, plain, DIRS)) is not None:
        claimed.add((got[0].key, got[1]))
        left.append(got[0].number)
    assert sorted(left) == [0, 7]


def test_each_rung_uses_its_evaluator(tmp_path: Path) -> None:
    schedule = RungSchedule((Rung(), Rung(evaluator="standalone")))
    ctx = _ctx(tmp_path, ScoreByDesign(), schedule)
    assert ctx.evaluator_for(0) is ctx.evaluator_for(1)  # the study's is standalone too
    with pytest.raises(ValueError, match="needs evaluator=supernet"):
        _ctx(tmp_path, ScoreByDesign(),
             RungSchedule((Rung(), Rung(evaluator="supernet")))).evaluator_for(1)
    # an evaluator without study-wide preparation is made on demand
    ctx = _ctx(tmp_path, ScoreByDesign(), RungSchedule((Rung(evaluator="synflow"), Rung())))
    assert ctx.evaluator_for(0).name == "synflow" and ctx.evaluator_for(1).name == "standalone"


def test_an_unknown_rung_evaluator_is_one_config_error(tmp_path: Path) -> None:
    from nas.errors import ConfigError
    from nas.search.study import _check_rung_evaluators

    with pytest.raises(ConfigError, match=r"rungs.rungs.1.evaluator: 'snip'; valid: \[.*synflow"):
        _check_rung_evaluators(RungSchedule((Rung(), Rung(evaluator="snip"))))


# ---------------------------------------------------------------- the rungs in a study


class ScoreByDesign:
    """A fake evaluator's trainer: mAP grows with the rung's epochs and depends on the design."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, model, data, cfg, *, on_epoch=None, progress=True):
        names = {type(m).__name__ for m in model.modules()}
        quality = 0.2 + 0.3 * ("CSPPC" in names) + 0.2 * ("ADown" in names)
        quality -= 0.1 * ("C2fGhost" in names)
        self.calls.append((str(sorted(names & {"CSPPC", "ADown", "C2fGhost"})), cfg.epochs,
                           cfg.seed))
        m = quality * cfg.epochs / (cfg.epochs + 1) + 0.001 * cfg.seed
        return SimpleNamespace(map50=m, map50_95=m / 2, train_seconds=0.1, epochs=cfg.epochs)


def _ctx(tmp_path: Path, fit: ScoreByDesign, schedule: RungSchedule) -> TrialContext:
    space = parse_space({**SPACE, "seeds": {"good": {"backbone.block.P3": "CSPPC"}}},
                        source="test.yaml")
    return TrialContext(space=space, objectives=Objectives(), data=None,
                        train=TrainConfig(epochs=1, seed=0), settings=CHEAP,
                        artifact_dir=tmp_path / "artifacts", nc=2, fit=fit, schedule=schedule)


def _work(study: optuna.Study, ctx: TrialContext, n_trials: int, limit: int = 100) -> None:
    """The search loop's decisions (as ``run_search``) with a fake trainer."""
    for _ in range(limit):
        promoted = enqueue_promotion(study, ctx.schedule, ctx.objectives.directions, n_trials)
        trials = study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state.is_finished() and is_candidate(t))
        closed = done >= n_trials or sampler_exhausted(trials, n_trials)
        if promoted is None and not pending_promotions(study) and closed:
            return
        trial = study.ask()
        outcome = _evaluate(trial, ctx)
        study.tell(trial, outcome.values, state=outcome.state)
    raise AssertionError("the search did not end")


def _search(ctx: TrialContext, n_trials: int) -> tuple[optuna.Study, list, list]:
    """A seeded study with the enqueued designs, searched: the study, rung-0 and rung-1 trials."""
    study = optuna.create_study(directions=ctx.objectives.directions,
                                sampler=optuna.samplers.RandomSampler(seed=1))  # fmt: skip
    enqueue_designs(study, ctx.space)
    _work(study, ctx, n_trials=n_trials)
    trials = study.get_trials(deepcopy=False)
    rung0 = [t for t in trials if t.user_attrs[A.RUNG] == 0]
    rung1 = [t for t in trials if t.user_attrs[A.RUNG] == 1]
    assert sum(A.DUPLICATE_OF not in t.user_attrs for t in rung0) == n_trials  # copies on top
    return study, rung0, rung1


SCHEDULE = RungSchedule((Rung(train={"epochs": 1}), Rung(train={"epochs": 3}, seeds=2)), eta=3)


def test_rungs_promote_the_best_and_train_top_rung_seeds(tmp_path: Path) -> None:
    fit = ScoreByDesign()
    ctx = _ctx(tmp_path, fit, SCHEDULE)
    study, rung0, rung1 = _search(ctx, n_trials=6)
    # 6 distinct candidates: 6 // 3 = 2 promoted by rank, plus the baseline, plus any early
    # pick a later candidate pushed out of the top third (ASHA promotes as it goes)
    assert {t.user_attrs.get(A.DESIGN) for t in rung1} >= {"baseline"}
    assert 3 <= len(rung1) <= 6
    for t in rung1:
        source = study.trials[t.user_attrs[A.PROMOTED_FROM]]
        assert source.params == t.params and source.user_attrs[A.RUNG] == 0
        assert t.user_attrs[A.N_SEEDS] == 2 and len(t.user_attrs[A.MAP50_95_SEEDS]) == 2
        assert t.user_attrs[A.MAP50_95] == pytest.approx(
            sum(t.user_attrs[A.MAP50_95_SEEDS]) / 2)
        assert t.user_attrs[A.MAP50_95_SD] > 0  # the fake's seeds differ by 0.0005
    # rung 1 trained at 3 epochs with seeds 0 and 1; rung 0 at 1 epoch, seed 0
    assert {(e, s) for _, e, s in fit.calls} == {(1, 0), (3, 0), (3, 1)}
    # each promotion was non-dominated among the rung-0 results finished before it (ASHA
    # decides with what it has; a later, better candidate does not undo it)
    for t in rung1:
        if t.user_attrs.get(A.DESIGN) == "baseline":
            continue
        before = [r for r in rung0 if r.number < t.number]
        ranks = nondominated_ranks([r.values for r in before], DIRS)
        source = [r.number for r in before].index(t.user_attrs[A.PROMOTED_FROM])
        assert ranks[source] == 0
    # results: the front and the summary come from the top rung's means
    table = trials_table(study)
    front = front_table(table, Objectives(), top_rung=1)
    assert not front.empty and set(front[A.RUNG]) == {1}
    text = summary_text(table, front, Objectives(), top_rung=1)
    assert "seed noise (pooled sd)" in text and "baseline" in text


SCREEN = RungSchedule((Rung(evaluator="synflow", promote_after_all=True, promote_designs=True),
                       Rung(train={"epochs": 1}, promote_at_most=1, promote_after_all=True),
                       Rung(train={"epochs": 3}, seeds=2)), eta=3)  # fmt: skip


def test_a_synflow_screen_trains_only_what_it_promotes(tmp_path: Path) -> None:
    """rungs=asha's shape: rung 0 scores SynFlow (no training, no mAP), its best third and the
    designs are trained at rung 1, the best of those and the baseline at the top rung."""
    fit = ScoreByDesign()
    ctx = _ctx(tmp_path, fit, SCREEN)
    study, rung0, rung1 = _search(ctx, n_trials=6)
    for t in rung0:  # screened: a proxy score in the objective, no mAP, no training
        assert t.user_attrs[A.EVALUATOR] == "synflow" and A.MAP50_95 not in t.user_attrs
        assert t.values[0] == pytest.approx(t.user_attrs[A.PROXY]) and t.values[0] > 10
    assert len({t.user_attrs[A.PROXY] for t in rung0}) > 1  # it tells the designs apart
    # the best third of the distinct designs by rank, the baseline and the seed design on top
    designs = {t.user_attrs.get(A.DESIGN) for t in rung1}
    distinct = len({t.user_attrs[A.ARCH_HASH] for t in rung0})
    assert distinct >= 3 and {"baseline", "good"} <= designs
    assert len(rung1) == 2 + distinct // 3
    ranked = sorted((t for t in rung0 if A.DESIGN not in t.user_attrs),
                    key=lambda t: -t.values[0])  # fmt: skip
    promoted = {t.user_attrs[A.PROMOTED_FROM] for t in rung1 if A.DESIGN not in t.user_attrs}
    front = nondominated_ranks([t.values for t in ranked], DIRS)
    assert all(front[[t.number for t in ranked].index(n)] <= 1 for n in promoted)
    top = [t for t in study.trials if t.user_attrs.get(A.RUNG) == 2]
    assert {t.user_attrs.get(A.DESIGN) for t in top} >= {"baseline"} and len(top) == 2
    # the fake trainer ran only for the trained rungs: rung 1 once, the top rung twice each
    assert sorted(e for _, e, _ in fit.calls) == [1] * len(rung1) + [3] * 4
    table = trials_table(study)
    assert table.loc[table[A.RUNG] == 0, A.PROXY].notna().all()
    assert table.loc[table[A.RUNG] == 0, "map50_95_mean"].isna().all()
    front = front_table(table, Objectives(), top_rung=2)
    assert not front.empty and set(front[A.RUNG]) == {2}


def test_copies_do_not_count_and_an_exhausted_sampler_closes_rung0(tmp_path: Path) -> None:
    """``n_trials`` counts distinct designs: a sample repeating a scored design copies its
    score and the search samples on. A space with fewer designs than ``n_trials`` (8 here, 10
    asked) ends rung 0 once the last ``n_trials`` samples were all copies, and the
    ``promote_after_all`` rung waiting for it promotes (no endless loop, no stuck rung)."""
    schedule = RungSchedule((Rung(promote_at_most=1, promote_after_all=True),
                             Rung(train={"epochs": 3})), eta=3)  # fmt: skip
    ctx = _ctx(tmp_path, ScoreByDesign(), schedule)
    study = optuna.create_study(directions=ctx.objectives.directions,
                                sampler=optuna.samplers.RandomSampler(seed=1))  # fmt: skip
    enqueue_designs(study, ctx.space)
    trials = study.get_trials(deepcopy=False)
    assert not sampler_exhausted(trials, 10)
    _work(study, ctx, n_trials=10, limit=300)
    trials = study.get_trials(deepcopy=False)
    rung0 = sorted((t for t in trials if t.user_attrs[A.RUNG] == 0), key=lambda t: t.number)
    distinct = len({t.user_attrs[A.ARCH_HASH] for t in rung0})
    assert len(candidates(rung0)) == distinct and 5 <= distinct <= 8 < len(rung0)
    assert all(A.DUPLICATE_OF in t.user_attrs for t in rung0[-10:]) and sampler_exhausted(
        trials, 10)
    assert not sampler_exhausted(trials, len(rung0) + 1)  # not yet n_trials samples in all
    for copy in rung0:
        if A.DUPLICATE_OF in copy.user_attrs:
            assert copy.values == study.trials[copy.user_attrs[A.DUPLICATE_OF]].values
    rung1 = [t for t in trials if t.user_attrs[A.RUNG] == 1]
    assert len(rung1) == 2 and "baseline" in {t.user_attrs.get(A.DESIGN) for t in rung1}


def test_a_screened_duplicate_copies_the_proxy(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ScoreByDesign(), SCREEN)
    study = optuna.create_study(directions=ctx.objectives.directions)
    params = {"backbone.block.P3": "CSPPC", "backbone.block.P4": "C2f",
              "backbone.downsample.P5": "ADown"}
    for _ in range(2):
        study.enqueue_trial(params)
        trial = study.ask()
        outcome = _evaluate(trial, ctx)
        study.tell(trial, outcome.values, state=outcome.state)
    first, second = study.trials
    assert second.user_attrs[A.DUPLICATE_OF] == 0 and second.values == first.values
    assert second.user_attrs[A.PROXY] == first.user_attrs[A.PROXY]


def test_promote_after_all_in_a_study_confirms_the_best_of_all(tmp_path: Path) -> None:
    schedule = RungSchedule((Rung(train={"epochs": 1}, promote_at_most=1,
                                  promote_after_all=True),
                             Rung(train={"epochs": 3}, seeds=2)), eta=3)  # fmt: skip
    ctx = _ctx(tmp_path, ScoreByDesign(), schedule)
    ctx.objectives = Objectives(minimize=())  # mAP only: "the best" is one candidate
    _, rung0, rung1 = _search(ctx, n_trials=6)
    sampled = [t for t in rung1 if t.user_attrs.get(A.DESIGN) != "baseline"]
    assert len(sampled) == 1 and len(rung1) == 2  # the cap, and the baseline
    # promoted after the last candidate, and the best of all six
    assert sampled[0].number > max(t.number for t in rung0)
    best = max(rung0, key=lambda t: (t.values[0], -t.number))
    assert sampled[0].user_attrs[A.PROMOTED_FROM] == best.number


def test_settled_waits_for_a_running_candidate_of_another_worker() -> None:
    """The search loop's view: with the last candidate still running elsewhere the rung is open
    (an idle worker waits rather than leaving the promotions to that worker alone)."""
    from nas.search.promotion import settled

    schedule = RungSchedule((Rung(promote_after_all=True), Rung()), eta=2, always_promote=())
    study = optuna.create_study(directions=DIRS)
    for i in range(3):
        study.add_trial(optuna.trial.create_trial(
            values=[0.1 * i, 1.0], user_attrs={A.RUNG: 0, A.ARCH_HASH: f"k{i}"}))
    running = study.ask()  # the 4th candidate, on another worker
    running.set_user_attr(A.RUNG, 0)
    assert enqueue_promotion(study, schedule, DIRS, n_trials=4) is None
    assert not settled(study, schedule, DIRS, n_trials=4)
    running.set_user_attr(A.ARCH_HASH, "k3")
    study.tell(running, [0.9, 1.0])
    assert enqueue_promotion(study, schedule, DIRS, n_trials=4) == (3, 1)  # the best of all
    assert enqueue_promotion(study, schedule, DIRS, n_trials=4) == (2, 1)
    assert enqueue_promotion(study, schedule, DIRS, n_trials=4) is None
    assert settled(study, schedule, DIRS, n_trials=4)


def test_ties_at_a_rung_are_promoted_in_trial_order(tmp_path: Path) -> None:
    class Flat(ScoreByDesign):
        def __call__(self, model, data, cfg, *, on_epoch=None, progress=True):
            return SimpleNamespace(map50=0.2, map50_95=0.1, train_seconds=0.1, epochs=1)

    schedule = RungSchedule((Rung(), Rung()), eta=2, always_promote=())
    ctx = _ctx(tmp_path, Flat(), schedule)
    study = optuna.create_study(directions=["maximize"])
    ctx.objectives = Objectives(minimize=())
    for p3 in ("C2f", "CSPPC"):
        study.enqueue_trial({"backbone.block.P3": p3, "backbone.block.P4": "C2f",
                             "backbone.downsample.P5": "Conv"})
    _work(study, ctx, n_trials=2)
    rung1 = [t for t in study.trials if t.user_attrs.get(A.RUNG) == 1]
    assert [t.user_attrs[A.PROMOTED_FROM] for t in rung1] == [0]


def test_worker_dying_mid_rung_keeps_the_promotion(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ScoreByDesign(), SCHEDULE)
    study = optuna.create_study(directions=Objectives().directions,
                                sampler=optuna.samplers.RandomSampler(seed=2))
    enqueue_designs(study, ctx.space)
    promoted = None
    for _ in range(20):  # rung-0 work until a worker takes a promotion
        promoted = enqueue_promotion(study, SCHEDULE, DIRS) or promoted
        orphan = study.ask()
        if orphan.user_attrs.get(A.RUNG, 0) == 1:
            break
        outcome = _evaluate(orphan, ctx)
        study.tell(orphan, outcome.values, state=outcome.state)
    assert promoted is not None and orphan.user_attrs[A.RUNG] == 1
    # the worker holding the promotion dies
    set_system_attr(study, orphan, WORKER_ATTR, {"host": "gone", "pid": 1, "start": None})
    assert fail_stale_trials(study, stale_after_s=0.0) == [orphan.number]
    retry = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
             if t.user_attrs.get(A.RETRY_OF) == orphan.number]
    assert len(retry) == 1 and retry[0].user_attrs[A.RUNG] == 1
    assert retry[0].user_attrs[A.PROMOTED_FROM] == orphan.user_attrs[A.PROMOTED_FROM]
    # resuming: the retry runs at rung 1, and nothing is promoted twice
    n0 = sum(t.user_attrs.get(A.RUNG, 0) == 0 for t in study.trials)
    _work(study, ctx, n_trials=n0)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    rung1 = [t.user_attrs[A.ARCH_HASH] for t in done if t.user_attrs[A.RUNG] == 1]
    assert len(rung1) == len(set(rung1))
    assert any(t.user_attrs.get(A.RETRY_OF) == orphan.number for t in done)


def test_resume_continues_promotions_without_repeats(tmp_path: Path) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(study_name="s", storage=storage,
                                directions=Objectives().directions,
                                sampler=optuna.samplers.RandomSampler(seed=3))
    ctx = _ctx(tmp_path, ScoreByDesign(), SCHEDULE)
    enqueue_designs(study, ctx.space)
    _work(study, ctx, n_trials=3)
    before = len(study.trials)
    again = optuna.load_study(study_name="s", storage=storage)  # a new process
    assert enqueue_designs(again, ctx.space) == []
    _work(again, ctx, n_trials=6)
    trials = again.get_trials(deepcopy=False)
    assert len(trials) > before
    seen = [(t.user_attrs[A.ARCH_HASH], t.user_attrs[A.RUNG]) for t in trials
            if t.state == TrialState.COMPLETE and t.user_attrs.get(A.DUPLICATE_OF) is None]
    assert len(seen) == len(set(seen))
    assert len(evaluated(trials)) == sum(t.state == TrialState.COMPLETE for t in trials)


@pytest.mark.slow
def test_search_with_two_rungs_end_to_end(tmp_path: Path) -> None:
    rungs = "rungs.rungs=[{train:{},data:{},seeds:1},{train:{epochs:2},data:{},seeds:2}]"
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", "rungs=asha", rungs,
           f"results_dir={tmp_path}", "n_trials=3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "quick" / "trials.csv")
    assert {"rung", "map50_95_mean", "map50_95_sd", "n_seeds"} <= set(trials.columns)
    assert (trials["rung"] == 0).sum() == 3 and (trials["rung"] == 1).sum() >= 1
    assert set(trials.loc[trials["rung"] == 1, "n_seeds"]) == {2}
    pareto = pd.read_csv(tmp_path / "quick" / "pareto.csv")
    assert set(pareto["rung"]) == {1}
    assert "promoted trial" in proc.stdout and "seed noise" in proc.stdout
