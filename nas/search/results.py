"""Results of a study: trials.csv, pareto.csv, Pareto plots, the front's YAMLs, a summary.

Layout under ``results/<study_name>/``::

    trials.csv      one row per trial: number, state, design, params, gflops, latency_ms,
                    map50, map50_95, train_seconds, feasible, reason, the choices (param_*)
    pareto.csv      the non-dominated feasible COMPLETE trials (study objectives)
    pareto_params.png, pareto_gflops.png   mAP50-95 against params / GFLOPs; baseline and
                    seed designs marked and labelled, the front drawn as a step line
    front/yolov8<scale>-trial<N>.yaml       the front's model YAMLs (ultralytics format)

Example:
    >>> from nas.search.results import pareto_mask
    >>> pareto_mask([[0.5, 3.0], [0.4, 2.0], [0.3, 2.5]], ["maximize", "minimize"])
    [True, True, False]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nas.search.objective import Objectives

__all__ = ["front_table", "pareto_mask", "summary_text", "trials_table", "write_results"]

METRICS = ("params", "gflops", "latency_ms", "map50", "map50_95", "train_seconds")
_TEXT_ATTRS = ("design", "arch_hash", "duplicate_of", "reject_reason", "prune_reason",
               "fail_reason", "yaml_artifact", "weights_artifact")


def pareto_mask(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[bool]:
    """Which points no other point dominates (better or equal everywhere, better somewhere)."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    # Every coordinate turned to "higher is better".
    pts = [[s * float(v) for s, v in zip(signs, p, strict=True)] for p in points]
    mask = []
    for i, p in enumerate(pts):
        dominated = False
        for j, q in enumerate(pts):
            pairs = list(zip(q, p, strict=True))
            if j != i and all(a >= b for a, b in pairs) and any(a > b for a, b in pairs):
                dominated = True
                break
        mask.append(not dominated)
    return mask


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial (see the module docstring); built from ``study.trials_dataframe``."""
    df = study.trials_dataframe(
        attrs=("number", "state", "params", "user_attrs", "system_attrs", "duration")
    )
    if df.empty:
        return pd.DataFrame(columns=["number", "state", *METRICS])
    out = pd.DataFrame({"number": df["number"], "state": df["state"].astype(str)})
    for name in (*_TEXT_ATTRS[:1], *METRICS, *_TEXT_ATTRS[1:]):
        col = f"user_attrs_{name}"
        out[name] = df[col] if col in df else None
    constraint_cols = [c for c in df if c.startswith("system_attrs_constraints:")]
    if constraint_cols:
        worst = df[constraint_cols].max(axis=1)
        out["feasible"] = worst.isna() | (worst <= 0)
    else:
        out["feasible"] = True
    out["reason"] = (
        out["reject_reason"].fillna(out["prune_reason"]).fillna(out["fail_reason"])
        if "reject_reason" in out else None
    )
    out["duration_s"] = df["duration"].dt.total_seconds() if "duration" in df else None
    for col in df:
        if col.startswith("params_"):
            out[col.replace("params_", "param_", 1)] = df[col]
    return out.drop(columns=["reject_reason", "prune_reason", "fail_reason"])


def front_table(trials: pd.DataFrame, objectives: Objectives) -> pd.DataFrame:
    """The Pareto front: feasible COMPLETE trials, one per architecture, non-dominated.

    The objectives are the study's; in single-objective mode mAP against params is used.
    """
    names = objectives.names if not objectives.single else [objectives.maximize, "params"]
    done = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    done = done.dropna(subset=names).sort_values("number").drop_duplicates("arch_hash")
    if done.empty:
        return done
    directions = ["maximize"] + ["minimize"] * (len(names) - 1)
    mask = pareto_mask(done[names].astype(float).values.tolist(), directions)
    return done[mask].sort_values(names[1:] + [names[0]])


def write_results(
    study: optuna.Study, out_dir: str | Path, objectives: Objectives, *, space: Any = None,
    show: bool = True,
) -> dict[str, Path]:
    """Write trials.csv, pareto.csv, the plots and front/*.yaml; print the summary table.

    Returns:
        The written paths by name (``trials``, ``pareto``, ``plot_params``, ``plot_gflops``,
        ``front``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_table(study)
    front = front_table(trials, objectives)
    paths = {"trials": out / "trials.csv", "pareto": out / "pareto.csv", "front": out / "front"}
    trials.to_csv(paths["trials"], index=False)
    front.to_csv(paths["pareto"], index=False)
    paths["front"].mkdir(exist_ok=True)
    scale = getattr(space, "scale", "n")
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in front["number"]:
        text = by_number[int(number)].user_attrs.get("arch_yaml")
        if text:
            (paths["front"] / f"yolov8{scale}-trial{int(number)}.yaml").write_text(text)
    for metric in ("params", "gflops"):
        paths[f"plot_{metric}"] = out / f"pareto_{metric}.png"
        plot_front(trials, metric, objectives.maximize, paths[f"plot_{metric}"])
    if show:
        print(summary_text(trials, front, objectives))
    return paths


def plot_front(trials: pd.DataFrame, cost: str, metric: str, path: Path) -> None:
    """Scatter ``metric`` against ``cost`` with the 2-D front and the named designs labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    done = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    done = done.dropna(subset=[cost, metric])
    scale = 1e6 if cost == "params" else 1.0
    ax.scatter(done[cost] / scale, done[metric], s=18, c="0.6", label="trials")
    if not done.empty:
        mask = pareto_mask(done[[metric, cost]].astype(float).values.tolist(),
                           ["maximize", "minimize"])
        front = done[mask].sort_values(cost)
        ax.step(front[cost] / scale, front[metric], where="post", c="tab:red", lw=1.2)
        ax.scatter(front[cost] / scale, front[metric], s=30, c="tab:red", label="Pareto front")
    named = done[done["design"].notna()] if "design" in done else done.iloc[:0]
    for _, row in named.iterrows():
        marker = "*" if row["design"] == "baseline" else "D"
        ax.scatter(row[cost] / scale, row[metric], s=90 if marker == "*" else 40, marker=marker,
                   c="tab:blue" if marker == "*" else "tab:green", zorder=3)
        ax.annotate(str(row["design"]), (row[cost] / scale, row[metric]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("parameters (M)" if cost == "params" else "GFLOPs")
    ax.set_ylabel(metric.replace("map50_95", "mAP50-95").replace("map50", "mAP50"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def summary_text(trials: pd.DataFrame, front: pd.DataFrame, objectives: Objectives) -> str:
    """A fixed-width table: the baseline, the seed designs and the front, against the baseline."""
    states = trials["state"].value_counts().to_dict() if not trials.empty else {}
    lines = [f"trials: {len(trials)} ({', '.join(f'{k} {v}' for k, v in states.items())})"]
    base = trials[(trials.get("design") == "baseline") & (trials["state"] == "COMPLETE")]
    base_params = float(base["params"].iloc[0]) if not base.empty else None
    rows = pd.concat([trials[trials["design"].notna() & (trials["state"] == "COMPLETE")], front])
    rows = rows.drop_duplicates("number")
    header = f"{'trial':>5} {'design':<26} {'params':>10} {'vs base':>8} {'GFLOPs':>7} " \
             f"{'lat ms':>7} {'mAP50':>7} {'mAP50-95':>8} front"
    lines += [header, "-" * len(header)]
    front_numbers = set(front["number"])
    for _, r in rows.sort_values("params").iterrows():
        rel = f"{(r['params'] / base_params - 1) * 100:+.1f}%" if base_params else ""
        lines.append(
            f"{int(r['number']):>5} {str(r['design'] if pd.notna(r['design']) else ''):<26} "
            f"{int(r['params']):>10,} {rel:>8} {r['gflops']:>7.2f} {r['latency_ms']:>7.1f} "
            f"{_num(r['map50']):>7} {_num(r['map50_95']):>8} "
            f"{'*' if r['number'] in front_numbers else ''}"
        )
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{float(value):.4f}" if pd.notna(value) else "-"
