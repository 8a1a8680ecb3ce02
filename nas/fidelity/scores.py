"""The candidate scores of a measurement, each oriented so that higher predicts better.

From the records of one recipe (one per design and seed) a score is a metric at one seed
(``@s0``: what a search with one training per design sees) or averaged over the seeds
(``@mean``: that many trainings per design). Metrics: ``map50_95``, ``map50``, ``sotl`` (sum of
the per-epoch training losses, negated: lower loss predicts better) and ``val_loss`` (negated).
Static scores need no training: ``params`` and ``gflops`` ranked descending (at equal training a
bigger detector usually reaches a higher mAP, so "bigger is better" is the baseline proxy a
search must beat) and ``synflow`` (higher is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

__all__ = ["METRICS", "STATIC", "Score", "recipe_scores", "static_scores"]

METRICS = {"map50_95": 1.0, "map50": 1.0, "sotl": -1.0, "val_loss": -1.0}  # name: sign
STATIC = {"params": 1.0, "gflops": 1.0, "synflow": 1.0}


@dataclass(frozen=True)
class Score:
    """One score's values per design (higher predicts better) and its training cost.

    Attributes:
        name: ``<recipe>:<metric>@s<seed>`` / ``@mean``, or a static score's name.
        recipe: The recipe's name ('' for static scores).
        values: Oriented value per design name.
        cpu_seconds: Mean training CPU-seconds per design (all trainings the score needs).
        wall_seconds: The same in wall seconds.
        seeds: Trainings per design.
    """

    name: str
    recipe: str
    values: dict[str, float]
    cpu_seconds: float
    wall_seconds: float
    seeds: int


def _complete(frame: pd.DataFrame, metric: str, seeds: Sequence[int]) -> pd.DataFrame:
    """Designs x seeds of ``metric``, only designs with every seed present and finite."""
    table = frame.pivot_table(index="design", columns="seed", values=metric, aggfunc="mean")
    table = table.reindex(columns=list(seeds))
    return table.dropna()


def recipe_scores(frame: pd.DataFrame, recipe: str, seeds: Sequence[int]) -> list[Score]:
    """The ``@s<seed>`` and ``@mean`` scores of one recipe's records (``frame`` rows)."""
    rows = frame[frame["recipe"] == recipe]
    out: list[Score] = []
    if rows.empty:
        return out
    cost = rows.groupby("design")[["cpu_seconds", "wall_seconds"]].mean()
    for metric, sign in METRICS.items():
        if metric not in rows or rows[metric].isna().all():
            continue
        for seed in seeds:
            table = _complete(rows, metric, [seed])
            if table.empty:
                continue
            out.append(_score(f"{recipe}:{metric}@s{seed}", recipe, table, sign, cost, 1))
        table = _complete(rows, metric, seeds)
        if len(seeds) > 1 and not table.empty:
            out.append(_score(f"{recipe}:{metric}@mean", recipe, table, sign, cost, len(seeds)))
    return out


def _score(name: str, recipe: str, table: pd.DataFrame, sign: float, cost: pd.DataFrame,
           seeds: int) -> Score:  # fmt: skip
    values = {str(d): sign * float(v) for d, v in table.mean(axis=1).items()}
    designs = list(values)
    return Score(name, recipe, values,
                 seeds * float(cost.loc[designs, "cpu_seconds"].mean()),
                 seeds * float(cost.loc[designs, "wall_seconds"].mean()), seeds)  # fmt: skip


def static_scores(designs: pd.DataFrame) -> list[Score]:
    """``params``, ``gflops``, ``synflow`` scores from a per-design table (name index)."""
    out = []
    for name, sign in STATIC.items():
        if name not in designs:
            continue
        values = {str(d): sign * float(v) for d, v in designs[name].items()
                  if v is not None and math.isfinite(float(v))}  # fmt: skip
        out.append(Score(name, "", values, 0.0, 0.0, 0))
    return out
