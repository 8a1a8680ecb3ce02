"""Which sampler finds the better front in a small budget? Hypervolume after K trials.

A PROXY benchmark: training every candidate is too slow to repeat over samplers and seeds on a
2-core CPU, so each candidate of the default search space is scored by
- its exact parameter count (minimised; the real second objective of the default study), and
- the SynFlow zero-cost accuracy proxy (``nas.fidelity.proxies.synflow``; maximised; Tanaka et
  al. 2020, used for NAS by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR
  2021): the sum over parameters of |theta * dR/dtheta| for R = sum of the outputs of the
  network with |weights| on an all-ones input, taken in log scale. It ranks architectures
  without training; it is not mAP, so these figures only say how fast each sampler covers a
  realistic 2-objective front of this categorical space.

For each sampler (the conf/sampler options) and seed, K trials run (the baseline and seeds are
enqueued first, as in a search); the hypervolume of the feasible front (params <= the budget of
search_spaces/default.yaml) is computed against a fixed reference point shared by all runs.

Usage: python benchmarks/bench_samplers.py [--trials 24] [--seeds 0 1 2] [--samplers ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import optuna
import torch

from nas.fidelity.proxies import synflow
from nas.model.counting import count_params
from nas.model.detector import build_model
from nas.search.space import SearchSpace, load_space
from nas.search.study import default_sampler, enqueue_designs
from nas.search.wiring import to_arch

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                   n_startup_trials=6),
    "auto": default_sampler,
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=6),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=6,
                                                 warn_independent_sampling=False),
}


def evaluate(space: SearchSpace, choices: dict, cache: dict) -> tuple[float, float]:
    key = tuple(sorted(choices.items()))
    if key not in cache:
        torch.manual_seed(0)
        model = build_model(to_arch(space, choices, nc=4))
        cache[key] = (synflow(model), float(count_params(model)))
    return cache[key]


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume of (maximise proxy, minimise params) points against ``ref``."""
    pts = sorted((p for p in points if p[0] > ref[0] and p[1] < ref[1]), key=lambda p: p[1])
    volume, best = 0.0, ref[0]
    for i, (proxy, params) in enumerate(pts):
        best = max(best, proxy)
        right = pts[i + 1][1] if i + 1 < len(pts) else ref[1]
        volume += (best - ref[0]) * (right - params)
    return volume


def run(name: str, seed: int, trials: int, space: SearchSpace, cache: dict,
        budget: float) -> list[tuple[float, float]]:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SAMPLERS[name](seed))
    enqueue_designs(study, space)
    points = []
    for _ in range(trials):
        trial = study.ask()
        proxy, params = evaluate(space, space.sample(trial), cache)
        trial.set_constraint("max_params", params - budget)
        study.tell(trial, [proxy, params])
        if params <= budget:
            points.append((proxy, params))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    budget = space.budgets.max_params or float("inf")
    cache: dict = {}
    results: dict[str, list[list[tuple[float, float]]]] = {}
    seconds: dict[str, float] = {}
    for name in args.samplers:
        start = time.perf_counter()
        results[name] = [run(name, s, args.trials, space, cache, budget) for s in args.seeds]
        seconds[name] = time.perf_counter() - start
    all_points = [p for runs in results.values() for pts in runs for p in pts]
    ref = (min(p[0] for p in all_points), budget)
    print(f"proxy benchmark: {args.trials} trials x seeds {args.seeds}; reference point "
          f"(synflow {ref[0]:.2f}, params {ref[1]:.0f}); {len(cache)} distinct designs")
    print(f"{'sampler':<8} {'HV mean':>10} {'HV min':>10} {'HV max':>10} {'front':>6} "
          f"{'min params':>11} {'time s':>7}")
    for name, runs in results.items():
        hvs = [hypervolume(pts, ref) / 1e6 for pts in runs]
        fronts = [optuna_front(pts) for pts in runs]
        print(f"{name:<8} {statistics.mean(hvs):>10.3f} {min(hvs):>10.3f} {max(hvs):>10.3f} "
              f"{statistics.mean(len(f) for f in fronts):>6.1f} "
              f"{statistics.mean(min(p[1] for p in pts) for pts in runs):>11.0f} "
              f"{seconds[name]:>7.1f}")


def optuna_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [p for p in points
            if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)]


if __name__ == "__main__":
    main()
