"""Results of a study: trials.csv, pareto.csv, Pareto plots, the front's YAMLs, a summary.

Layout under ``results/<study_name>/``::

    trials.csv      one row per trial: number, state, design, rung, params, gflops, latency_ms,
                    map50, map50_95_mean, map50_95_sd, n_seeds, train_seconds, proxy_score
                    (a zero-cost rung's score, no mAP), feasible,
                    reason, the choices (param_*)
    pareto.csv      the front: non-dominated feasible candidates at the top rung, by their mean
    pareto_params.png, pareto_gflops.png   mAP50-95 against params / GFLOPs at the top rung,
                    error bars of one sd over seeds; baseline and seed designs labelled
    front/yolov8<scale>-trial<N>.yaml       the front's model YAMLs (ultralytics format)

Noise: the top rung trains each design with several seeds. The noise of a comparison is the
standard error of the difference of two means with the pooled seed sd of the top rung; the
summary calls a design better or worse than the baseline only when the difference exceeds
twice that, and "within noise" otherwise.

Example:
    >>> from nas.search.results import pareto_mask
    >>> pareto_mask([[0.5, 3.0], [0.4, 2.0], [0.3, 2.5]], ["maximize", "minimize"])
    [True, True, False]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nas.search import attrs as A
from nas.search.objective import Objectives
from nas.search.rungs import nondominated_ranks

__all__ = [
    "Noise",
    "front_table",
    "noise_of",
    "pareto_mask",
    "summary_text",
    "trials_table",
    "write_results",
]

logger = logging.getLogger(__name__)

MEAN = "map50_95_mean"  # the trials.csv name of a trial's mean mAP50-95 over its seeds
_TEXT = (A.DESIGN, A.ARCH_HASH, A.DUPLICATE_OF, A.PROMOTED_FROM, A.EVALUATOR, *A.REASONS,
         A.YAML_ARTIFACT, A.WEIGHTS_ARTIFACT)


def pareto_mask(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[bool]:
    """Which points no other point dominates (better or equal everywhere, better somewhere)."""
    return [r == 0 for r in nondominated_ranks(points, directions)]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial (see the module docstring); built from ``study.trials_dataframe``."""
    df = study.trials_dataframe(
        attrs=("number", "state", "params", "user_attrs", "system_attrs", "duration")
    )
    columns = ["number", "state", A.DESIGN, *A.METRICS, MEAN]
    if df.empty:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame({"number": df["number"], "state": df["state"].astype(str)})
    for name in (A.DESIGN, *A.METRICS, *_TEXT[1:]):
        col = f"user_attrs_{name}"
        out[name] = df[col] if col in df else None
    out[A.RUNG] = out[A.RUNG].fillna(0).astype(int)
    out[MEAN] = out[A.MAP50_95]
    out[A.N_SEEDS] = out[A.N_SEEDS].where(out[A.MAP50_95].isna(), out[A.N_SEEDS].fillna(1))
    constraint_cols = [c for c in df if c.startswith("system_attrs_constraints:")]
    if constraint_cols:
        worst = df[constraint_cols].max(axis=1)
        out["feasible"] = worst.isna() | (worst <= 0)
    else:
        out["feasible"] = True
    reason = out[A.REJECT_REASON]
    for name in A.REASONS[1:]:
        reason = reason.fillna(out[name])
    out["reason"] = reason
    out["duration_s"] = df["duration"].dt.total_seconds() if "duration" in df else None
    for col in df:
        if col.startswith("params_"):
            out[col.replace("params_", "param_", 1)] = df[col]
    return out.drop(columns=list(A.REASONS))


def _final(trials: pd.DataFrame, top_rung: int) -> pd.DataFrame:
    """Feasible COMPLETE trials at the top rung (the highest rung reached if none is there)."""
    done = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    done = done.dropna(subset=[MEAN])
    if done.empty:
        return done
    rung = top_rung if (done[A.RUNG] == top_rung).any() else int(done[A.RUNG].max())
    return done[done[A.RUNG] == rung].sort_values("number").drop_duplicates(A.ARCH_HASH)


def front_table(trials: pd.DataFrame, objectives: Objectives, top_rung: int = 0) -> pd.DataFrame:
    """The Pareto front on the top rung's means: feasible candidates, one per architecture.

    The objectives are the study's; in single-objective mode mAP against params is used.
    """
    names = objectives.names if not objectives.single else [objectives.maximize, A.PARAMS]
    names = [MEAN if n == A.MAP50_95 else n for n in names]
    done = _final(trials, top_rung).dropna(subset=names)
    if done.empty:
        return done
    directions = ["maximize"] + ["minimize"] * (len(names) - 1)
    mask = pareto_mask(done[names].astype(float).values.tolist(), directions)
    return done[mask].sort_values(names[1:] + [names[0]])


class Noise:
    """The seed noise of the top rung: pooled sd, and a verdict on a difference of two means."""

    def __init__(self, pooled_sd: float | None) -> None:
        self.pooled_sd = pooled_sd

    def margin(self, n_a: float, n_b: float) -> float | None:
        """Twice the standard error of a difference of two means of n_a and n_b seeds."""
        if self.pooled_sd is None:
            return None
        return 2.0 * self.pooled_sd * math.sqrt(1.0 / max(n_a, 1) + 1.0 / max(n_b, 1))

    def verdict(self, diff: float, n_a: float, n_b: float) -> str:
        """``better``, ``worse`` or ``within noise`` (``unknown`` without a noise estimate)."""
        margin = self.margin(n_a, n_b)
        if margin is None:
            return "unknown noise"
        if diff > margin:
            return "better"
        if diff < -margin:
            return "worse"
        return "within noise"


def noise_of(final: pd.DataFrame) -> Noise:
    """The pooled sd of the designs trained with several seeds (None if there are none)."""
    sd = final[A.MAP50_95_SD].dropna().astype(float) if A.MAP50_95_SD in final else []
    if len(sd) == 0:
        return Noise(None)
    return Noise(math.sqrt(float((sd**2).mean())))


def write_results(
    study: optuna.Study, out_dir: str | Path, objectives: Objectives, *, space: Any = None,
    show: bool = True, top_rung: int | None = None,
) -> dict[str, Path]:
    """Write trials.csv, pareto.csv, the plots and front/*.yaml; log the summary table.

    Args:
        top_rung: the schedule's top rung (None: the study's recorded schedule, else 0).

    Returns:
        The written paths by name (``trials``, ``pareto``, ``plot_params``, ``plot_gflops``,
        ``front``).
    """
    if top_rung is None:
        top_rung = int((study.user_attrs.get(A.SCHEDULE) or {}).get("top", 0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_table(study)
    front = front_table(trials, objectives, top_rung)
    paths = {"trials": out / "trials.csv", "pareto": out / "pareto.csv", "front": out / "front"}
    trials.to_csv(paths["trials"], index=False)
    front.to_csv(paths["pareto"], index=False)
    paths["front"].mkdir(exist_ok=True)
    scale = getattr(space, "scale", "n")
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in front["number"]:
        text = by_number[int(number)].user_attrs.get(A.ARCH_YAML)
        if text:
            (paths["front"] / f"yolov8{scale}-trial{int(number)}.yaml").write_text(text)
    final = _final(trials, top_rung)
    for metric in (A.PARAMS, A.GFLOPS):
        paths[f"plot_{metric}"] = out / f"pareto_{metric}.png"
        plot_front(final, metric, paths[f"plot_{metric}"])
    if show:
        logger.info("\n%s", summary_text(trials, front, objectives, top_rung))
    return paths


def plot_front(final: pd.DataFrame, cost: str, path: Path) -> None:
    """mAP50-95 (mean, sd error bars) against ``cost`` with the 2-D front; designs labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    done = final.dropna(subset=[cost, MEAN])
    scale = 1e6 if cost == A.PARAMS else 1.0
    x, y = done[cost].astype(float) / scale, done[MEAN].astype(float)
    err = done[A.MAP50_95_SD].astype(float).fillna(0.0) if A.MAP50_95_SD in done else None
    ax.errorbar(x, y, yerr=err, fmt="o", ms=4, c="0.55", ecolor="0.75", capsize=2,
                label="candidates (mean, sd over seeds)")
    if not done.empty:
        mask = pareto_mask(done[[MEAN, cost]].astype(float).values.tolist(),
                           ["maximize", "minimize"])
        front = done[mask].sort_values(cost)
        ax.step(front[cost] / scale, front[MEAN], where="post", c="tab:red", lw=1.2)
        ax.scatter(front[cost] / scale, front[MEAN], s=30, c="tab:red", zorder=3,
                   label="Pareto front")
    named = done[done[A.DESIGN].notna()] if A.DESIGN in done else done.iloc[:0]
    for _, row in named.iterrows():
        marker = "*" if row[A.DESIGN] == "baseline" else "D"
        ax.scatter(row[cost] / scale, row[MEAN], s=90 if marker == "*" else 40, marker=marker,
                   c="tab:blue" if marker == "*" else "tab:green", zorder=4)
        ax.annotate(str(row[A.DESIGN]), (row[cost] / scale, row[MEAN]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("parameters (M)" if cost == A.PARAMS else "GFLOPs")
    ax.set_ylabel("mAP50-95 (top rung)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def summary_text(
    trials: pd.DataFrame, front: pd.DataFrame, objectives: Objectives, top_rung: int = 0
) -> str:
    """A fixed-width table at the top rung: the baseline, the seed designs and the front.

    ``vs base`` compares mAP50-95 means with the baseline and says ``better``/``worse`` only
    outside the noise margin (twice the standard error of the difference).
    """
    states = trials["state"].value_counts().to_dict() if not trials.empty else {}
    lines = [f"trials: {len(trials)} ({', '.join(f'{k} {v}' for k, v in states.items())})"]
    final = _final(trials, top_rung)
    noise = noise_of(final)
    if not final.empty:
        rung = int(final[A.RUNG].iloc[0])
        sd = f"{noise.pooled_sd:.4f}" if noise.pooled_sd is not None else "unknown (one seed)"
        lines.append(f"rung {rung}: {len(final)} designs; seed noise (pooled sd) {sd}")
    base = final[final[A.DESIGN] == "baseline"]
    base_row = base.iloc[0] if not base.empty else None
    named = final[final[A.DESIGN].notna()]
    rows = pd.concat([named, front]).drop_duplicates("number")
    header = (f"{'trial':>5} {'design':<26} {'params':>10} {'vs base':>8} {'GFLOPs':>7} "
              f"{'lat ms':>7} {'mAP50':>7} {'mAP50-95':>8} {'sd':>6} {'n':>2}  "
              f"{'mAP vs base':<24} front")
    lines += [header, "-" * len(header)]
    front_numbers = set(front["number"])
    for _, r in rows.sort_values(A.PARAMS).iterrows():
        rel, verdict = "", ""
        if base_row is not None:
            rel = f"{(r[A.PARAMS] / base_row[A.PARAMS] - 1) * 100:+.1f}%"
            if r["number"] != base_row["number"]:
                diff = float(r[MEAN]) - float(base_row[MEAN])
                verdict = (f"{diff:+.4f} "
                           f"{noise.verdict(diff, _n(r), _n(base_row))}")
        design = r[A.DESIGN] if pd.notna(r[A.DESIGN]) else ""
        lines.append(
            f"{int(r['number']):>5} {str(design):<26} {int(r[A.PARAMS]):>10,} {rel:>8} "
            f"{r[A.GFLOPS]:>7.2f} {r[A.LATENCY_MS]:>7.1f} {_num(r[A.MAP50]):>7} "
            f"{_num(r[MEAN]):>8} {_num(r.get(A.MAP50_95_SD)):>6} {int(_n(r)):>2}  "
            f"{verdict:<24} {'*' if r['number'] in front_numbers else ''}"
        )
    return "\n".join(lines)


def _n(row: Any) -> float:
    value = row.get(A.N_SEEDS)
    return float(value) if pd.notna(value) else 1.0


def _num(value: Any) -> str:
    return f"{float(value):.4f}" if value is not None and pd.notna(value) else "-"
