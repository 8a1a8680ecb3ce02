"""``python -m nas.train MODEL.yaml [data=...] [train=brief|full] [epochs=N] [imgsz=S] ...``

Trains one model description and writes, into Hydra's output folder (``outputs/<date>/<time>``
unless ``hydra.run.dir`` says otherwise): ``weights.pt`` (the state dict; ``torch.load(...,
weights_only=True)`` reads it), the model YAML (``<model name>.yaml``, ultralytics format) and
``metrics.json``. The last line printed is that folder.

Hydra takes no positional arguments, so the first argument without ``=`` becomes a ``model=``
override before Hydra parses the command line. The configs are the shipped ``conf/`` folder
(``nas.resources``; add your own groups with ``--config-dir DIR``). Bad input (an unknown model
or key, a bad value, a missing dataset) is one line on stderr and exit code 2
(``nas.cli.run_cli``; ``LITEYOLO_DEBUG=1`` shows the traceback).

Example:
    $ python -m nas.train yolov8n.yaml train=brief
    $ python -m nas.train models/yolov8.yaml data=bccd epochs=30 imgsz=320 device=cuda
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nas import resources
from nas.cli import hydra_task, run_cli
from nas.data import DataConfig, prepare_data
from nas.model import build_model, count_gflops, count_params, load_arch, save_arch
from nas.model.arch import resolve_model_path
from nas.train.config import TrainConfig
from nas.train.engine import FitResult, fit

__all__ = ["TrainingRun", "main", "model_to_override", "run_training", "train_config_from"]

TOP_LEVEL_OVERRIDES = ("epochs", "imgsz", "device", "seed")
# Hydra command-line options followed by a value, and --info's optional values.
_VALUE_OPTIONS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp",
                            "--config-name", "-cn", "--config-dir", "-cd",
                            "--experimental-rerun"})  # fmt: skip
_INFO_OPTIONS = frozenset({"--info", "-i"})
_INFO_VALUES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


class TrainingRun(NamedTuple):
    """What ``run_training`` produced: the trained model (on the CPU), its fit result, and the
    folder holding ``weights.pt``, the model YAML and ``metrics.json``."""

    model: torch.nn.Module
    result: FitResult
    output_dir: Path


def model_to_override(argv: list[str]) -> list[str]:
    """Turn the first bare argument (no ``=``, not an option) into ``model=<it>``.

    Hydra's own options (``--config-dir DIR``, ``--cfg job``, ``-m``...) move before the
    overrides, with their values: Hydra's parser takes the overrides as one positional list,
    which an option in between would cut (``MODEL.yaml --config-dir DIR data=mine``).

    Example:
        >>> model_to_override(["prog", "yolov8n.yaml", "epochs=3"])
        ['prog', 'model=yolov8n.yaml', 'epochs=3']
        >>> model_to_override(["prog", "m.yaml", "-cd", "my_conf", "data=mine"])
        ['prog', '-cd', 'my_conf', 'model=m.yaml', 'data=mine']
    """
    options: list[str] = []
    overrides: list[str] = []
    moved = False
    takes_value = False
    for arg in argv[1:]:
        if takes_value:
            options.append(arg)
            takes_value = False
            continue
        if arg.startswith("-"):
            takes_value = arg in _VALUE_OPTIONS and "=" not in arg
            options.append(arg)
            continue
        if options and options[-1] in _INFO_OPTIONS and arg in _INFO_VALUES:
            options.append(arg)
        elif not moved and "=" not in arg:
            overrides.append(f"model={arg}")
            moved = True
        else:
            overrides.append(arg)
    return [*argv[:1], *options, *overrides]


def train_config_from(cfg: DictConfig) -> TrainConfig:
    """The ``train`` group with the top-level ``epochs``/``imgsz``/``device``/``seed`` applied
    (each wins over the group when not null)."""
    values: dict[str, Any] = OmegaConf.to_container(cfg.train, resolve=True)  # type: ignore[assignment]
    for key in TOP_LEVEL_OVERRIDES:
        if cfg.get(key) is not None:
            values[key] = cfg[key]
    return TrainConfig.from_dict(values)


def run_training(
    model_name: str,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    output_dir: Path,
    *,
    progress: bool = True,
) -> TrainingRun:
    """Prepare the data, build and train the model, write the artefacts into ``output_dir``.

    Writes ``weights.pt``, ``<model name>.yaml`` and ``metrics.json`` (``map50``, ``map50_95``,
    ``per_class_ap``, ``epochs``, ``train_seconds``, ``images_per_second``, ``params``,
    ``gflops`` (at 640 px, ultralytics' convention), ``wall_seconds``, ``history``, ...), then
    prints a summary whose last line is ``output_dir``.
    """
    started = time.perf_counter()
    path = resolve_model_path(model_name)
    arch = load_arch(model_name)  # a bad model YAML fails before the data is prepared
    data = prepare_data(data_cfg, train_cfg.imgsz, train_cfg.device, progress=progress)
    torch.manual_seed(train_cfg.seed)  # the initial weights depend on the seed only
    model = build_model(arch, nc=len(data.names))
    result = fit(model, data, train_cfg, progress=progress)

    output_dir.mkdir(parents=True, exist_ok=True)
    model.cpu()
    torch.save(model.state_dict(), output_dir / "weights.pt")
    yaml_name = Path(model_name).stem + ".yaml"
    save_arch(model.arch, output_dir / yaml_name)
    metrics = {
        "model": str(model_name),
        "model_path": str(path),
        "model_yaml": yaml_name,
        "names": data.names,
        "map50": result.map50,
        "map50_95": result.map50_95,
        "per_class_ap": result.per_class_ap,
        "epochs": result.epochs,
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "wall_seconds": time.perf_counter() - started,
        "params": count_params(model),
        "gflops": count_gflops(model, imgsz=640),
        "imgsz": train_cfg.imgsz,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "history": [asdict(h) for h in result.history],
        "train_config": train_cfg.to_dict(),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"{model_name}: mAP50 {result.map50:.4f}  mAP50-95 {result.map50_95:.4f}  "
        f"{result.epochs} epochs in {result.train_seconds:.1f} s "
        f"({result.images_per_second:.1f} train img/s), {metrics['params']:,} params, "
        f"{metrics['gflops']:.2f} GFLOPs@640"
    )
    print(output_dir)
    return TrainingRun(model, result, output_dir)


@hydra.main(config_path=str(resources.path("conf")), config_name="train", version_base="1.3")
@hydra_task()
def _hydra_main(cfg: DictConfig) -> None:
    """Compose, convert to plain dataclasses, train."""
    data_values = OmegaConf.to_container(cfg.data, resolve=True)
    run_training(
        str(cfg.model),
        DataConfig.from_dict(data_values),  # type: ignore[arg-type]
        train_config_from(cfg),
        Path(HydraConfig.get().runtime.output_dir),
        progress=bool(cfg.get("progress", True)),
    )


def main() -> int:
    """Console entry point: move a positional MODEL.yaml into ``model=``, then run Hydra."""
    sys.argv = model_to_override(sys.argv)
    return run_cli(_hydra_main)


if __name__ == "__main__":
    raise SystemExit(main())
