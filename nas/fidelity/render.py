"""Human-readable outputs of a report: the markdown tables and the scatter plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["markdown", "plot"]


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(summary: dict[str, Any], designs: pd.DataFrame, frame: pd.DataFrame,
             spec: Any) -> str:  # fmt: skip
    """The report as markdown: headline, scores table, recipes table, per-design table."""
    ci = summary.get("kendall_tau_ci") or [None, None]
    lines = [
        f"# Fidelity: {summary.get('label', '')}",
        "",
        f"Search's score `{summary['score']}` against the reference ({summary['reference']}): "
        f"Kendall tau **{_f(summary['kendall_tau'], 2)}** (90% CI {_f(ci[0], 2)} .. "
        f"{_f(ci[1], 2)}), Spearman {_f(summary['spearman'], 2)}, over "
        f"{summary['n_designs']} designs; trial-recipe noise (pooled sd of mAP50-95 over seeds) "
        f"{_f(summary['noise_sd'], 4)}, test-retest tau {_f(summary['retest_tau'], 2)}.",
        "",
        "| score | n | Kendall tau | 90% CI | Spearman | top-k | trainings/design "
        "| CPU-s/design | tau per CPU-s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(summary["table"], key=lambda r: (r["cpu_seconds"], r["score"])):
        lo, hi = row["kendall_tau_ci"]
        lines.append(
            f"| `{row['score']}` | {row['n']} | {_f(row['kendall_tau'], 2)} | "
            f"{_f(lo, 2)} .. {_f(hi, 2)} | {_f(row['spearman'], 2)} | "
            f"{_f(row['top_k_overlap'], 2)} | {row['seeds']} | {_f(row['cpu_seconds'], 1)} | "
            f"{_f(row['tau_per_cpu_second'], 4)} |"
        )
    lines += ["", "| recipe | what | compute vs trial | trainings | CPU-s/training | "
              "wall-s/training | noise sd | retest tau | single-seed tau |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in summary["recipes"].items():
        lines.append(
            f"| {name} | {r['desc']} | {_f(r['compute_vs_trial'], 2)} | {r['trainings']} | "
            f"{_f(r['cpu_seconds_per_training'], 1)} | {_f(r['wall_seconds_per_training'], 1)} "
            f"| {_f(r['noise_sd'], 4)} | {_f(r['retest_tau'], 2)} | "
            f"{_f(r['single_seed_tau'], 2)} |"
        )
    lines += ["", "Per design (mAP50-95; trial recipe mean +- sd over seeds):", "",
              "| design | role | params | GFLOPs | synflow | trial mean | trial sd | reference |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    trial = frame[frame["recipe"] == spec.trial.name].groupby("design")["map50_95"]
    ref = frame[frame["recipe"] == spec.reference.name].groupby("design")["map50_95"].mean()
    mean, sd = trial.mean(), trial.std()
    for name, d in designs.sort_values("params").iterrows():
        lines.append(
            f"| {name} | {d['role']} | {int(d['params']):,} | {_f(float(d['gflops']), 2)} | "
            f"{_f(d['synflow'], 2)} | {_f(mean.get(name), 4)} | {_f(sd.get(name), 4)} | "
            f"{_f(ref.get(name), 4)} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: Path, frame: pd.DataFrame, truth: dict[str, float], spec: Any,
         summary: dict[str, Any]) -> None:  # fmt: skip
    """The trial recipe's mAP50-95 (mean, sd over seeds; first seed marked) vs the reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = frame[frame["recipe"] == spec.trial.name]
    stats = rows.groupby("design")["map50_95"].agg(["mean", "std"])
    first = rows[rows["seed"] == spec.seeds[0]].set_index("design")["map50_95"]
    names = [n for n in stats.index if n in truth]
    x = [truth[n] for n in names]
    ax.errorbar(x, [stats.loc[n, "mean"] for n in names],
                yerr=[0 if pd.isna(stats.loc[n, "std"]) else stats.loc[n, "std"] for n in names],
                fmt="o", capsize=3, label=f"{spec.trial.name}: mean +- sd over seeds")  # fmt: skip
    have = [n for n in names if n in first.index]
    ax.scatter([truth[n] for n in have], [first[n] for n in have], marker="x", color="C3",
               label=f"seed {spec.seeds[0]} (the search's score)", zorder=3)  # fmt: skip
    for n, xv in zip(names, x, strict=True):
        ax.annotate(n, (xv, stats.loc[n, "mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel(f"reference mAP50-95 ({spec.reference.describe()})")
    ax.set_ylabel(f"trial mAP50-95 ({spec.trial.describe()})")
    tau = summary.get("kendall_tau")
    ax.set_title(f"{summary['score']} vs reference: Kendall tau "
                 f"{'-' if tau is None else f'{tau:.2f}'} (n={summary['n_designs']})")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
