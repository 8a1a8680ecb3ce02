"""Deployment runtime against PyTorch eager: latency of yolov8n and the light variants.

Run from the repository root (needs the ``[deploy]`` extra)::

    .venv/bin/python benchmarks/bench_runtime.py [--imgsz 320] [--threads 2] [--repeats 20]
                                                 [--rounds 3]
    .venv/bin/python benchmarks/bench_runtime.py --study liteyolo [--results-dir results]

For every model of ``models/`` at scale n (nc 80), or every distinct design a search study
visited (``--study``: one per ``arch_hash``, with the study's class count): batch-1 latency
in PyTorch eager mode (``nas.model.counting.measure_latency``, ``torch.set_num_threads``) and in
onnxruntime's CPU execution provider (``nas.deploy.latency``: static-shape export, the same
intra-op thread count, sequential execution). Both are measured in this process, in
``--rounds`` rounds over all models (each measurement after its warm-up); the table prints
the median over rounds, the onnxruntime IQR and the ratio onnxruntime / eager. Then the
Kendall tau (``scipy.stats.kendalltau``) between the two
runtimes' latency rankings of the designs: 1 = they order the designs identically, so a
search optimising eager latency optimises deployed latency; lower = the eager objective
misleads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from scipy import stats

from nas.deploy.latency import measure_session_latency
from nas.deploy.onnx_export import export_onnx
from nas.model import build_model, count_gflops, count_params, measure_latency
from nas.model.arch import load_arch

MODELS = (
    "yolov8n.yaml",
    "yolov8n-ghost.yaml",
    "yolov8n-ghostnet.yaml",
    "yolov8n-adown.yaml",
    "yolov8n-adown-head.yaml",
    "yolov8n-csppc.yaml",
    "yolov8n-faster.yaml",
    "yolov8n-afpn.yaml",
    "yolov8n-timm-ghostnet.yaml",
)


def study_designs(study_name: str, results_dir: str, storage: str | None) -> dict[str, object]:
    """``trial<N>`` -> Architecture for the first trial of each distinct design of a study."""
    import optuna

    from nas.search.storage import resolve_storage

    backend, _ = resolve_storage(storage, study_name, results_dir)
    study = optuna.load_study(study_name=study_name, storage=backend)
    designs: dict[str, object] = {}
    seen: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        text, key = t.user_attrs.get("arch_yaml"), t.user_attrs.get("arch_hash")
        if text and key not in seen:
            seen.add(key)
            designs[f"trial{t.number}"] = load_arch(text)
    return designs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--study", default=None, help="time a study's designs instead")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--storage", default=None, help="the study's storage (default: journal)")
    args = parser.parse_args()
    sources: dict[str, object] = {n: n for n in args.models}
    if args.study:
        sources = study_designs(args.study, args.results_dir, args.storage)
        args.models = list(sources)

    torch.set_num_threads(args.threads)
    eager_runs: dict[str, list[float]] = {n: [] for n in args.models}
    ort_runs: dict[str, list[float]] = {n: [] for n in args.models}
    iqr: dict[str, list[float]] = {n: [] for n in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        models, paths = {}, {}
        for name in args.models:
            torch.manual_seed(0)
            models[name] = build_model(sources[name], nc=None if args.study else 80).eval()
            paths[name] = export_onnx(models[name], Path(tmp) / f"{Path(name).stem}.onnx",
                                      imgsz=args.imgsz)  # fmt: skip
        # rounds over all models, so a change of machine load spreads over every design
        for r in range(args.rounds):
            for name in args.models:
                eager = measure_latency(models[name], imgsz=args.imgsz, warmup=args.warmup,
                                        repeats=args.repeats)  # fmt: skip
                ort = measure_session_latency(paths[name], threads=args.threads,
                                              warmup=args.warmup,
                                              repeats=args.repeats)  # fmt: skip
                eager_runs[name].append(eager.median_ms)
                ort_runs[name].append(ort.median_ms)
                iqr[name].append(ort.iqr_ms)
                print(f"round {r + 1} {name:28s} eager {eager.median_ms:7.2f} ms  onnxruntime "
                      f"{ort.median_ms:7.2f} ms", flush=True)
    rows = [(name, count_params(models[name]), count_gflops(models[name], 640),
             statistics.median(eager_runs[name]), statistics.median(ort_runs[name]),
             statistics.median(iqr[name])) for name in args.models]  # fmt: skip

    print(f"\nbatch 1, {args.imgsz} px, {args.threads} threads; per model the median over "
          f"{args.rounds} rounds of the median of {args.repeats} runs")
    print("| model | params | GFLOPs@640 | eager ms | ORT ms | ORT IQR | ORT / eager |")
    print("|---|---|---|---|---|---|---|")
    for name, params, gflops, eager, ort, spread in rows:
        print(f"| {Path(name).stem} | {params:,} | {gflops:.2f} | {eager:.2f} | {ort:.2f} | "
              f"{spread:.2f} | {ort / eager:.2f} |")
    if len(rows) >= 2:
        tau = stats.kendalltau([r[3] for r in rows], [r[4] for r in rows])
        print(f"\nKendall tau between the eager and onnxruntime latency rankings of "
              f"{len(rows)} designs: {tau.statistic:.3f} (p = {tau.pvalue:.3f})")
        flops = stats.kendalltau([r[2] for r in rows], [r[4] for r in rows])
        mean_ratio = statistics.geometric_mean([r[4] / r[3] for r in rows])
        print(f"Geometric mean of ORT / eager: {mean_ratio:.2f}")
        print(f"Kendall tau between GFLOPs and onnxruntime latency: {flops.statistic:.3f}")


if __name__ == "__main__":
    main()
