"""``python -m nas.search [overrides]``: the Hydra entry point of the architecture search.

Examples::

    python -m nas.search                                   # defaults (conf/search.yaml)
    python -m nas.search study_name=ghost n_trials=30 sampler=nsga2 objectives=gflops_map
    python -m nas.search storage=sqlite:///results/s.db   # any Optuna storage URL
    python -m nas.search experiment=quick                  # a tiny smoke run

Only this file reads a ``DictConfig``: ``settings_from_config`` turns it into dataclasses and
instantiated sampler/pruner objects, and ``run_search`` does the rest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nas.search.objective import LatencySettings, Objectives, TrialSettings
from nas.search.study import SearchSettings, run_search

__all__ = ["main", "resolve_path", "settings_from_config"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(path: str | Path) -> Path:
    """A path as given if it exists (relative to the working directory), else under the project."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not (PROJECT_ROOT / p).exists():
        return p
    return PROJECT_ROOT / p


def build_dataclass(cls: type, values: dict[str, Any], group: str) -> Any:
    """``cls(**values)`` with an error that names the config group and the valid keys."""
    from_dict = getattr(cls, "from_dict", None)
    if callable(from_dict):
        return from_dict(values)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"config group {group!r}: unknown key(s) {unknown}; "
                         f"valid: {sorted(fields)}")
    return cls(**values)


def settings_from_config(cfg: DictConfig) -> SearchSettings:
    """The plain ``SearchSettings`` of a composed ``conf/search.yaml``."""
    from hydra.utils import instantiate

    from nas.data import DataConfig
    from nas.train import TrainConfig

    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    trial = dict(plain.get("trial") or {})
    latency = LatencySettings(**(trial.pop("latency", None) or {}))
    space = plain["space"]
    objectives = plain["objectives"]
    return SearchSettings(
        study_name=str(plain["study_name"]),
        n_trials=int(plain["n_trials"]),
        storage=plain.get("storage"),
        seed=int(plain.get("seed", 0)),
        results_dir=Path(plain.get("results_dir", "results")),
        space_path=resolve_path(space["path"]),
        budget_overrides=dict(space.get("budgets") or {}),
        objectives=Objectives(objectives["maximize"], tuple(objectives.get("minimize") or ())),
        data=build_dataclass(DataConfig, plain["data"], "data"),
        train=build_dataclass(TrainConfig, plain["train"], "train"),
        sampler=instantiate(cfg.sampler),
        pruner=instantiate(cfg.pruner),
        trial=TrialSettings(latency=latency, **trial),
    )


@hydra.main(config_path="../../conf", config_name="search", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Compose the config, convert it, run the search."""
    run_search(settings_from_config(cfg))


if __name__ == "__main__":
    main()
