"""``evaluator=supernet``: candidates scored with weights inherited from one supernet.

``prepare`` trains the supernet once per study (or resumes it, or loads the finished one) under
``results/<study>/supernet/``; ``score`` copies the candidate's path into the trial's
standalone build, optionally fine-tunes, recalibrates BatchNorm, and scores it by its
validation loss (a proxy score, higher is better: the loss negated) or its pycocotools mAP
(``settings.score``): seconds per candidate instead of a training.

Example:
    >>> from nas.search.evaluators import make_evaluator
    >>> make_evaluator({"name": "supernet", "epochs": 2}).settings.epochs
    2
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from nas.search.evaluators import EvalContext, Score, register_evaluator
from nas.search.launch import usable_cores
from nas.search.locks import file_lock
from nas.supernet.config import SupernetSettings
from nas.supernet.inherit import finetune, inherit_weights, recalibrate_bn
from nas.supernet.plan import plan_supernet
from nas.supernet.report import STUDY_ATTR, summary, write_history, write_plot
from nas.supernet.sampling import SANDWICH, PathSampler, option_sizes
from nas.supernet.supernet import SuperNet
from nas.supernet.train import SupernetRun, train_supernet

if TYPE_CHECKING:
    from torch import nn

    from nas.data import PreparedData
    from nas.train import TrainConfig

__all__ = ["SupernetEvaluator", "supernet_dir"]

logger = logging.getLogger(__name__)


def supernet_dir(out_dir: Path) -> Path:
    """Where a study's supernet lives: ``results/<study>/supernet/``."""
    return Path(out_dir) / "supernet"


@register_evaluator("supernet")
class SupernetEvaluator:
    """Weight-sharing evaluator (see the module docstring).

    Args:
        settings: The ``conf/evaluator/supernet.yaml`` settings.
    """

    name: ClassVar[str]
    study_wide: ClassVar[bool] = True  # prepare() trains the study's supernet

    def __init__(self, settings: SupernetSettings | None = None) -> None:
        self.settings = settings or SupernetSettings()
        self.supernet: SuperNet | None = None
        self.run: SupernetRun | None = None

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> SupernetEvaluator:
        return cls(SupernetSettings.from_dict(values))

    def prepare(self, ctx: EvalContext, *, on_step: Callable[[int], None] | None = None) -> None:
        """Train, resume or load the study's supernet; record its cost and loss curve."""
        s = self.settings
        cfg = dataclasses.replace(ctx.train, epochs=s.epochs, ema=s.ema,
                                  threads=s.threads or usable_cores())  # fmt: skip
        plan = plan_supernet(ctx.space, ctx.nc)
        torch.manual_seed(cfg.seed)
        supernet = SuperNet(plan)
        folder = supernet_dir(ctx.out_dir)
        params = sum(p.numel() for p in supernet.parameters())
        logger.info("supernet: %d branches, %d choice decisions, %d parameters",
                    len(plan.branches), len(plan.row_decisions), params)  # fmt: skip
        with file_lock(folder / "train.lock"):  # one process trains, the others load
            sizes = option_sizes(ctx.space, ctx.nc) if s.sampling == SANDWICH else None
            sampler = PathSampler(ctx.space, s.sampling, cfg.seed, sizes=sizes,
                                  n_random=s.sandwich_random, balance=s.balance)  # fmt: skip
            run = train_supernet(
                supernet, ctx.data, cfg, sampler,
                checkpoint=folder / "ckpt.pt", checkpoint_every=s.checkpoint_every,
                fingerprint=_fingerprint(ctx, cfg, s), on_step=on_step, progress=ctx.progress,
                distill_weight=s.inplace_distill if s.sampling == SANDWICH else 0.0,
            )
            write_history(run, plan, folder / "loss.csv")
            write_plot(run, folder / "loss.png")
        total = cfg.epochs * math.ceil(len(ctx.data.train) / cfg.batch_size)
        record = summary(run, plan, sampling=s.sampling, params=params, steps_total=total,
                         balance=s.balance)  # fmt: skip
        if ctx.study is not None:
            ctx.study.set_user_attr(STUDY_ATTR, record)
        logger.info("supernet: %d steps in %.1f s, final loss %s", run.steps, run.seconds,
                    record["final_loss"])  # fmt: skip
        self.supernet, self.run = supernet, run

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
        """Inherit, (fine-tune,) recalibrate, score; ``model`` ends holding those weights."""
        from nas.fidelity.proxies import validation_loss
        from nas.train import evaluate

        if self.supernet is None or self.run is None:
            raise RuntimeError("SupernetEvaluator.score: call prepare(ctx) first")
        start = time.perf_counter()
        s = self.settings
        model.to(train.device)
        branch = inherit_weights(self.supernet, model, choices)  # type: ignore[arg-type]
        loss = finetune(model, data, train, steps=s.finetune_steps, seed=train.seed)  # type: ignore[arg-type]
        images = recalibrate_bn(model, data.train, batches=s.bn_batches,
                                batch_size=train.batch_size, seed=train.seed)  # fmt: skip
        attrs: dict[str, Any] = {
            "evaluator": "supernet",
            "supernet_steps": self.run.steps,
            "supernet_branch": branch.label,
            "bn_images": images,
            "finetune_steps": s.finetune_steps,
        }
        if s.finetune_steps:
            attrs["finetune_loss"] = round(loss, 5)
        if s.score == "val_loss":  # the loss negated: a proxy score, higher is better
            val_loss = validation_loss(model, data, batch_size=train.eval_batch_size)
            attrs["supernet_val_loss"] = round(val_loss, 5)
            return Score(map50=None, map50_95=None, proxy=-val_loss,
                         seconds=time.perf_counter() - start, epochs=0, attrs=attrs)  # fmt: skip
        result = evaluate(model, data, conf=train.conf, iou=train.iou, max_det=train.max_det,
                          batch_size=train.eval_batch_size)  # fmt: skip
        return Score(map50=float(result.map50), map50_95=float(result.map50_95),
                     seconds=time.perf_counter() - start, epochs=0, attrs=attrs)  # fmt: skip


def _fingerprint(ctx: EvalContext, cfg: TrainConfig, s: SupernetSettings) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (space, classes, data, recipe, settings)."""
    decisions = {k: [repr((o.name, o.module, o.args)) for o in d.options]
                 for k, d in ctx.space.decisions.items()}  # fmt: skip
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("device", "threads", "eval_every", "eval_batch_size")}  # fmt: skip
    return {
        "decisions": repr(decisions),
        "afpn_args": repr(ctx.space.afpn_args),
        "nc": ctx.nc,
        "train_images": len(ctx.data.train),
        "train_ids": repr(ctx.data.train.image_ids.tolist()[:64]),
        "imgsz": int(ctx.data.train.imgsz),
        "recipe": repr(recipe),
        "sampling": s.sampling,
        **({"balance": s.balance} if s.balance != "options" else {}),  # old checkpoints resume
        **({"sandwich_random": s.sandwich_random, "inplace_distill": s.inplace_distill}
           if s.sampling == SANDWICH else {}),
    }
