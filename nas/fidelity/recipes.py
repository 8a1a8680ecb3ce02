"""Training recipes: a data config and a train config, composed from ``conf/`` like the search.

A recipe is written as Hydra overrides on ``conf/search.yaml`` (the search's own trial budget
is the recipe with no overrides), e.g. ``train=brief data.train_subset=null train.imgsz=256
train.epochs=10``. Its identity (``recipe_key``) hashes everything that changes the trained
weights except the seed and the thread count, so a cache entry is found again by any command
that composes the same recipe.

Example:
    >>> from nas.fidelity.recipes import compose_recipe
    >>> r = compose_recipe("trial", [])  # doctest: +SKIP
    >>> r.train.imgsz, r.data.train_subset  # doctest: +SKIP
    (160, 200)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas import resources
from nas.data import DataConfig
from nas.errors import UserError
from nas.train import TrainConfig

__all__ = [
    "CONF_DIR",
    "DEFAULT_REFERENCE",
    "Recipe",
    "RecipeError",
    "compose_recipe",
    "parse_recipe_arg",
    "recipe_key",
]

CONF_DIR = resources.path("conf")  # the checkout's conf/, or the installed copy
# >= 10x the trial's compute: 400 images x 256 px x 10 epochs vs 200 x 160 x 5 (10.24x).
DEFAULT_REFERENCE = ("data.train_subset=null", "data.val_subset=null", "train.imgsz=256",
                     "train.epochs=10")  # fmt: skip
_NOT_IN_KEY = ("seed", "threads", "device", "deterministic", "eval_batch_size")


class RecipeError(UserError, ValueError):
    """A recipe's overrides do not compose (names the recipe and the override)."""


@dataclass(frozen=True)
class Recipe:
    """A named training recipe.

    Attributes:
        name: Label in tables (``trial``, ``reference``, or a candidate's name).
        overrides: The Hydra overrides on ``conf/search.yaml`` it was composed from.
        data: The data configuration.
        train: The training configuration (its ``seed`` is replaced per training).
    """

    name: str
    overrides: tuple[str, ...]
    data: DataConfig
    train: TrainConfig

    @property
    def key(self) -> str:
        """See ``recipe_key``."""
        return recipe_key(self)

    def describe(self) -> str:
        """``images x px x epochs`` in words (images = the subset, or ``all``)."""
        n = self.data.train_subset if self.data.train_subset is not None else "all"
        return f"{n} img, {self.train.imgsz} px, {self.train.epochs} ep"

    def compute(self, train_images: int) -> float:
        """Training compute in images x pixels x epochs (for the >= 10x check)."""
        return float(train_images) * self.train.imgsz**2 * self.train.epochs


def _plain(obj: Any) -> Any:
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _canonical(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass that differ from its defaults (nested dataclasses likewise).

    Leaving defaults out keeps a key stable when a config gains a field with a default.
    """
    default = type(obj)()
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value == getattr(default, f.name):
            continue
        out[f.name] = _canonical(value) if dataclasses.is_dataclass(value) else _plain(value)
    return out


def recipe_key(recipe: Recipe) -> str:
    """sha256 (16 hex digits) of the data and train configs, seed and threads left out."""
    train = {k: v for k, v in _canonical(recipe.train).items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"data": _canonical(recipe.data), "train": train}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compose_recipe(name: str, overrides: Sequence[str], *, conf_dir: Path = CONF_DIR) -> Recipe:
    """Compose ``conf/search.yaml`` with ``overrides`` and keep its ``data`` and ``train``.

    Raises:
        RecipeError: an override Hydra rejects, or a value the dataclasses reject.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    overrides = tuple(overrides)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose("search", overrides=list(overrides))
        data = OmegaConf.to_container(cfg.data, resolve=True)
        train = OmegaConf.to_container(cfg.train, resolve=True)
        return Recipe(name, overrides, DataConfig.from_dict(data),  # type: ignore[arg-type]
                      TrainConfig.from_dict(train))  # type: ignore[arg-type]  # fmt: skip
    except Exception as e:  # hydra's override/config errors have no common base class
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError(f"recipe {name!r} ({' '.join(overrides) or 'no overrides'}): "
                          f"{first}") from e  # fmt: skip


def parse_recipe_arg(text: str, default_name: str) -> tuple[str, list[str]]:
    """``"NAME: a=1 b=2"`` or ``"a=1 b=2"`` -> (name, overrides)."""
    head, sep, rest = text.partition(":")
    if sep and "=" not in head and head.strip():
        return head.strip(), shlex.split(rest)
    return default_name, shlex.split(text)
