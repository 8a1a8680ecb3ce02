"""Evaluators: how a search trial turns a built candidate into its accuracy (a registry).

An evaluator receives the candidate already built (``Detector``, its counts taken) and returns
a :class:`Score`. Three are shipped:

- ``standalone``: trains the candidate from scratch with the rung's recipe (``nas.train.fit``);
- ``supernet`` (``nas.supernet``): inherits the weights of one supernet trained once per study,
  recalibrates BatchNorm and optionally fine-tunes a few steps;
- ``synflow``: no training at all, the SynFlow zero-cost score (``nas.fidelity.proxies``), for
  a screening rung: its score is a rank signal (``Score.proxy``), not a mAP.

A new evaluator is a class with ``@register_evaluator("name")`` and ``from_config(values)``;
``conf/evaluator/<name>.yaml`` holds its settings (``name:`` selects the class). One whose
``prepare`` needs the study (``study_wide = True``: the supernet) scores a rung only as the
study's evaluator; the others may be named by any rung (``Rung.evaluator``).

Example:
    >>> from nas.search.evaluators import evaluator_names
    >>> "standalone" in evaluator_names()
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from nas.data import PreparedData
    from nas.search.space import SearchSpace
    from nas.train import TrainConfig

__all__ = [
    "EvalContext",
    "Evaluator",
    "Score",
    "StandaloneEvaluator",
    "SynFlowEvaluator",
    "evaluator_names",
    "make_evaluator",
    "register_evaluator",
]


@dataclass(frozen=True)
class Score:
    """An evaluator's verdict on one candidate at one rung.

    Attributes:
        map50: mAP50 on the validation set (pycocotools); None for a zero-cost score.
        map50_95: mAP50-95 on the validation set; None for a zero-cost score.
        seconds: Wall time spent on this candidate (training or weight inheritance + eval).
        epochs: Training epochs run for this candidate (0 when only inherited).
        attrs: Extra user attributes the trial records (e.g. ``supernet_steps``).
        proxy: A training-free score (higher is better; only its ranking means something),
            given instead of the mAPs by a zero-cost evaluator.
    """

    map50: float | None
    map50_95: float | None
    seconds: float
    epochs: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)
    proxy: float | None = None

    def __post_init__(self) -> None:
        if (self.proxy is None) == (self.map50_95 is None):
            raise ValueError("a Score holds either the mAPs or a proxy score")


@dataclass
class EvalContext:
    """What an evaluator may use once per process (``prepare``).

    Attributes:
        space: The search space (a supernet is built from it).
        data: The prepared data of the cheapest rung (training and validation caches).
        train: The cheapest rung's training recipe.
        out_dir: ``results/<study_name>/`` (checkpoints go under it).
        study: The Optuna study (study-level records: a supernet's cost and loss curve).
        nc: Number of classes.
        progress: Show progress bars.
    """

    space: SearchSpace
    data: PreparedData
    train: TrainConfig
    out_dir: Path
    study: optuna.Study | None
    nc: int
    progress: bool = False


class Evaluator(Protocol):
    """Turns a built candidate into a :class:`Score`."""

    name: ClassVar[str]

    def prepare(self, ctx: EvalContext) -> None:
        """Once per process before the first trial (a supernet trains or resumes here)."""

    def score(
        self,
        model: nn.Module,
        choices: Mapping[str, Any],
        *,
        data: PreparedData,
        train: TrainConfig,
        on_epoch: Callable[[Any], None] | None = None,
        progress: bool = False,
    ) -> Score:
        """Score ``model`` (the standalone build of ``choices``; it may be trained in place)."""


_EVALUATORS: dict[str, type] = {}


def register_evaluator(name: str) -> Callable[[type], type]:
    """Class decorator: make an evaluator selectable as ``evaluator=<name>``."""

    def wrap(cls: type) -> type:
        if name in _EVALUATORS:
            raise ValueError(f"evaluator {name!r} is already registered")
        cls.name = name
        _EVALUATORS[name] = cls
        return cls

    return wrap


def _load_plugins() -> None:
    """Import the modules that register the shipped evaluators outside this file."""
    import importlib

    for module in ("nas.supernet",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:  # not there yet: only the standalone evaluator
            if e.name != module:
                raise


def evaluator_names() -> list[str]:
    """The registered evaluator names."""
    _load_plugins()
    return sorted(_EVALUATORS)


def is_study_wide(name: str) -> bool:
    """Whether evaluator ``name`` must be the study's own (its ``prepare`` needs the study)."""
    _load_plugins()
    return bool(getattr(_EVALUATORS.get(name), "study_wide", False))


def make_evaluator(values: Mapping[str, Any] | None) -> Evaluator:
    """The evaluator a config mapping names (``{"name": ..., **settings}``; None: standalone)."""
    values = dict(values or {"name": "standalone"})
    name = values.pop("name", "standalone")
    _load_plugins()
    if name not in _EVALUATORS:
        raise ValueError(f"evaluator.name: {name!r}; valid: {sorted(_EVALUATORS)}")
    return _EVALUATORS[name].from_config(values)


@register_evaluator("standalone")
class StandaloneEvaluator:
    """Trains every candidate from scratch with the rung's recipe (``nas.train.fit``).

    Args:
        fit: The training function (``nas.train.fit``; tests pass a fake one).
    """

    name: ClassVar[str]

    def __init__(self, fit: Callable[..., Any] | None = None) -> None:
        self.fit = fit

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> StandaloneEvaluator:
        if values:
            raise ValueError(
                f"evaluator=standalone: unknown key(s) {sorted(values)}; it has no settings"
            )
        return cls()

    def prepare(self, ctx: EvalContext) -> None:
        return None

    def score(
        self,
        model: nn.Module,
        choices: Mapping[str, Any],
        *,
        data: PreparedData,
        train: TrainConfig,
        on_epoch: Callable[[Any], None] | None = None,
        progress: bool = False,
    ) -> Score:
        fit = self.fit
        if fit is None:
            from nas.train import fit
        model.to(train.device)
        result = fit(model, data, train, on_epoch=on_epoch, progress=progress)
        return Score(
            map50=float(result.map50),
            map50_95=float(result.map50_95),
            seconds=float(result.train_seconds),
            epochs=int(result.epochs),
        )


@register_evaluator("synflow")
class SynFlowEvaluator:
    """The SynFlow zero-cost score of the untrained candidate (log10; no data, no training).

    A screening rung: a fraction of a second per candidate, so a search can rank many more
    candidates than it trains. SynFlow ranked designs better than any single brief training on
    four of the five fidelity panels measured, on both data sets (README, "Fidelity"); it grows
    with the parameter count, so as a Pareto objective against params it ranks designs by their
    score per parameter.

    Args:
        imgsz: the all-ones input's size (64, as in ``nas.fidelity``).
    """

    name: ClassVar[str]

    def __init__(self, imgsz: int = 64) -> None:
        if int(imgsz) < 32 or int(imgsz) % 32:
            raise ValueError(f"evaluator=synflow: imgsz must be a multiple of 32, got {imgsz!r}")
        self.imgsz = int(imgsz)

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> SynFlowEvaluator:
        unknown = sorted(set(values) - {"imgsz"})
        if unknown:
            raise ValueError(f"evaluator=synflow: unknown key(s) {unknown}; valid: ['imgsz']")
        return cls(**values)

    def prepare(self, ctx: EvalContext) -> None:
        return None

    def score(
        self,
        model: nn.Module,
        choices: Mapping[str, Any],
        *,
        data: PreparedData,
        train: TrainConfig,
        on_epoch: Callable[[Any], None] | None = None,
        progress: bool = False,
    ) -> Score:
        import copy
        import time

        from nas.fidelity.proxies import synflow

        started = time.perf_counter()
        value = synflow(copy.deepcopy(model).cpu(), self.imgsz)  # it rewrites the weights
        return Score(map50=None, map50_95=None, seconds=time.perf_counter() - started,
                     proxy=float(value))
