"""Weight sharing against standalone training: candidates scored per CPU-hour, and ranking.

On the search's data and trial budget (``conf/search.yaml`` with the ``--common`` Hydra
overrides; none: synthetic data, 200 / 60 images, 160 px, the brief recipe for 5 epochs;
``--common experiment=bccd``: BCCD as ``python -m nas.search experiment=bccd`` trains it), this
script

1. trains ``--standalone`` designs (YOLOv8n, the space's seeds, then random candidates) from
   scratch as a search trial does, timing each (build + counts + latency + fit);
2. for each ``--sampling`` rule, trains a supernet (``--epochs``) and scores ``--candidates``
   candidates (the standalone designs first, then random ones) with inherited weights, timing
   each candidate the same way;
3. prints the cost of each, candidates per hour of this machine (supernet training included,
   amortised over ``--candidates``), the number a 15-minute search would score, and the
   Kendall tau (``scipy.stats.kendalltau``) of the supernet's score (``--score``: the negated
   validation loss, the evaluator's default, or mAP50-95) against standalone mAP50-95
   over the standalone designs. ``--json`` also writes everything measured.

``--reference FILE`` reads the standalone results from an earlier ``--json`` report instead of
training them (waiting for the file, so a standalone-only run, ``--sampling`` with no rule, can
produce it in another process at the same time). Wall seconds depend on what else runs on the
machine; CPU seconds (``time.process_time``) much less, so both are printed.

``--panel study --study NAME --no-train --cache results/fidelity-cache.jsonl`` scores the panel
``python -m nas.fidelity --study NAME`` trained and ranks the supernet against each recipe that
fidelity run recorded (its >= 10x reference among them). ``--imgsz 256 --all-images`` trains
the supernet and scores its candidates on the reference's images and size instead of the
search's (the supernet is trained once, so it can afford the longer recipe a trial cannot).

Run:
    python benchmarks/bench_supernet.py --candidates 200 --standalone 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.data import prepare_data  # noqa: E402
from nas.fidelity.panel import SPREAD_BY  # noqa: E402
from nas.fidelity.recipes import compose_recipe  # noqa: E402
from nas.model.arch import dump_arch  # noqa: E402
from nas.model.counting import count_gflops, count_params, measure_latency  # noqa: E402
from nas.model.detector import build_model  # noqa: E402
from nas.search.evaluators import EvalContext  # noqa: E402
from nas.search.space import SearchSpace, load_space  # noqa: E402
from nas.search.wiring import to_arch  # noqa: E402
from nas.supernet import SupernetEvaluator, SupernetSettings  # noqa: E402
from nas.supernet.config import SCORES  # noqa: E402
from nas.supernet.sampling import BALANCES  # noqa: E402
from nas.train import TrainConfig, fit  # noqa: E402


class _RandomTrial:
    """``suggest_categorical`` from a seeded ``random.Random`` (a random-sampler trial)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.rng.choice(list(choices))


def designs(space: SearchSpace, n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The baseline, the seeds, then distinct random candidates: ``n`` named designs."""
    out = [("baseline", space.baseline_choices()), *space.seeds.items()]
    rng = random.Random(seed)
    seen = {dump_arch(to_arch(space, c, 1)) for _, c in out}
    while len(out) < n:
        choices = space.sample(_RandomTrial(rng))
        text = dump_arch(to_arch(space, choices, 1))
        if text not in seen:
            seen.add(text)
            out.append((f"random{len(out)}", choices))
    return out[:n]


def optuna_designs(space: SearchSpace, draws: int, names: list[str], nc: int,
                   seed: int) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    """The baseline, the seeds and ``draws`` candidates of a seeded Optuna ``RandomSampler``
    named ``sample<i>`` (the draws of ``python -m nas.fidelity --space ... --sample``), kept
    when named in ``names`` (all when empty)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = [("baseline", space.baseline_choices()), *space.seeds.items()]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for i in range(draws):
        trial = study.ask()
        out.append((f"sample{i}", space.sample(trial)))
        study.tell(trial, 0.0)
    return [(n, c) for n, c in out if not names or n in names]


def study_designs(study_name: str, results_dir: Path, n: int, space: SearchSpace, nc: int,
                  storage_url: str | None = None,
                  spread_by: str = "params") -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    """The panel ``python -m nas.fidelity --study NAME --spread BY`` measures (baseline, seeds,
    front, spread over params or the rung-0 score), each design as the choices of the trial
    that trained it (its parameters)."""
    import optuna
    from optuna.trial import TrialState

    from nas.fidelity.panel import panel_from_study
    from nas.search.objective import arch_hash
    from nas.search.storage import resolve_storage

    storage, _ = resolve_storage(storage_url, study_name, results_dir)
    study = optuna.load_study(study_name=study_name, storage=storage)
    by_hash = {t.user_attrs["arch_hash"]: t.params
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.user_attrs.get("arch_hash")}  # fmt: skip
    out = []
    for design in panel_from_study(study, n, spread_by):
        choices = by_hash[design.arch_hash]
        rebuilt = arch_hash(dump_arch(to_arch(space, choices, nc)))
        if rebuilt != design.arch_hash:
            raise SystemExit(f"study {study_name!r}: {design.name}'s parameters build another "
                             f"design ({rebuilt} != {design.arch_hash}): not this search space")
        out.append((design.name, choices))
    return out


def cached_scores(paths: list[Path], panel: list[tuple[str, dict[str, Any]]], space: SearchSpace,
                  nc: int) -> dict[str, list[float | None]]:  # fmt: skip
    """Per recipe, the mean mAP50-95 over seeds of each panel design in JSONL run records
    (``arch_hash``, ``recipe``, ``map50_95`` per line, as ``results/fidelity-cache.jsonl``)."""
    from nas.search.objective import arch_hash

    hashes = [arch_hash(dump_arch(to_arch(space, c, nc))) for _, c in panel]
    found: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if "map50_95" in row and row.get("arch_hash") in hashes:
                found.setdefault(row["recipe"], {}).setdefault(row["arch_hash"], []).append(
                    float(row["map50_95"]))
    return {recipe: [sum(v) / len(v) if (v := by_hash.get(h)) else None for h in hashes]
            for recipe, by_hash in found.items()}


def trial_counts(model: torch.nn.Module) -> dict[str, float]:
    """What every search trial measures before scoring (conf/search.yaml's trial settings)."""
    return {
        "params": count_params(model),
        "gflops": count_gflops(model, imgsz=640),
        "latency_ms": measure_latency(model, imgsz=320, warmup=2, repeats=5).median_ms,
    }


def train_panel(panel: list[tuple[str, dict[str, Any]]], space: SearchSpace, data: Any,
                train: TrainConfig) -> list[dict[str, Any]]:  # fmt: skip
    """Every design trained from scratch as a search trial does (build, counts, fit)."""
    rows = []
    for name, choices in panel:
        start, cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(train.seed)
        model = build_model(to_arch(space, choices, data.num_classes))
        counts = trial_counts(model)
        result = fit(model, data, train, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"design": name, "choices": choices, **counts, "map50": result.map50,
                     "map50_95": result.map50_95, "seconds": seconds, "cpu_seconds": cpu})
        print(f"standalone {name:28s} params={counts['params']:>9,} "
              f"mAP50-95={result.map50_95:.4f}  {seconds:.1f} s wall, {cpu:.1f} s CPU",
              flush=True)  # fmt: skip
    return rows


def read_reference(path: Path, panel: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The standalone rows of an earlier report (waits for the file to appear)."""
    while not path.is_file():
        time.sleep(10)
    rows = json.loads(path.read_text())["standalone"]
    if [r["choices"] for r in rows] != [c for _, c in panel]:
        raise SystemExit(f"{path}: its standalone designs are not this run's panel "
                         "(use the same --standalone and --seed)")  # fmt: skip
    return rows


def score_pool(evaluator: SupernetEvaluator, pool: list[dict[str, Any]], space: SearchSpace,
               data: Any, train: TrainConfig) -> tuple[list[float], float, float]:  # fmt: skip
    """Supernet scores of ``pool`` (mAP50-95, or the negated validation loss with
    ``--score val_loss``), each timed as a trial (build, counts, score)."""
    scores, wall, cpu = [], 0.0, 0.0
    for choices in pool:
        start, cpu0 = time.perf_counter(), time.process_time()
        torch.manual_seed(train.seed)
        model = build_model(to_arch(space, choices, data.num_classes))
        trial_counts(model)
        score = evaluator.score(model, choices, data=data, train=train)
        scores.append(score.map50_95 if score.proxy is None else score.proxy)
        wall += time.perf_counter() - start
        cpu += time.process_time() - cpu0
    return scores, wall / len(pool), cpu / len(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=SupernetSettings.epochs,
                        help="supernet epochs (default: the evaluator's, %(default)s)")
    parser.add_argument("--sampling", nargs="*", default=["fair"],
                        help="any of uniform, fair, sandwich")
    parser.add_argument("--balance", choices=BALANCES, default=SupernetSettings.balance,
                        help="what the path draws make equal (evaluator.balance; default "
                        "%(default)s)")
    parser.add_argument("--sandwich-random", type=int, default=2,
                        help="sandwich: uniform paths per step besides the largest and smallest")
    parser.add_argument("--inplace-distill", type=float, default=1.0,
                        help="sandwich: weight of the in-place distillation from the largest")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--standalone", type=int, default=10, help="designs trained standalone")
    parser.add_argument("--panel", choices=["own", "optuna", "study"], default="own",
                        help="own: baseline, seeds, random designs up to --standalone; optuna: "
                             "baseline, seeds, --draws RandomSampler draws named sample<i>; "
                             "study: nas.fidelity's panel of --study (--standalone designs)")
    parser.add_argument("--study", default="liteyolo", help="with --panel study")
    parser.add_argument("--spread", choices=sorted(SPREAD_BY), default="params",
                        help="with --panel study: as nas.fidelity's --spread")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results")
    parser.add_argument("--storage", default=None,
                        help="--study's storage URL (default: its journal)")
    parser.add_argument("--draws", type=int, default=24)
    parser.add_argument("--designs", nargs="*", default=[], help="keep these panel names")
    parser.add_argument("--no-train", action="store_true", help="do not train the panel")
    parser.add_argument("--cache", type=Path, nargs="*", default=[],
                        help="JSONL run records with reference scores of the panel designs")
    parser.add_argument("--reference", type=Path, default=None,
                        help="standalone results of an earlier --json report")
    parser.add_argument("--common", default="",
                        help="Hydra overrides of conf/search.yaml for every training here "
                        "(e.g. 'experiment=bccd'; as nas.fidelity's --common)")
    parser.add_argument("--imgsz", type=int, default=None,
                        help="image side of the supernet, its candidates and the standalone "
                        "designs (default the recipe's: 160 on the synthetic default; 256 is "
                        "the fidelity reference's)")
    parser.add_argument("--all-images", action="store_true",
                        help="all images (synthetic: 400 / 100) instead of the search's subsets")
    parser.add_argument("--score", choices=SCORES, default=SupernetSettings.score,
                        help="what ranks a candidate (evaluator.score; default %(default)s)")
    parser.add_argument("--bn-batches", type=int, default=SupernetSettings.bn_batches)
    parser.add_argument("--finetune-steps", type=int, default=SupernetSettings.finetune_steps)
    parser.add_argument("--ema", action="store_true", help="inherit the supernet's EMA weights")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", choices=["off", "auto", "on"], default=None,
                        help="train.amp of the supernet, the candidates' fine-tuning and the "
                             "standalone designs (auto: bfloat16 on a CPU with it; default: "
                             "the recipe's)")  # fmt: skip
    parser.add_argument("--out", default="results/bench_supernet", help="supernet folders")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args()

    overrides = shlex.split(args.common)
    overrides += [f"train.imgsz={args.imgsz}"] if args.imgsz else []
    overrides += ["data.train_subset=null", "data.val_subset=null"] if args.all_images else []
    recipe = compose_recipe("trial", overrides)  # the search's trial recipe, as nas.fidelity's
    train = dataclasses.replace(recipe.train, threads=args.threads, seed=args.seed)
    if args.amp is not None:
        amp = {"off": False, "auto": "auto", "on": True}[args.amp]
        train = dataclasses.replace(train, amp=amp)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = prepare_data(recipe.data, imgsz=train.imgsz)
    print(f"data: {len(data.train)} train / {len(data.val)} val images at {train.imgsz} px, "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    space = load_space(ROOT / "search_spaces/default.yaml")
    nc = data.num_classes
    panels = {
        "own": lambda: designs(space, args.standalone, args.seed),
        "optuna": lambda: optuna_designs(space, args.draws, args.designs, nc, args.seed),
        "study": lambda: study_designs(args.study, args.results_dir, args.standalone, space, nc,
                                        args.storage, args.spread),
    }
    panel = panels[args.panel]()
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "standalone": [], "supernet": {}}  # fmt: skip
    if args.reference is None and not args.no_train:
        report["standalone"] = train_panel(panel, space, data, train)

    rng = random.Random(args.seed + 1)
    pool = [c for _, c in panel] + [space.sample(_RandomTrial(rng))
                                    for _ in range(max(args.candidates - len(panel), 0))]
    # one supernet folder per recipe (the trial recipe's own: no suffix)
    suffix = f"{'-ema' if args.ema else ''}{f'-{recipe.key}' if overrides else ''}"
    for rule in args.sampling:
        settings = SupernetSettings(epochs=args.epochs, sampling=rule, balance=args.balance,
                                    score=args.score, bn_batches=args.bn_batches,
                                    finetune_steps=args.finetune_steps, ema=args.ema,
                                    sandwich_random=args.sandwich_random,
                                    inplace_distill=args.inplace_distill)  # fmt: skip
        evaluator = SupernetEvaluator(settings)
        folder = Path(args.out) / f"{rule}-{args.balance}-e{args.epochs}{suffix}"
        start, cpu = time.perf_counter(), time.process_time()
        evaluator.prepare(EvalContext(space, data, train, folder, None, data.num_classes))
        prep_s, prep_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert evaluator.run is not None
        prep_s += evaluator.run.earlier_seconds  # a supernet trained (partly) by an earlier run
        prep_cpu += evaluator.run.earlier_cpu_seconds
        print(f"supernet[{rule}]: {evaluator.run.steps} steps, {prep_s:.1f} s wall, "
              f"{prep_cpu:.1f} s CPU (training steps {evaluator.run.seconds:.1f} s, resumed "
              f"from {evaluator.run.resumed_from})", flush=True)  # fmt: skip
        scores, per, per_cpu = score_pool(evaluator, pool, space, data, train)
        print(f"supernet[{rule}]: {per:.2f} s wall / {per_cpu:.2f} s CPU per candidate "
              f"({len(pool)} scored); {int(max(900 - prep_s, 0) / per)} would fit in 15 min "
              "at this wall rate", flush=True)  # fmt: skip
        report["supernet"][rule] = {
            "prepare_seconds": prep_s, "prepare_cpu_seconds": prep_cpu,
            "train_step_seconds": evaluator.run.seconds, "steps": evaluator.run.steps,
            "seconds_per_candidate": per, "cpu_seconds_per_candidate": per_cpu,
            "panel_scores": scores[: len(panel)], "scores": scores,
        }  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))

    if args.reference is not None and panel:
        report["standalone"] = read_reference(args.reference, panel)
    summarise(report, len(pool))
    if args.cache:
        report["cached"] = cached_scores(args.cache, panel, space, nc)
        recipes = sorted(report["cached"])
        print(f"{'design':28s} " + " ".join(f"{r:>9s}" for r in report["supernet"])
              + " | " + " ".join(f"{r[:9]:>9s}" for r in recipes))  # fmt: skip
        for i, (name, _) in enumerate(panel):
            mine = " ".join(f"{r['panel_scores'][i]:9.4f}" for r in report["supernet"].values())
            theirs = " ".join("        -" if (t := report["cached"][r][i]) is None else
                              f"{t:9.4f}" for r in recipes)  # fmt: skip
            print(f"{name:28s} {mine} | {theirs}")
        for recipe, truth in report["cached"].items():
            for rule, r in report["supernet"].items():
                pairs = [(s, t) for s, t in zip(r["panel_scores"], truth, strict=True)
                         if t is not None]
                if len(pairs) > 2:
                    tau, p = kendalltau(*zip(*pairs, strict=True))
                    r[f"kendall_tau_{recipe}"] = tau
                    print(f"supernet[{rule}] vs cached recipe {recipe!r}: Kendall tau "
                          f"{tau:.3f} (p={p:.3g}, {len(pairs)} designs)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


def summarise(report: dict[str, Any], n: int) -> None:
    """Print cost per candidate, candidates per CPU-hour and the Kendall tau of each rule."""
    rows = report["standalone"]
    truth = [r["map50_95"] for r in rows]
    if rows:
        wall = sum(r["seconds"] for r in rows) / len(rows)
        cpu = sum(r["cpu_seconds"] for r in rows) / len(rows)
        report["standalone_cpu_seconds"] = cpu
        print(f"standalone: {wall:.1f} s wall / {cpu:.1f} s CPU per candidate: "
              f"{3600 / cpu:.0f} candidates per CPU-hour")  # fmt: skip
    for rule, r in report["supernet"].items():
        wall = (r["prepare_seconds"] + r["seconds_per_candidate"] * n) / n
        cpu = (r["prepare_cpu_seconds"] + r["cpu_seconds_per_candidate"] * n) / n
        line = (f"supernet[{rule}] amortised over {n} candidates: {wall:.2f} s wall / "
                f"{cpu:.2f} s CPU per candidate: {3600 / cpu:.0f} per CPU-hour")  # fmt: skip
        if len(truth) > 1:
            tau, p = kendalltau(r["panel_scores"], truth)
            r["kendall_tau"], r["p_value"] = tau, p
            line += (f"; {report['standalone_cpu_seconds'] / cpu:.1f}x standalone's; Kendall "
                     f"tau vs standalone {tau:.3f} (p={p:.3g}, {len(truth)} designs)")
        print(line)
        for row, score in zip(rows, r["panel_scores"], strict=False):
            print(f"  {row['design']:28s} supernet {score:.4f}  standalone {row['map50_95']:.4f}")


if __name__ == "__main__":
    main()
