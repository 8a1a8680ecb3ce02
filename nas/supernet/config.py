"""``SupernetSettings``: the ``evaluator=supernet`` settings (``conf/evaluator/supernet.yaml``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.supernet.sampling import BALANCES, sampling_names

SCORES = ("val_loss", "map50_95")  # what ranks a candidate on the supernet (README)

__all__ = ["SCORES", "SupernetSettings"]


@dataclass(frozen=True)
class SupernetSettings:
    """How the supernet is trained once per study and how a candidate inherits from it.

    Attributes:
        epochs: Supernet training epochs over the search's training data (the rest of the
            recipe, learning rate, batch size, EMA, augmentation, is the search's ``train``).
            120 (3,000 steps on the default data): the supernet's ranking rose with its
            training, 30 / 80 / 120 epochs ranking three synthetic panels at about 0.4 / 0.5 /
            0.65 Kendall tau against the 10x reference (README, "Weight sharing").
        sampling: Path sampling rule: ``uniform`` (SPOS), ``fair`` (FairNAS) or ``sandwich``
            (BigNAS: the largest, the smallest and ``sandwich_random`` uniform paths per step,
            the largest distilled into the others in place).
        balance: What the path draws make equal: ``weights`` (an option that opens other
            decisions, the PAN neck, drawn as often as the most options among them:
            ``sampling.option_weights``; ranked better on all three panels measured, README) or
            ``options`` (each option of a decision drawn equally often, plain FairNAS / SPOS).
        sandwich_random: ``sandwich``'s uniform paths per step.
        inplace_distill: ``sandwich``'s weight of the distillation loss of each path from the
            largest path's outputs (``nas.train.distill``; 0: none).
        score: What ranks a candidate: ``val_loss`` (its validation loss, box + cls + dfl,
            negated, as a proxy score: no mAP is computed) or ``map50_95`` (pycocotools). The
            loss ranked three synthetic panels better and steadier across supernet lengths
            than the mAP, without fine-tuning and at a third of the cost per candidate (README).
        bn_batches: Training batches (of ``train.batch_size``, not augmented) that recalibrate
            a candidate's BatchNorm statistics (0: keep the supernet's running statistics).
        finetune_steps: Optimizer steps of fine-tuning per candidate after inheriting (0: none,
            the default), at the constant rate ``train.lr0 * train.lrf``.
        checkpoint_every: Save the supernet training every this many steps (and at the end).
        ema: Candidates inherit the supernet's EMA weights (``train.ema_decay``/``ema_tau``)
            instead of its last weights. Off by default: over a supernet's hundreds of steps
            the brief recipe's EMA (decay 0.999) still weighs the early steps heavily, and on
            the default search the last weights scored and ranked better (README).
        threads: Torch threads of the supernet's training; ``None``: every usable core of the
            host (the study's other workers wait for the supernet, so a worker's one-thread
            share would leave the other cores idle).
    """

    epochs: int = 120
    sampling: str = "fair"
    balance: str = "weights"
    score: str = "val_loss"
    bn_batches: int = 8
    finetune_steps: int = 0
    checkpoint_every: int = 100
    ema: bool = False
    sandwich_random: int = 2
    inplace_distill: float = 1.0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.sampling not in sampling_names():
            raise ValueError(f"evaluator=supernet: sampling={self.sampling!r}; "
                             f"valid: {sampling_names()}")  # fmt: skip
        if self.balance not in BALANCES:
            raise ValueError(f"evaluator=supernet: balance={self.balance!r}; valid: "
                             f"{list(BALANCES)}")
        if self.score not in SCORES:
            raise ValueError(f"evaluator=supernet: score={self.score!r}; valid: {list(SCORES)}")
        if isinstance(self.inplace_distill, bool) or not isinstance(
                self.inplace_distill, int | float) or self.inplace_distill < 0:  # fmt: skip
            raise ValueError(f"evaluator=supernet: inplace_distill={self.inplace_distill!r} "
                             "must be a number >= 0")
        for key, low in (("epochs", 1), ("bn_batches", 0), ("finetune_steps", 0),
                         ("checkpoint_every", 1), ("sandwich_random", 0)):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"evaluator=supernet: {key}={value!r} must be an int >= {low}")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"evaluator=supernet: threads={self.threads!r} must be null (every "
                             "usable core) or an int >= 1")
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
