"""One fidelity measurement: panel + recipes -> ordered jobs -> trainings -> report.

Jobs run in the order that makes a partial measurement useful soonest: the trial recipe's first
seed (the search's score), the reference, the trial recipe's other seeds, the candidates' first
seed, then their other seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.fidelity.cache import RunCache
from nas.fidelity.panel import Design, PanelError, panel_from_models, panel_from_space
from nas.fidelity.recipes import Recipe
from nas.fidelity.runner import Job, run_jobs, synflow_key, synflow_record, train_job

__all__ = ["MeasureError", "Measurement", "build_jobs", "load_panel", "run_measurement"]

logger = logging.getLogger(__name__)


class MeasureError(UserError, ValueError):
    """A measurement that cannot start (unknown study, empty panel...)."""


@dataclass
class Measurement:
    """What to measure (the recipes and seeds) and how (workers, threads)."""

    trial: Recipe
    reference: Recipe
    candidates: list[Recipe] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    reference_seeds: list[int] = field(default_factory=lambda: [0])
    candidate_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 1
    threads: int | None = 1
    top_k: int = 3
    bootstrap: int = 1000  # resamples of the tau intervals
    synflow_imgsz: int = 64  # input side of the SynFlow pass
    train: bool = True
    progress: bool = True
    only: list[str] | None = None  # train only these recipe names / "name@seed"
    train_fn: Callable[[Job], dict[str, Any]] = train_job  # replaced by tests (a fake trainer)

    @property
    def recipes(self) -> list[Recipe]:
        return [self.trial, self.reference, *self.candidates]

    def seeds_of(self, recipe: Recipe) -> list[int]:
        if recipe is self.trial:
            return list(self.seeds)
        if recipe is self.reference:
            return list(self.reference_seeds)
        return list(self.candidate_seeds)


def build_jobs(spec: Measurement, panel: list[Design]) -> list[Job]:
    """The trainings of ``spec`` over ``panel``, most useful first (see the module docstring)."""
    def jobs(recipe: Recipe, seeds: list[int]) -> list[Job]:
        return [Job(d, recipe, s, spec.threads) for s in seeds for d in panel]

    order = jobs(spec.trial, spec.seeds[:1]) + jobs(spec.reference, spec.reference_seeds)
    order += jobs(spec.trial, spec.seeds[1:])
    for recipe in spec.candidates:
        order += jobs(recipe, spec.candidate_seeds[:1])
    for seed in spec.candidate_seeds[1:]:
        for recipe in spec.candidates:
            order += jobs(recipe, [seed])
    if spec.only is not None:
        wanted = set(spec.only)
        order = [j for j in order if j.recipe.name in wanted
                 or f"{j.recipe.name}@{j.seed}" in wanted]  # fmt: skip
    return order


def _num_classes(recipe: Recipe) -> int:
    from nas.data import load_splits

    train, _ = load_splits(recipe.data)
    return train.num_classes


def load_panel(args: Any, spec: Measurement) -> tuple[list[Design], Path, str]:
    """(panel, output folder, label) from the command-line arguments."""
    results = Path(args.results_dir)
    if args.study:
        import optuna

        from nas.fidelity.panel import panel_from_study
        from nas.search.storage import journal_path, resolve_storage

        journal = journal_path(args.storage, args.study, results)
        if journal is not None and not journal.is_file():
            raise MeasureError(f"--study {args.study}: no journal {journal} (run the search "
                               "first, or pass --storage)")  # fmt: skip
        storage, _ = resolve_storage(args.storage, args.study, results)
        try:
            study = optuna.load_study(study_name=args.study, storage=storage)
        except KeyError as e:
            raise MeasureError(f"--study {args.study}: no such study in {args.storage or journal}"
                               ) from e  # fmt: skip
        try:
            panel = panel_from_study(study, args.designs, args.spread)
        except PanelError as e:
            raise MeasureError(str(e)) from e
        suffix = "" if args.spread == "params" else f"-by-{args.spread}"  # one report per panel
        out, label = results / args.study / f"fidelity{suffix}", args.study
    elif args.models:
        panel = panel_from_models(args.models, _num_classes(spec.trial))
        out, label = results / "fidelity", "models"
    else:
        from nas.search.space import SpaceError

        try:
            panel = panel_from_space(args.space, args.sample, _num_classes(spec.trial),
                                     seed=args.panel_seed)  # fmt: skip
        except SpaceError as e:
            raise MeasureError(str(e)) from e
        out, label = results / "fidelity", Path(args.space).stem
    if len(panel) < 3:
        raise MeasureError(f"the panel has {len(panel)} design(s); rank statistics need >= 3")
    return panel, Path(args.out) if args.out else out, label


def run_measurement(spec: Measurement, args: Any) -> dict[str, Any]:
    """Train what is missing, then write the report; returns the summary (``--json``)."""
    panel, out, label = load_panel(args, spec)
    cache = RunCache(args.cache or Path(args.results_dir) / "fidelity-cache.jsonl")
    logger.info("panel: %d designs (%s); cache %s (%d records)", len(panel),
                ", ".join(d.name for d in panel), cache.path, len(cache))  # fmt: skip
    for design in panel:
        if (design.arch_hash, synflow_key(spec.synflow_imgsz), 0) not in cache:
            cache.add(synflow_record(design, spec.synflow_imgsz))
    if spec.train:
        for recipe in spec.recipes:  # generate/download-free data once, before any worker
            _num_classes(recipe)
        run_jobs(build_jobs(spec, panel), cache, workers=spec.workers, train_fn=spec.train_fn,
                 progress=spec.progress)
    from nas.fidelity.report import write_report

    return write_report(spec, panel, cache, out, label=label)
