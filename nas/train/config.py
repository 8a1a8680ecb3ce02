"""``TrainConfig``: the training recipe (mirrors ``conf/train/{brief,full}.yaml``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nas.config import from_mapping
from nas.data.augment import AugmentConfig
from nas.errors import ConfigError

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainConfig", "amp_dtype", "autocast", "grad_scaler",
           "use_amp", "use_channels_last"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "linear")


def amp_dtype(device: Any) -> Any:
    """The autocast type of ``amp`` on a device: float16 on CUDA, bfloat16 elsewhere."""
    import torch

    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def autocast(device: Any, amp: bool) -> Any:
    """The autocast context of a forward pass: ``amp_dtype(device)`` when ``amp``."""
    import torch

    device = torch.device(device)
    return torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp)


def grad_scaler(device: Any, amp: bool) -> Any:
    """Loss scaling for float16 (CUDA) only: bfloat16 keeps float32's range."""
    import torch

    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")


def use_amp(setting: bool | str | None, device: Any) -> bool:
    """Whether a training autocasts: ``amp`` resolved on ``device``.

    None: on CUDA only. ``auto``: where the device computes in low precision natively: CUDA,
    or a CPU with AVX512-BF16 (every AMX CPU has it; 1.5x faster training at the search's top
    rung, ``benchmarks/bench_amp.py``). A bool: as given.
    """
    import torch

    kind = torch.device(device).type
    if setting == "auto":
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        return kind == "cuda" or (kind == "cpu" and bool(native()))
    return kind == "cuda" if setting is None else bool(setting)


def use_channels_last(setting: bool | None, device: Any, amp: bool) -> bool:
    """``channels_last`` resolved: None = on CUDA or when autocasting (oneDNN's fast layout)."""
    import torch

    return (torch.device(device).type == "cuda" or amp) if setting is None else setting


@dataclass(frozen=True)
class TrainConfig:
    """How to train a detector.

    The loss is ultralytics' (summed over the batch), so ``lr0`` values mean what they mean
    there. There is no gradient accumulation: the optimizer steps after every batch (brief
    training needs every step it can get).

    Attributes:
        epochs: Passes over the training cache.
        imgsz: Square training/validation image side (used to build the image caches).
        batch_size: Images per optimizer step.
        optimizer: ``sgd`` (Nesterov) or ``adamw``.
        lr0: Peak learning rate (after warm-up).
        lrf: Final learning rate as a fraction of ``lr0``.
        schedule: Decay after warm-up, per step: ``cosine`` or ``linear``.
        momentum: SGD momentum / Adam beta1.
        weight_decay: Decoupled (AdamW) or L2 (SGD) decay on conv/linear weights only.
        warmup_epochs: Linear warm-up length in epochs (fractions allowed; 0 = none).
        warmup_bias_lr: Bias learning rate at the start of warm-up (falls to ``lr0``).
        warmup_momentum: Momentum at the start of warm-up (rises to ``momentum``).
        grad_clip: Max global gradient norm (0 = no clipping).
        ema: Keep an exponential moving average of the weights and evaluate/return it.
        ema_decay: EMA decay upper bound.
        ema_tau: EMA warm-up in steps: decay = ema_decay * (1 - exp(-updates / tau)).
        eval_every: Evaluate every k epochs (0: only after the last epoch, which always is).
        eval_batch_size: Images per forward pass in evaluation.
        conf: Score threshold of evaluation.
        iou: NMS IoU threshold of evaluation.
        max_det: Detections per image in evaluation.
        augment: Training augmentation (``nas.data.augment.AugmentConfig``: flip, scale and
            translate jitter, HSV, mosaic; ``enabled=False`` turns it off). Its only home: the
            data configuration has none.
        close_mosaic: Train the last k epochs without mosaic (as ultralytics' option of that
            name: the model ends on images that look like the validation ones).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision: autocast to ``amp_dtype(device)``, float16 with loss scaling on
            CUDA, bfloat16 on the CPU. None: on CUDA only; ``auto``: also on a CPU with native
            bfloat16 (``use_amp``); true / false.
        channels_last: channels-last memory format (None: on CUDA or with amp).
        threads: torch CPU threads (None: all cores).
        seed: Seed of the weights' RNG, data order and augmentation.
        deterministic: ``torch.use_deterministic_algorithms`` during fit (warn-only).
        teacher: Model YAML of a distillation teacher (None: no distillation); see
            ``nas.train.distill``.
        teacher_weights: The teacher's state dict (``weights.pt``).
        distill_weight: Multiplier of the distillation loss added to the detection loss.
        distill_temperature: Softening temperature of the distillation loss.
    """

    epochs: int = 10
    imgsz: int = 320
    batch_size: int = 16
    optimizer: str = "sgd"
    lr0: float = 0.01
    lrf: float = 0.01
    schedule: str = "cosine"
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8
    grad_clip: float = 10.0
    ema: bool = True
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0
    eval_every: int = 0
    eval_batch_size: int = 16
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    close_mosaic: int = 0
    device: str = "cpu"
    amp: bool | Literal["auto"] | None = None
    channels_last: bool | None = None
    threads: int | None = None
    seed: int = 0
    deterministic: bool = True
    teacher: str | None = None
    teacher_weights: str | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.augment, AugmentConfig):
            raise ConfigError(f"train.augment: {self.augment!r} is not an AugmentConfig (give a "
                              "mapping of its keys; enabled: false turns augmentation off)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train: optimizer={self.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train: schedule={self.schedule!r}; valid: {list(SCHEDULES)}")
        checks = {
            "epochs": self.epochs >= 1,
            "imgsz": self.imgsz >= 32 and self.imgsz % 32 == 0,
            "batch_size": self.batch_size >= 1,
            "lr0": self.lr0 > 0,
            "lrf": 0 <= self.lrf <= 1,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "warmup_epochs": self.warmup_epochs >= 0,
            "warmup_bias_lr": self.warmup_bias_lr >= 0,
            "warmup_momentum": 0 <= self.warmup_momentum < 1,
            "grad_clip": self.grad_clip >= 0,
            "ema_decay": 0 <= self.ema_decay < 1,
            "ema_tau": self.ema_tau > 0,
            "eval_every": self.eval_every >= 0,
            "eval_batch_size": self.eval_batch_size >= 1,
            "conf": 0 <= self.conf < 1,
            "iou": 0 < self.iou <= 1,
            "max_det": self.max_det >= 1,
            "close_mosaic": self.close_mosaic >= 0,
            "threads": self.threads is None or self.threads >= 1,
            "distill_weight": self.distill_weight >= 0,
            "distill_temperature": self.distill_temperature > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            raise ConfigError(
                f"train: invalid {values} (epochs >= 1, imgsz a multiple of 32, batch_size >= 1, "
                "lr0 > 0, 0 <= lrf <= 1, 0 <= momentum < 1, weight_decay >= 0, warmup_* >= 0, "
                "0 <= ema_decay < 1, 0 <= conf < 1, 0 < iou <= 1, close_mosaic >= 0, "
                "threads >= 1 or null)"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a plain mapping (e.g. a resolved Hydra group), see ``nas.config``.

        Raises:
            ConfigError: an unknown key (the message lists the valid ones) or a bad value.

        Example:
            >>> TrainConfig.from_dict({"epochs": 2, "augment": {"enabled": False}}).augment.enabled
            False
        """
        return from_mapping(cls, values, "train")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (``from_dict(to_dict())`` round-trips)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

