"""The panel: which designs a fidelity measurement trains.

Three sources, each giving ``Design`` records (model YAML text, its ``arch_hash`` as the search
computes it, params, GFLOPs and, from a study, the search's own score):

- ``panel_from_study``: the baseline, the seed designs, the Pareto front (mAP50-95 against
  params) and further designs spread evenly over the study's params range, or over its rung-0
  score (``spread_by="score"``: from the designs the search rated worst to those it rated best,
  the range its cheapest score has to rank);
- ``panel_from_models``: model YAML files (or names under ``models/``);
- ``panel_from_space``: the baseline, the space's seeds and ``k`` designs sampled with a seeded
  Optuna ``RandomSampler``, of which a spread over params is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.search import attrs as A

__all__ = ["SPREAD_BY", "Design", "PanelError", "design_from_yaml", "panel_from_models",
           "panel_from_space", "panel_from_study", "spread"]  # fmt: skip

logger = logging.getLogger(__name__)


class PanelError(UserError, ValueError):
    """No usable design (names the study / file and what was missing)."""


@dataclass(frozen=True)
class Design:
    """One design of the panel.

    Attributes:
        name: Label (``baseline``, a seed design's name, ``trial12``, a file stem...).
        arch_yaml: The model YAML text (the search's ``arch_yaml``).
        arch_hash: sha256 of ``arch_yaml`` (16 hex digits, as ``nas.search.objective``).
        params: Parameter count.
        gflops: GFLOPs at 640 px.
        search_score: The search's own score (a study's ``map50_95``), None outside a study.
        role: ``baseline``, ``seed``, ``front`` or ``other``.
        rung0_score: The study's score at its cheapest rung, which every candidate gets (a
            supernet study's weight-sharing score), None outside a study.
    """

    name: str
    arch_yaml: str
    arch_hash: str
    params: int
    gflops: float
    search_score: float | None = None
    role: str = "other"
    rung0_score: float | None = None


def design_from_yaml(name: str, text: str, *, role: str = "other",
                     search_score: float | None = None) -> Design:  # fmt: skip
    """A ``Design`` of a model YAML text (built once to count params and GFLOPs)."""
    from nas.model.counting import count_gflops, count_params
    from nas.model.detector import build_model
    from nas.search.objective import arch_hash

    model = build_model(text_to_arch(text))
    return Design(name, text, arch_hash(text), count_params(model),
                  float(count_gflops(model, imgsz=640)), search_score, role)  # fmt: skip


def text_to_arch(text: str) -> Any:
    """The ``Architecture`` of a model YAML text."""
    import yaml

    from nas.model.arch import load_arch

    return load_arch(yaml.safe_load(text))


def spread(values: Sequence[float], k: int) -> list[int]:
    """Indices of ``k`` values spread evenly over their range, sorted by value.

    For each of ``k`` evenly spaced points from the smallest to the largest value, the nearest
    value not yet taken (so the extremes are always kept).

    Example:
        >>> spread([1.0, 1.1, 1.2, 5.0, 9.0], 3)
        [0, 3, 4]
    """
    if k <= 0 or not values:
        return []
    if k >= len(values):
        return [int(i) for i in np.argsort(values, kind="stable")]
    arr = np.asarray(values, dtype=float)
    free = np.ones(len(arr), dtype=bool)
    picks = []
    for target in np.linspace(arr.min(), arr.max(), k):
        dist = np.where(free, np.abs(arr - target), np.inf)
        best = int(np.argmin(dist))
        free[best] = False
        picks.append(best)
    return sorted(picks, key=lambda i: (arr[i], i))


def _dedupe(designs: Iterable[Design]) -> list[Design]:
    seen: set[str] = set()
    out = []
    for d in designs:
        if d.arch_hash not in seen:
            seen.add(d.arch_hash)
            out.append(d)
    return out


def panel_from_models(paths: Sequence[str | Path], nc: int) -> list[Design]:
    """Designs of model YAML files (paths or ``models/`` names), at ``nc`` classes."""
    from nas.model.arch import dump_arch, load_arch

    designs = []
    for path in paths:
        try:
            arch = load_arch(path, nc=nc)
        except (OSError, ValueError) as e:
            raise PanelError(f"--models {path}: {e}") from e
        role = "baseline" if Path(str(path)).stem in ("yolov8n", "yolov8") else "other"
        designs.append(design_from_yaml(Path(str(path)).stem, dump_arch(arch), role=role))
    return _dedupe(designs)


def panel_from_space(space_path: str | Path, k: int, nc: int, *, seed: int = 0,
                     pool: int | None = None) -> list[Design]:  # fmt: skip
    """The baseline, the space's seed designs, and ``k`` sampled designs spread over params.

    ``pool`` candidates (default ``4 * k``) are drawn with a seeded ``RandomSampler``; the ``k``
    kept are spread evenly over their parameter counts.
    """
    import optuna

    from nas.model.arch import dump_arch
    from nas.search.space import load_space
    from nas.search.wiring import to_arch

    space = load_space(space_path)
    named = {"baseline": space.baseline_choices(), **space.seeds}
    fixed = [design_from_yaml(name, dump_arch(to_arch(space, choices, nc)),
                              role="baseline" if name == "baseline" else "seed")
             for name, choices in named.items()]  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    hashes = {d.arch_hash for d in fixed}
    sampled: list[Design] = []
    for i in range(pool or 4 * k):
        trial = study.ask()
        design = design_from_yaml(f"sample{i}", dump_arch(to_arch(space, space.sample(trial), nc)))
        study.tell(trial, 0.0)
        if design.arch_hash not in hashes:
            hashes.add(design.arch_hash)
            sampled.append(design)
    kept = [sampled[i] for i in spread([d.params for d in sampled], k)]
    return fixed + sorted(kept, key=lambda d: d.params)


def _study_score(attrs: dict[str, Any]) -> float | None:
    """The search's score of a trial: its rung's mean mAP50-95 over seeds (None: not trained)."""
    return None if attrs.get(A.MAP50_95) is None else float(attrs[A.MAP50_95])


def _rung0_score(attrs: dict[str, Any]) -> float | None:
    """A trial's score at the cheapest rung: its mAP50-95, or a zero-cost rung's proxy."""
    score = _study_score(attrs)
    return score if score is not None else attrs.get(A.PROXY)


def _by_params(d: Design) -> float:
    return float(d.params)


def _by_score(d: Design) -> float:
    """The design's rung-0 score (every candidate has one), else its search score."""
    score = d.rung0_score if d.rung0_score is not None else d.search_score
    return float("nan") if score is None else float(score)


# what a study panel's further designs are spread over (``panel_from_study``'s ``spread_by``)
SPREAD_BY = {"params": _by_params, "score": _by_score}


def panel_from_study(study: Any, n: int, spread_by: str = "params") -> list[Design]:
    """Baseline, seeds, the front, then designs spread over ``spread_by``, ``n`` if possible.

    Designs the search trained come first; a study with a zero-cost screening rung fills the
    panel with designs only screened (no mAP: scored by ``search@rung0`` alone) when it has
    fewer than ``n`` trained ones. ``spread_by``: ``params`` (the study's size range) or
    ``score`` (its rung-0 score's range: the designs the search rejected as well as those it
    kept, which is what a screening score has to tell apart).

    Raises:
        PanelError: the study has no COMPLETE trial with ``arch_yaml`` and a score; an unknown
            ``spread_by``.
    """
    from optuna.trial import TrialState

    from nas.search.results import pareto_mask

    if spread_by not in SPREAD_BY:
        raise PanelError(f"spread_by={spread_by!r}; valid: {sorted(SPREAD_BY)}")
    key = SPREAD_BY[spread_by]
    rows = []
    rung0: dict[str, float] = {}  # the rung-0 score of each design (its first trial there)
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                    key=lambda t: t.number):  # fmt: skip
        a = t.user_attrs
        if not int(a.get(A.RUNG) or 0) and a.get(A.ARCH_HASH) and _rung0_score(a) is not None:
            rung0.setdefault(str(a[A.ARCH_HASH]), float(_rung0_score(a)))
        if not a.get(A.ARCH_YAML) or _rung0_score(a) is None or a.get(A.DUPLICATE_OF) is not None:
            continue
        design = str(a.get(A.DESIGN) or f"trial{t.number}")
        role = "baseline" if design == "baseline" else "seed" if a.get(A.DESIGN) else "other"
        rows.append((t.number, design, role, a, _study_score(a)))
    if not rows:
        raise PanelError(f"study {study.study_name!r}: no COMPLETE trial with arch_yaml and "
                         "map50_95")  # fmt: skip
    # a design trained at several rungs (or trials): keep its highest rung's (trained) score
    rows.sort(key=lambda r: (r[4] is None, -int(r[3].get(A.RUNG) or 0), r[0]))

    def make(r: tuple) -> Design:
        a = r[3]
        if a.get(A.PARAMS) is None or a.get(A.GFLOPS) is None or not a.get(A.ARCH_HASH):
            return replace(design_from_yaml(r[1], a[A.ARCH_YAML], role=r[2], search_score=r[4]),
                           rung0_score=rung0.get(str(a.get(A.ARCH_HASH))))
        return Design(r[1], a[A.ARCH_YAML], str(a[A.ARCH_HASH]), int(a[A.PARAMS]),
                      float(a[A.GFLOPS]), r[4], r[2], rung0.get(str(a[A.ARCH_HASH])))  # fmt: skip

    designs = _dedupe(make(r) for r in rows)
    trained = [d for d in designs if d.search_score is not None]
    front = pareto_mask([[d.search_score, float(d.params)] for d in trained],
                        ["maximize", "minimize"])  # fmt: skip
    chosen = [d for d in trained if d.role != "other"]
    chosen += [replace(d, role="front") for d, f in zip(trained, front, strict=True)
               if f and d.role == "other"]  # fmt: skip
    for pool in (trained, designs):  # the trained designs first, then the screened ones
        hashes = {d.arch_hash for d in chosen}
        rest = [d for d in pool if d.arch_hash not in hashes and not math.isnan(key(d))]
        chosen += [rest[i] for i in spread([key(d) for d in rest], n - len(chosen))]
    panel = _dedupe(chosen)
    if len(panel) < n:
        logger.warning("study %r has only %d distinct designs (asked for %d)",
                       study.study_name, len(panel), n)  # fmt: skip
    return panel
