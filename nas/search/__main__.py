"""``python -m nas.search [overrides]``: the Hydra entry point of the architecture search.

Examples::

    python -m nas.search                                   # defaults (conf/search.yaml)
    python -m nas.search study_name=ghost n_trials=30 sampler=nsga2 objectives=gflops_map
    python -m nas.search storage=sqlite:///results/s.db   # any Optuna storage URL
    python -m nas.search experiment=quick                  # a tiny smoke run
    python -m nas.search --config-dir my_conf data=mine    # your own config groups
    python -m nas.search space.path=my_space.yaml          # your own search space

Only this file reads a ``DictConfig``: ``settings_from_config`` turns it into dataclasses (with
``nas.config.from_mapping``) and instantiated sampler/pruner objects, and ``run_search`` does
the rest. The configs are the shipped ``conf/`` folder (``nas.resources``); a bad key or value
is one line on stderr and exit code 2 (``nas.cli.run_cli``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nas import resources
from nas.cli import hydra_task, run_cli
from nas.config import from_mapping
from nas.errors import ConfigError
from nas.search.study import SearchSettings, run_search

__all__ = ["main", "resolve_path", "settings_from_config"]

_SPACE_KEYS = ("path", "budgets")
# top-level keys only read through interpolation (``${seed}`` in the sampler and train groups,
# ``${top_rung.train}`` in the rungs of rungs=asha and evaluator=supernet)
_INTERPOLATED = ("seed", "top_rung")
# config keys that are not SearchSettings fields (the space group becomes two fields)
_RENAMED = {"space": ("space_path", "budget_overrides")}


def resolve_path(path: str | Path) -> Path:
    """A search-space path as given when it exists, else the shipped ``search_spaces/`` file."""
    return resources.locate(path, "search_spaces")


def _space_fields(space: Any) -> dict[str, Any]:
    if not isinstance(space, Mapping) or "path" not in space:
        raise ConfigError(f"space: expected a mapping with keys {list(_SPACE_KEYS)}, "
                          f"got {space!r}")
    unknown = sorted(set(space) - set(_SPACE_KEYS))
    if unknown:
        raise ConfigError(f"space: unknown keys {unknown}; valid: {list(_SPACE_KEYS)}")
    return {"space_path": resolve_path(str(space["path"])),
            "budget_overrides": space.get("budgets") or {}}  # fmt: skip


def _worker_seed(key: str, group: Mapping[str, Any]) -> dict[str, Any]:
    """A launched worker's sampler seed: ``seed + worker_index()`` (see ``nas.search.launch``)."""
    from nas.search.launch import worker_index

    index = worker_index()
    if key != "sampler" or not index or group.get("seed") is None:
        return {}
    return {"seed": int(group["seed"]) + index}


def settings_from_config(cfg: DictConfig) -> SearchSettings:
    """The plain ``SearchSettings`` of a composed ``conf/search.yaml``.

    Groups with a ``_target_`` (sampler, pruner) are instantiated by Hydra; ``data`` and
    ``train`` become ``DataConfig`` / ``TrainConfig``; every other key is converted to its
    ``SearchSettings`` field's type by ``from_mapping``.

    Raises:
        ConfigError: an unknown key or a bad value (the message names the key path).
    """
    from hydra.utils import instantiate

    from nas.data import DataConfig
    from nas.train import TrainConfig

    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    plain.pop("seed", None)  # only interpolated (${seed}: the sampler's and train.seed)
    plain.pop("launcher", None), plain.pop("workers", None)  # read by nas.search.launch
    fields = set(SearchSettings.__dataclass_fields__)
    renamed = {f for names in _RENAMED.values() for f in names}
    valid = sorted(fields - renamed | set(_RENAMED) | set(_INTERPOLATED))
    unknown = sorted(k for k in plain if k not in valid)
    if unknown:
        raise ConfigError(f"unknown top-level keys {unknown}; valid: {valid}")
    for key in _INTERPOLATED:
        if key not in fields:
            plain.pop(key, None)
    values: dict[str, Any] = _space_fields(plain.pop("space", None))
    converters = {"data": DataConfig.from_dict, "train": TrainConfig.from_dict}
    for key, value in plain.items():
        if key in converters:
            values[key] = converters[key](value)
        elif isinstance(value, Mapping) and "_target_" in value:
            values[key] = instantiate(cfg[key], **_worker_seed(key, value))
        else:
            values[key] = value
    return from_mapping(SearchSettings, values)


@hydra.main(config_path=str(resources.path("conf")), config_name="search", version_base="1.3")
@hydra_task()
def _hydra_main(cfg: DictConfig) -> None:
    """Compose the config, convert it, run the search (``launcher``: in how many workers)."""
    from hydra.core.hydra_config import HydraConfig

    from nas.search.launch import LauncherSettings, launch

    launcher = LauncherSettings.from_config(
        OmegaConf.to_container(cfg.get("launcher")), cfg.get("workers", 1),
        str(cfg.train.get("device") or "cpu"))
    settings = settings_from_config(cfg)
    launch(launcher, HydraConfig.get().overrides.task, cfg.train.get("threads"),
           lambda write: run_search(replace(settings, write_results=write)))


def main() -> int:
    """Console entry point: the search, with bad input reported as one line (exit code 2)."""
    return run_cli(_hydra_main)


if __name__ == "__main__":
    raise SystemExit(main())
