"""Rank statistics of a score against a reference (scipy), and the seed noise of a recipe.

Every score is oriented "higher predicts better" before it gets here (``report`` negates
losses). Ties are allowed (Kendall's tau-b, scipy's default).

Example:
    >>> r = rank_agreement([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0], top_k=2, seed=0)
    >>> round(r.kendall_tau, 3), round(r.spearman, 3), r.top_k_overlap
    (0.667, 0.8, 1.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

__all__ = ["Agreement", "bootstrap_tau", "noise", "rank_agreement", "top_k_overlap"]


@dataclass(frozen=True)
class Agreement:
    """How well a score ranks like the reference over ``n`` designs.

    Attributes:
        kendall_tau: Kendall's tau-b.
        kendall_tau_ci: Bootstrap 90% percentile interval of tau (designs resampled).
        spearman: Spearman's rho.
        top_k_overlap: Share of the reference's top k among the score's top k.
        n: Designs compared.
    """

    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    spearman: float
    top_k_overlap: float
    n: int


def _tau(x: Sequence[float], y: Sequence[float]) -> float:
    return float(kendalltau(x, y).statistic)


def bootstrap_tau(x: Sequence[float], y: Sequence[float], *, resamples: int = 2000,
                  level: float = 0.9, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """Percentile interval of Kendall's tau over designs drawn with replacement.

    Resamples where tau is undefined (a constant side) are dropped; NaN when all are.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(xa), size=(resamples, len(xa)))
    taus = np.array([_tau(xa[i], ya[i]) for i in draws])
    taus = taus[np.isfinite(taus)]
    if taus.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def top_k_overlap(score: Sequence[float], reference: Sequence[float], k: int) -> float:
    """|top k by score & top k by reference| / k (ties broken by position)."""
    k = max(1, min(k, len(score)))
    top_s = set(np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k].tolist())
    top_r = set(np.argsort(-np.asarray(reference, dtype=float), kind="stable")[:k].tolist())
    return len(top_s & top_r) / k


def rank_agreement(score: Sequence[float], reference: Sequence[float], *, top_k: int = 3,
                   resamples: int = 2000, seed: int = 0) -> Agreement:  # fmt: skip
    """Kendall tau (+ bootstrap 90% interval), Spearman and top-k overlap of two rankings."""
    if len(score) != len(reference):
        raise ValueError(f"score has {len(score)} values, reference {len(reference)}")
    return Agreement(
        kendall_tau=_tau(score, reference),
        kendall_tau_ci=bootstrap_tau(score, reference, resamples=resamples, seed=seed),
        spearman=float(spearmanr(score, reference).statistic),
        top_k_overlap=top_k_overlap(score, reference, top_k),
        n=len(score),
    )


@dataclass(frozen=True)
class Noise:
    """Seed noise of one recipe over a panel.

    Attributes:
        per_design_sd: Sample sd (ddof 1) across seeds, per design.
        noise_sd: Pooled sd: sqrt of the mean per-design variance.
        median_sd: Median of ``per_design_sd``.
        retest_tau: Kendall tau between two seeds' rankings, averaged over seed pairs.
        retest_taus: The tau of each seed pair.
    """

    per_design_sd: list[float]
    noise_sd: float
    median_sd: float
    retest_tau: float
    retest_taus: list[float]


def noise(values: np.ndarray) -> Noise:
    """Noise of a ``(designs, seeds)`` matrix of scores (at least 2 seeds)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"noise needs a (designs, seeds >= 2) matrix, got {values.shape}")
    sds = values.std(axis=1, ddof=1)
    pairs = [_tau(values[:, i], values[:, j])
             for i, j in itertools.combinations(range(values.shape[1]), 2)]  # fmt: skip
    return Noise(
        per_design_sd=[float(s) for s in sds],
        noise_sd=float(math.sqrt(float(np.mean(sds**2)))),
        median_sd=float(np.median(sds)),
        retest_tau=float(np.mean(finite)) if (finite := [t for t in pairs if math.isfinite(t)])
        else math.nan,
        retest_taus=[float(t) for t in pairs],
    )
