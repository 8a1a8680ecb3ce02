"""The fidelity report: every score against the reference, noise, cost; csv/json/md/png.

``write_report`` reads the cached records of the panel, takes the reference's mean mAP50-95 per
design as the truth, and compares with it (``stats.rank_agreement``) the search's own score (a
study's recorded score, else the trial recipe's mAP50-95 at its first seed) and every score of
``scores``. It writes into ``out``: ``fidelity.csv`` (one row per design, recipe and seed),
``fidelity.json`` (the summary and the full table), ``fidelity.md`` (the tables, printed by the
command) and ``fidelity.png`` (the search's score against the reference, error bars = sd over
the trial recipe's seeds).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.fidelity.cache import RunCache
from nas.fidelity.panel import Design
from nas.fidelity.runner import synflow_key
from nas.fidelity.scores import Score, recipe_scores, static_scores
from nas.fidelity.stats import noise, rank_agreement

__all__ = ["CSV_COLUMNS", "records_frame", "summarise", "write_report"]

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["design", "role", "arch_hash", "params", "gflops", "synflow", "search_score",
               "search_rung0", "recipe", "recipe_desc", "seed", "map50_95", "map50", "sotl",
               "val_loss", "cpu_seconds", "wall_seconds", "train_images", "imgsz", "epochs",
               "threads", "error"]  # fmt: skip


def records_frame(spec: Any, panel: list[Design], cache: RunCache) -> pd.DataFrame:
    """One row per (design, recipe, seed) found in the cache (``CSV_COLUMNS``)."""
    rows = []
    for d in panel:
        syn = cache.get((d.arch_hash, synflow_key(spec.synflow_imgsz), 0)) or {}
        for recipe in spec.recipes:
            for seed in spec.seeds_of(recipe):
                rec = cache.get((d.arch_hash, recipe.key, seed))
                if rec is None:
                    continue
                row = {k: rec.get(k) for k in CSV_COLUMNS}
                row.update(design=d.name, role=d.role, arch_hash=d.arch_hash, params=d.params,
                           gflops=d.gflops, synflow=syn.get("synflow"),
                           search_score=d.search_score, search_rung0=d.rung0_score,
                           recipe=recipe.name,
                           recipe_desc=recipe.describe(), seed=seed)  # fmt: skip
                rows.append(row)
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    for col in ("map50_95", "map50", "sotl", "val_loss", "cpu_seconds", "wall_seconds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _design_table(panel: list[Design], cache: RunCache, synflow_imgsz: int) -> pd.DataFrame:
    key = synflow_key(synflow_imgsz)
    syn = {d.name: (cache.get((d.arch_hash, key, 0)) or {}).get("synflow") for d in panel}
    return pd.DataFrame({"params": [d.params for d in panel], "gflops": [d.gflops for d in panel],
                         "synflow": [syn[d.name] for d in panel],
                         "search": [d.search_score for d in panel],
                         "search_rung0": [d.rung0_score for d in panel],
                         "role": [d.role for d in panel]},
                        index=[d.name for d in panel])  # fmt: skip


def _compare(score: Score, truth: dict[str, float], top_k: int,
             resamples: int) -> dict[str, Any] | None:  # fmt: skip
    names = [n for n in truth if n in score.values]
    if len(names) < 3:
        return None
    x = [score.values[n] for n in names]
    y = [truth[n] for n in names]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    agree = rank_agreement(x, y, top_k=top_k, resamples=resamples)
    return {
        "score": score.name, "recipe": score.recipe, "n": agree.n,
        "kendall_tau": agree.kendall_tau, "kendall_tau_ci": list(agree.kendall_tau_ci),
        "spearman": agree.spearman, "top_k_overlap": agree.top_k_overlap,
        "seeds": score.seeds, "cpu_seconds": score.cpu_seconds,
        "wall_seconds": score.wall_seconds,
        "tau_per_cpu_second": agree.kendall_tau / score.cpu_seconds
        if score.cpu_seconds > 0 else None,
    }  # fmt: skip


def _recipe_noise(frame: pd.DataFrame, recipe: str, seeds: list[int]) -> dict[str, Any]:
    rows = frame[frame["recipe"] == recipe]
    table = rows.pivot_table(index="design", columns="seed", values="map50_95", aggfunc="mean")
    table = table.reindex(columns=seeds).dropna()
    if len(seeds) < 2 or len(table) < 2:
        return {"noise_sd": None, "median_sd": None, "retest_tau": None, "n": len(table)}
    result = noise(table.to_numpy())
    return {"noise_sd": result.noise_sd, "median_sd": result.median_sd,
            "retest_tau": result.retest_tau, "retest_taus": result.retest_taus,
            "per_design_sd": dict(zip(table.index, result.per_design_sd, strict=True)),
            "n": len(table)}  # fmt: skip


def _single_seed_tau(rows: list[dict[str, Any]], recipe: str, metric: str) -> float | None:
    """Mean tau of the ``@s<seed>`` scores: what one search with one seed expects."""
    taus = [r["kendall_tau"] for r in rows if r["recipe"] == recipe
            and r["score"].startswith(f"{recipe}:{metric}@s")]  # fmt: skip
    return float(np.mean(taus)) if taus else None


def summarise(spec: Any, panel: list[Design], cache: RunCache) -> dict[str, Any]:
    """The summary dict (``--json``) and the full comparison table (``table``)."""
    frame = records_frame(spec, panel, cache)
    designs = _design_table(panel, cache, spec.synflow_imgsz)
    ref = frame[frame["recipe"] == spec.reference.name].groupby("design")["map50_95"].mean()
    truth = {str(k): float(v) for k, v in ref.dropna().items()}
    scores: list[Score] = []
    for recipe in [spec.trial, *spec.candidates]:
        scores += recipe_scores(frame, recipe.name, spec.seeds_of(recipe))
    scores += static_scores(designs)
    study_values = {n: float(v) for n, v in designs["search"].items()
                    if v is not None and not pd.isna(v)}  # fmt: skip
    first = f"{spec.trial.name}:map50_95@s{spec.seeds[0]}"
    if study_values:
        scores.insert(0, Score("search", "", study_values, 0.0, 0.0, 1))
        first = "search"
    rung0 = {n: float(v) for n, v in designs["search_rung0"].items()
             if v is not None and not pd.isna(v)}  # fmt: skip
    if rung0 and rung0 != study_values:  # a study with several rungs: its rung 0 alone too
        scores.insert(1, Score("search@rung0", "", rung0, 0.0, 0.0, 1))
    rows = (_compare(s, truth, spec.top_k, spec.bootstrap) for s in scores)
    table = [row for row in rows if row is not None]
    by_name = {row["score"]: row for row in table}
    head = by_name.get(first, {})
    trial_noise = _recipe_noise(frame, spec.trial.name, spec.seeds_of(spec.trial))
    proxies = {row["score"]: row["kendall_tau"] for row in table if row["score"] != first}
    computes = {}
    for recipe in spec.recipes:
        rows = frame[frame["recipe"] == recipe.name]
        if not rows.empty:
            computes[recipe.name] = recipe.compute(int(rows["train_images"].median()))
    recipes = {}
    for recipe in [spec.trial, *spec.candidates, spec.reference]:
        rows = frame[frame["recipe"] == recipe.name]
        seeds = spec.seeds_of(recipe)
        recipes[recipe.name] = {
            "desc": recipe.describe(), "overrides": list(recipe.overrides), "key": recipe.key,
            "seeds": seeds, "trainings": int(rows["map50_95"].notna().sum()),
            "cpu_seconds_per_training": _mean(rows["cpu_seconds"]),
            "wall_seconds_per_training": _mean(rows["wall_seconds"]),
            "compute_vs_trial": computes.get(recipe.name, math.nan)
            / computes.get(spec.trial.name, math.nan),
            "single_seed_tau": _single_seed_tau(table, recipe.name, "map50_95"),
            **_recipe_noise(frame, recipe.name, seeds),
        }  # fmt: skip
    return {
        "kendall_tau": head.get("kendall_tau"),
        "kendall_tau_ci": head.get("kendall_tau_ci"),
        "spearman": head.get("spearman"),
        "n_designs": head.get("n", 0),
        "noise_sd": trial_noise["noise_sd"],
        "retest_tau": trial_noise["retest_tau"],
        "proxies": proxies,
        "score": first,
        "top_k_overlap": head.get("top_k_overlap"),
        "reference": spec.reference.describe(),
        "panel": len(panel),
        "recipes": recipes,
        "table": table,
        "frame": frame,
        "designs": designs,
        "truth": truth,
    }


def _mean(series: pd.Series) -> float | None:
    values = series.dropna()
    return float(values.mean()) if len(values) else None


def write_report(spec: Any, panel: list[Design], cache: RunCache, out: str | Path, *,
                 label: str = "") -> dict[str, Any]:  # fmt: skip
    """Write fidelity.csv/json/md/png into ``out``; return the JSON-able summary."""
    from nas.fidelity.render import markdown, plot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(spec, panel, cache)
    frame, designs, truth = summary.pop("frame"), summary.pop("designs"), summary.pop("truth")
    summary["label"] = label
    summary["out"] = str(out)
    frame.to_csv(out / "fidelity.csv", index=False)
    (out / "fidelity.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    (out / "fidelity.md").write_text(markdown(summary, designs, frame, spec))
    plot(out / "fidelity.png", frame, truth, spec, summary)
    return json.loads(json.dumps(summary, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
