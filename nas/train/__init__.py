"""Training: task-aligned assigner, YOLOv8 loss, COCO evaluation and the ``fit`` loop.

Example:
    >>> from nas.train import TrainConfig, fit
    >>> result = fit(model, data, TrainConfig(epochs=5, imgsz=256))  # doctest: +SKIP
"""

from __future__ import annotations

from nas.train.assigner import Assignment, TaskAlignedAssigner
from nas.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from nas.train.engine import (
    EpochResult,
    FitResult,
    ModelEMA,
    build_optimizer,
    fit,
    schedule_at,
    train_one_epoch,
)
from nas.train.evaluate import CocoEvaluator, EvalResult, evaluate
from nas.train.loss import DetectionLoss, LossGains, LossOutput, NonFiniteLossError, dfl_loss
from nas.train.nms import non_max_suppression

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Assignment",
    "CocoEvaluator",
    "DetectionLoss",
    "EpochResult",
    "EvalResult",
    "FitResult",
    "LossGains",
    "LossOutput",
    "ModelEMA",
    "NonFiniteLossError",
    "TaskAlignedAssigner",
    "TrainConfig",
    "build_optimizer",
    "dfl_loss",
    "evaluate",
    "fit",
    "non_max_suppression",
    "schedule_at",
    "train_one_epoch",
]
