"""The supernet training's record: ``loss.csv``, ``loss.png`` and the study attribute."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.supernet.train import HISTORY_COLUMNS, SupernetRun

if TYPE_CHECKING:
    from nas.supernet.plan import SupernetPlan

__all__ = ["STUDY_ATTR", "summary", "write_history", "write_plot"]

STUDY_ATTR = "supernet"  # the study user attribute holding ``summary``


def summary(run: SupernetRun, plan: SupernetPlan, *, sampling: str, params: int,
            steps_total: int, balance: str = "options") -> dict[str, Any]:  # fmt: skip
    """The JSON-serialisable record of one supernet training (the study attribute)."""
    losses = run.epoch_losses()
    return {
        "epochs": run.epochs,
        "steps": run.steps,
        "steps_total": steps_total,
        "train_seconds": round(run.seconds, 2),
        "train_cpu_seconds": round(run.cpu_seconds, 2),
        "resumed_from": run.resumed_from,
        "sampling": sampling,
        "balance": balance,
        "params": params,
        "branches": [b.label for b in plan.branches],
        "decisions": list(plan.row_decisions),
        "loss_per_epoch": [round(v, 5) for v in losses],
        "final_loss": round(losses[-1], 5) if losses else None,
    }


def write_history(run: SupernetRun, plan: SupernetPlan, path: Path) -> Path:
    """One row per step: step, epoch, branch label, the three loss terms and their sum."""
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [b.label for b in plan.branches]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*HISTORY_COLUMNS, "loss"])
        for step, epoch, branch, box, cls, dfl in run.history:
            writer.writerow([step, epoch, labels[int(branch)], f"{box:.5f}", f"{cls:.5f}",
                             f"{dfl:.5f}", f"{box + cls + dfl:.5f}"])  # fmt: skip
    return path


def write_plot(run: SupernetRun, path: Path) -> Path:
    """The loss curve: every step (light) and the per-epoch mean."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [row[0] for row in run.history]
    totals = [row[3] + row[4] + row[5] for row in run.history]
    ax.plot(steps, totals, lw=0.5, alpha=0.4, label="step")
    per_epoch = run.epoch_losses()
    if per_epoch and steps:
        spe = len(steps) / len(per_epoch)
        ax.plot([(i + 1) * spe for i in range(len(per_epoch))], per_epoch, marker="o", ms=3,
                label="epoch mean")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss (box + cls + dfl, per image)")
    ax.set_title(f"supernet training: {run.steps} steps, {run.seconds:.0f} s")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
