"""``python -m nas.train``: argv handling, config composition, artefacts, the printed folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from nas.data import AugmentConfig, DataConfig
from nas.errors import ConfigError
from nas.model import build_model
from nas.train import TrainConfig
from nas.train.__main__ import model_to_override, run_training, train_config_from

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {"map50", "map50_95", "epochs", "train_seconds", "images_per_second",
               "per_class_ap", "params", "gflops"}  # fmt: skip


def _compose(overrides: list[str]):  # noqa: ANN202 - DictConfig
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _tiny_model_yaml(folder: Path) -> Path:
    """YOLOv8 rows at 1/16 width, scale 't' (file name without a scale letter)."""
    arch = yaml.safe_load((REPO / "models" / "yolov8.yaml").read_text())
    arch["scales"] = {"t": [0.33, 0.0625, 1024]}
    arch["scale"] = "t"
    path = folder / "tinyv8.yaml"
    path.write_text(yaml.safe_dump(arch, sort_keys=False))
    return path


TINY_DATA = [
    "data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.image_size=64",
    "data.synthetic.min_size=8", "data.synthetic.max_size=0.5", "data.synthetic.max_objects=3",
    "data.synthetic.num_classes=3",
]  # fmt: skip


def test_first_bare_argument_becomes_the_model_override() -> None:
    assert model_to_override(["p", "yolov8n.yaml", "epochs=3"]) == ["p", "model=yolov8n.yaml",
                                                                     "epochs=3"]  # fmt: skip
    assert model_to_override(["p", "epochs=3", "m.yaml", "x.yaml"]) == [
        "p", "epochs=3", "model=m.yaml", "x.yaml"]  # fmt: skip
    assert model_to_override(["p", "--cfg", "job"]) == ["p", "--cfg", "job"]
    assert model_to_override(["p", "--info", "defaults", "m.yaml"]) == [
        "p", "--info", "defaults", "model=m.yaml"]  # fmt: skip
    assert model_to_override(["p", "-m", "m.yaml", "seed=1,2"]) == [
        "p", "-m", "model=m.yaml", "seed=1,2"]  # fmt: skip
    assert model_to_override(["p"]) == ["p"]
    assert model_to_override(["p", "m.yaml", "--config-dir", "mine", "data=x", "-cn", "t"]) == [
        "p", "--config-dir", "mine", "-cn", "t", "model=m.yaml", "data=x"]  # fmt: skip


def test_train_groups_compose_and_top_level_overrides_win() -> None:
    cfg = _compose([])
    full = train_config_from(cfg)
    full_yaml = yaml.safe_load((REPO / "conf" / "train" / "full.yaml").read_text())
    assert full == TrainConfig.from_dict(full_yaml)
    assert cfg.data.format == "synthetic" and cfg.model == "yolov8n.yaml"
    brief = train_config_from(_compose(["train=brief"]))
    assert brief.epochs < full.epochs and brief.imgsz < full.imgsz
    assert brief.augment.scale < full.augment.scale  # brief brings its own light augmentation
    assert full.augment == AugmentConfig()  # full: the standard augmentation
    over = train_config_from(_compose(["train=brief", "epochs=2", "imgsz=96", "seed=5",
                                       "device=cpu", "train.lr0=0.01"]))  # fmt: skip
    assert (over.epochs, over.imgsz, over.seed, over.lr0) == (2, 96, 5, 0.01)
    with pytest.raises(ConfigError, match=r"train: unknown keys \['bogus'\]; valid: .*'lr0'"):
        train_config_from(_compose(["+train.bogus=1"]))
    with pytest.raises(ConfigError, match="train.augment.mosaic: 'often' is not a number"):
        train_config_from(_compose(["train.augment.mosaic=often"]))
    GlobalHydra.instance().clear()


def test_run_training_writes_reloadable_weights_and_metrics(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    cfg = _compose(["train=brief", "epochs=1", "imgsz=64", f"data.path={tmp_path / 'syn'}",
                    *TINY_DATA])  # fmt: skip
    GlobalHydra.instance().clear()
    data = DataConfig.from_dict(OmegaConf.to_container(cfg.data, resolve=True))
    train = train_config_from(cfg).replace(threads=1, batch_size=4, eval_batch_size=4)
    model_yaml = _tiny_model_yaml(tmp_path)
    run = run_training(str(model_yaml), data, train, tmp_path / "out", progress=False)

    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["epochs"] == 1 and metrics["params"] == sum(
        p.numel() for p in run.model.parameters())
    assert metrics["map50"] == run.result.map50

    state = torch.load(tmp_path / "out" / "weights.pt", weights_only=True)
    reloaded = build_model(tmp_path / "out" / "tinyv8.yaml", nc=3)
    reloaded.load_state_dict(state)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    run.model.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(run.model(x), reloaded(x))


@pytest.mark.slow
def test_cli_end_to_end_prints_the_output_folder_last(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas.train", str(_tiny_model_yaml(tmp_path)), "train=brief",
           "epochs=2", "imgsz=64", "train.batch_size=4", "train.threads=1", "progress=false",
           f"data.path={tmp_path / 'syn'}", *TINY_DATA, f"hydra.run.dir={out}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert {"weights.pt", "tinyv8.yaml", "metrics.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics) and metrics["epochs"] == 2
    assert len(metrics["history"]) == 2


def test_cli_rejects_an_unknown_model(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "nas.train", "no_such_model.yaml", f"hydra.run.dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no_such_model.yaml" in proc.stderr and "models available" in proc.stderr
