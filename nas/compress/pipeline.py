"""The compression chain: FP32 ONNX -> INT8 -> pruned (+ fine-tuning) -> distilled.

Every stage is measured in one run, the same way: parameters and GFLOPs (``nas.model.
counting``, GFLOPs at 640 px as everywhere in the project), mAP through the ONNX model and
``nas.train.evaluate``'s pycocotools path on the validation split, and onnxruntime latency of
all stages timed round-robin in one process (``nas.deploy.latency.compare_latency``).

``distilled`` is the ``pruned`` student fine-tuned with the unpruned model (or ``teacher``)
as teacher: same pruning, same recipe, same seed, so ``distilled`` against ``pruned`` is the
distillation's gain or loss.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.data import DataConfig, PreparedData, prepare_data
from nas.deploy.checkpoint import load_detector, save_checkpoint
from nas.deploy.errors import DeployError
from nas.deploy.latency import compare_latency
from nas.deploy.onnx_export import export_onnx
from nas.deploy.ort_eval import evaluate_onnx
from nas.deploy.prune import PruneConfig, prune_detector
from nas.deploy.quantize import quantize_int8
from nas.model import Detector, count_gflops, count_params
from nas.model.arch import save_arch
from nas.train.config import TrainConfig

__all__ = ["STAGES", "CompressSettings", "StageMetrics", "run_compress"]

logger = logging.getLogger(__name__)

STAGES = ("int8", "prune", "distill")  # what --stages chooses from; fp32 is always measured
STAGE_KEYS = {"int8": "int8", "prune": "pruned", "distill": "distilled"}
GFLOPS_IMGSZ = 640


@dataclass(frozen=True)
class CompressSettings:
    """What to compress and how.

    Attributes:
        model_yaml: The model YAML (None when ``weights`` is a pruned checkpoint).
        weights: A ``weights.pt`` state dict (or a ``nas.deploy`` checkpoint).
        data: The dataset (validation split evaluated, training split calibrates and trains).
        recipe: Fine-tuning recipe of pruning and distillation; its ``imgsz`` is also the
            export, calibration and evaluation size.
        out_dir: The report folder.
        stages: Any of ``STAGES``.
        threads: onnxruntime intra-op threads (None: the cores this process may use).
        calibration_images: INT8 calibration images.
        prune: Pruning target and steps.
        teacher_yaml: Distillation teacher (None: the input model itself).
        teacher_weights: Its weights.
        latency_repeats: Timed runs per stage.
        progress: tqdm bars.
    """

    model_yaml: str | None
    weights: str | None
    data: DataConfig
    recipe: TrainConfig
    out_dir: Path
    stages: tuple[str, ...] = STAGES
    threads: int | None = None
    calibration_images: int = 64
    prune: PruneConfig = field(default_factory=PruneConfig)
    teacher_yaml: str | None = None
    teacher_weights: str | None = None
    latency_repeats: int = 50
    progress: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise DeployError(f"--stages: {','.join(bad) or '(none)'} is not valid; choose from "
                             f"{','.join(STAGES)}")  # fmt: skip


@dataclass(frozen=True)
class StageMetrics:
    """One stage's row of the report."""

    params: int
    gflops: float
    map50: float
    map50_95: float
    latency_ms: float
    latency_iqr_ms: float
    onnx: str

    def summary(self) -> dict[str, Any]:
        """The five fields of ``--json``'s ``stages``."""
        keys = ("params", "gflops", "map50", "map50_95", "latency_ms")
        return {k: v for k, v in asdict(self).items() if k in keys}


@dataclass
class _Stage:
    model: Detector
    onnx: Path
    map50: float = 0.0
    map50_95: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _evaluate(stage: _Stage, data: PreparedData, s: CompressSettings) -> None:
    result = evaluate_onnx(stage.onnx, data, threads=s.threads, conf=s.recipe.conf,
                           iou=s.recipe.iou, max_det=s.recipe.max_det)  # fmt: skip
    stage.map50, stage.map50_95 = result.map50, result.map50_95


def _teacher_files(model: Detector, s: CompressSettings) -> tuple[str, str | None]:
    if s.teacher_yaml is not None:
        return s.teacher_yaml, s.teacher_weights
    import torch

    yaml_path = save_arch(model.arch, s.out_dir / "teacher.yaml")
    torch.save(model.state_dict(), s.out_dir / "teacher.pt")
    return str(yaml_path), str(s.out_dir / "teacher.pt")


def _pruned(model: Detector, data: PreparedData, s: CompressSettings, recipe: TrainConfig,
            name: str) -> _Stage:  # fmt: skip
    student = copy.deepcopy(model)
    result = prune_detector(student, data, s.prune, finetune=recipe, progress=s.progress)
    student.cpu().eval()
    save_checkpoint(student, s.out_dir / f"{name}.pt")
    path = export_onnx(student, s.out_dir / f"{name}.onnx", imgsz=s.recipe.imgsz)
    history = [{"params": p, "map50": f.map50 if f else None} for p, f in result.history]
    extra = {"channel_ratio": result.channel_ratio, "skipped_groups": result.skipped_groups,
             "ignored_layers": len(result.ignored), "steps": history,
             "checkpoint": str(s.out_dir / f"{name}.pt")}  # fmt: skip
    return _Stage(student, path, extra=extra)


def run_compress(s: CompressSettings) -> dict[str, Any]:
    """Run the chain and return the report (``stages`` maps fp32/int8/pruned/distilled to
    :class:`StageMetrics` dicts; also the settings, the data and the latency threads)."""
    s.out_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(s.data, s.recipe.imgsz, s.recipe.device, progress=s.progress)
    model = load_detector(s.model_yaml, s.weights, nc=len(data.names)).eval()
    imgsz = s.recipe.imgsz
    stages: dict[str, _Stage] = {"fp32": _Stage(model, export_onnx(model, s.out_dir /
                                                "fp32.onnx", imgsz=imgsz))}  # fmt: skip
    if "int8" in s.stages:
        quant = quantize_int8(stages["fp32"].onnx, s.out_dir / "int8.onnx", data.train,
                              num_images=s.calibration_images)  # fmt: skip
        stages["int8"] = _Stage(model, quant.path, extra={
            "calibration_images": quant.calibration_images,
            "excluded_nodes": len(quant.excluded_nodes)})  # fmt: skip
    if "prune" in s.stages:
        stages["pruned"] = _pruned(model, data, s, s.recipe, "pruned")
    if "distill" in s.stages:
        teacher_yaml, teacher_weights = _teacher_files(model, s)
        taught = s.recipe.replace(teacher=teacher_yaml, teacher_weights=teacher_weights)
        stages["distilled"] = _pruned(model, data, s, taught, "distilled")
        stages["distilled"].extra.update(teacher=teacher_yaml, teacher_weights=teacher_weights,
                                         distill_weight=taught.distill_weight)  # fmt: skip
    for stage in stages.values():
        _evaluate(stage, data, s)
    latency = compare_latency({k: v.onnx for k, v in stages.items()}, threads=s.threads,
                              repeats=s.latency_repeats)  # fmt: skip
    rows = {
        k: StageMetrics(
            params=count_params(v.model),
            gflops=count_gflops(v.model, GFLOPS_IMGSZ),
            map50=v.map50,
            map50_95=v.map50_95,
            latency_ms=latency[k].median_ms,
            latency_iqr_ms=latency[k].iqr_ms,
            onnx=str(v.onnx),
        )
        for k, v in stages.items()
    }
    return {
        "model": s.model_yaml,
        "weights": s.weights,
        "data": s.data.format if s.data.path is None else f"{s.data.format}:{s.data.path}",
        "imgsz": imgsz,
        "gflops_imgsz": GFLOPS_IMGSZ,
        "threads": next(iter(latency.values())).threads,
        "latency_repeats": s.latency_repeats,
        "recipe": {"epochs": s.recipe.epochs, "lr0": s.recipe.lr0, "seed": s.recipe.seed},
        "prune": asdict(s.prune),
        "stages": {k: r.summary() for k, r in rows.items()},
        "details": {k: {"latency_iqr_ms": r.latency_iqr_ms, "onnx": r.onnx, **stages[k].extra}
                    for k, r in rows.items()},  # fmt: skip
    }
