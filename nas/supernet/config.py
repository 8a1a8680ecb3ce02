"""``SupernetSettings``: the ``evaluator=supernet`` settings (``conf/evaluator/supernet.yaml``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.supernet.sampling import SAMPLING_RULES

__all__ = ["SupernetSettings"]


@dataclass(frozen=True)
class SupernetSettings:
    """How the supernet is trained once per study and how a candidate inherits from it.

    Attributes:
        epochs: Supernet training epochs over the search's training data (the rest of the
            recipe, learning rate, batch size, EMA, augmentation, is the search's ``train``).
        sampling: Path sampling rule: ``uniform`` (SPOS) or ``fair`` (FairNAS).
        bn_batches: Training batches (of ``train.batch_size``, not augmented) that recalibrate
            a candidate's BatchNorm statistics (0: keep the supernet's running statistics).
        finetune_steps: Optimizer steps of fine-tuning per candidate after inheriting (0: none),
            at the constant rate ``train.lr0 * train.lrf``.
        checkpoint_every: Save the supernet training every this many steps (and at the end).
        ema: Candidates inherit the supernet's EMA weights (``train.ema_decay``/``ema_tau``)
            instead of its last weights. Off by default: over a supernet's hundreds of steps
            the brief recipe's EMA (decay 0.999) still weighs the early steps heavily, and on
            the default search the last weights scored and ranked better (README).
    """

    epochs: int = 30
    sampling: str = "fair"
    bn_batches: int = 8
    finetune_steps: int = 25
    checkpoint_every: int = 100
    ema: bool = False

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_RULES:
            raise ValueError(f"evaluator=supernet: sampling={self.sampling!r}; "
                             f"valid: {sorted(SAMPLING_RULES)}")  # fmt: skip
        for key, low in (("epochs", 1), ("bn_batches", 0), ("finetune_steps", 0),
                         ("checkpoint_every", 1)):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"evaluator=supernet: {key}={value!r} must be an int >= {low}")
        if not isinstance(self.ema, bool):
            raise ValueError(f"evaluator=supernet: ema={self.ema!r} must be true or false")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SupernetSettings:
        """Build from the config mapping (without ``name``); unknown keys name the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"evaluator=supernet: unknown key(s) {unknown}; valid: {valid}")
        return cls(**values)
