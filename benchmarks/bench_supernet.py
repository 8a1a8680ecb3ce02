"""Weight sharing against standalone training: candidates scored per CPU-hour, and ranking.

On the default search's data and trial budget (``conf/search.yaml``: synthetic data, 200 / 60
images, 160 px, the brief recipe for 5 epochs), this script

1. trains ``--standalone`` designs (YOLOv8n, the space's seeds, then random candidates) from
   scratch as a search trial does, timing each (build + counts + latency + fit);
2. for each ``--sampling`` rule, trains a supernet (``--epochs``) and scores ``--candidates``
   candidates (the standalone designs first, then random ones) with inherited weights, timing
   each candidate the same way;
3. prints the cost of each, candidates per hour of this machine (supernet training included,
   amortised over ``--candidates``), the number a 15-minute search would score, and the
   Kendall tau (``scipy.stats.kendalltau``) of supernet mAP50-95 against standalone mAP50-95
   over the standalone designs. ``--json`` also writes everything measured.

Run:
    python benchmarks/bench_supernet.py --epochs 40 --candidates 200 --standalone 10
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.data import DataConfig, prepare_data  # noqa: E402
from nas.model.arch import dump_arch  # noqa: E402
from nas.model.counting import count_gflops, count_params, measure_latency  # noqa: E402
from nas.model.detector import build_model  # noqa: E402
from nas.search.evaluators import EvalContext  # noqa: E402
from nas.search.space import SearchSpace, load_space  # noqa: E402
from nas.search.wiring import to_arch  # noqa: E402
from nas.supernet import SupernetEvaluator, SupernetSettings  # noqa: E402
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


def trial_counts(model: torch.nn.Module) -> dict[str, float]:
    """What every search trial measures before scoring (conf/search.yaml's trial settings)."""
    return {
        "params": count_params(model),
        "gflops": count_gflops(model, imgsz=640),
        "latency_ms": measure_latency(model, imgsz=320, warmup=2, repeats=5).median_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="supernet epochs")
    parser.add_argument("--sampling", nargs="+", default=["fair"], help="uniform and/or fair")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--standalone", type=int, default=10, help="designs trained standalone")
    parser.add_argument("--bn-batches", type=int, default=8)
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench_supernet", help="supernet folders")
    parser.add_argument("--json", default=None, help="write all figures to this file")
    args = parser.parse_args()

    brief = yaml.safe_load((ROOT / "conf/train/brief.yaml").read_text())
    brief.update(imgsz=160, epochs=5, threads=args.threads, seed=args.seed)  # conf/search.yaml
    train = TrainConfig.from_dict(brief)
    t0 = time.perf_counter()
    data = prepare_data(DataConfig.from_dict({"train_subset": 200, "val_subset": 60}),
                        imgsz=train.imgsz)  # fmt: skip
    print(f"data: {len(data.train)} train / {len(data.val)} val images at {train.imgsz} px, "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    space = load_space(ROOT / "search_spaces/default.yaml")
    nc = data.num_classes
    if args.threads:
        torch.set_num_threads(args.threads)
    panel = designs(space, args.standalone, args.seed)
    report: dict[str, Any] = {"args": vars(args), "standalone": [], "supernet": {}}

    # 1. standalone training, as a search trial does it
    for name, choices in panel:
        start = time.perf_counter()
        torch.manual_seed(train.seed)
        model = build_model(to_arch(space, choices, nc))
        counts = trial_counts(model)
        result = fit(model, data, train, progress=False)
        seconds = time.perf_counter() - start
        report["standalone"].append({"design": name, "choices": choices, **counts,
                                     "map50": result.map50, "map50_95": result.map50_95,
                                     "seconds": seconds})  # fmt: skip
        print(f"standalone {name:28s} params={counts['params']:>9,} "
              f"mAP50-95={result.map50_95:.4f}  {seconds:.1f} s", flush=True)  # fmt: skip
    standalone = [r["map50_95"] for r in report["standalone"]]
    standalone_s = sum(r["seconds"] for r in report["standalone"]) / max(len(panel), 1)

    # 2. one supernet per sampling rule, then the candidates
    rng = random.Random(args.seed + 1)
    pool = [c for _, c in panel] + [space.sample(_RandomTrial(rng))
                                    for _ in range(max(args.candidates - len(panel), 0))]
    for rule in args.sampling:
        settings = SupernetSettings(epochs=args.epochs, sampling=rule, bn_batches=args.bn_batches,
                                    finetune_steps=args.finetune_steps)  # fmt: skip
        evaluator = SupernetEvaluator(settings)
        folder = Path(args.out) / f"{rule}-e{args.epochs}"
        start = time.perf_counter()
        evaluator.prepare(EvalContext(space, data, train, folder, None, nc, progress=False))
        prep_s = time.perf_counter() - start
        assert evaluator.run is not None
        print(f"supernet[{rule}]: {evaluator.run.steps} steps, {prep_s:.1f} s "
              f"(training {evaluator.run.seconds:.1f} s, resumed from "
              f"{evaluator.run.resumed_from})", flush=True)  # fmt: skip
        scores, times = [], []
        for choices in pool:
            start = time.perf_counter()
            torch.manual_seed(train.seed)
            model = build_model(to_arch(space, choices, nc))
            trial_counts(model)
            score = evaluator.score(model, choices, data=data, train=train)
            times.append(time.perf_counter() - start)
            scores.append(score.map50_95)
        per = sum(times) / len(times)
        panel_scores = scores[: len(panel)]
        tau, p = kendalltau(panel_scores, standalone) if len(panel) > 1 else (float("nan"),) * 2
        report["supernet"][rule] = {"prepare_seconds": prep_s, "seconds_per_candidate": per,
                                    "panel_scores": panel_scores, "scores": scores,
                                    "kendall_tau": tau, "p_value": p}  # fmt: skip
        in_15 = int(max(900 - prep_s, 0) / per)
        per_hour = 3600 * len(pool) / (prep_s + per * len(pool))
        print(f"supernet[{rule}]: {per:.2f} s per candidate ({len(pool)} scored); "
              f"{per_hour:.0f} candidates/hour amortised; {in_15} within 15 min; "
              f"Kendall tau vs standalone {tau:.3f} (p={p:.3g}) over {len(panel)} designs",
              flush=True)  # fmt: skip
        for (name, _), s, r in zip(panel, panel_scores, standalone, strict=True):
            print(f"  {name:28s} supernet {s:.4f}  standalone {r:.4f}")

    print(f"standalone: {standalone_s:.1f} s per candidate, {3600 / standalone_s:.0f} "
          "candidates/hour")  # fmt: skip
    for rule, r in report["supernet"].items():
        amortised = (r["prepare_seconds"] + r["seconds_per_candidate"] * len(pool)) / len(pool)
        print(f"ratio [{rule}]: {standalone_s / amortised:.1f}x the candidates per hour of "
              f"standalone (amortised), tau {r['kendall_tau']:.3f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
