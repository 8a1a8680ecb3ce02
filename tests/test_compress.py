"""``nas.compress``: the whole chain on a tiny model, the report folder, bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("torch_pruning")

from nas.compress.__main__ import main  # noqa: E402
from nas.compress.pipeline import CompressSettings, run_compress  # noqa: E402
from nas.compress.report import write_report  # noqa: E402
from nas.data import DataConfig  # noqa: E402
from nas.deploy.prune import PruneConfig  # noqa: E402
from nas.model import build_model, count_params  # noqa: E402
from nas.train import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_chain_on_a_tiny_model(tmp_path: Path) -> None:
    arch = yaml.safe_load((REPO / "models" / "yolov8.yaml").read_text())
    arch["scales"] = {"t": [0.33, 0.0625, 1024]}
    arch["scale"] = "t"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(arch))
    torch.manual_seed(0)
    model = build_model(arch, nc=3)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    data = DataConfig.from_dict(
        {"path": str(tmp_path / "data"),
         "synthetic": {"num_train": 8, "num_val": 4, "image_size": 64, "min_size": 10,
                       "max_size": 0.5, "max_objects": 3, "num_classes": 3}}
    )  # fmt: skip
    recipe = TrainConfig(epochs=1, imgsz=64, batch_size=4, optimizer="adamw", lr0=0.001,
                         warmup_epochs=0.0, threads=1, eval_batch_size=4)  # fmt: skip
    settings = CompressSettings(
        model_yaml=str(tmp_path / "tiny.yaml"), weights=str(tmp_path / "w.pt"), data=data,
        recipe=recipe, out_dir=tmp_path / "report", threads=1, calibration_images=8,
        prune=PruneConfig(target_ratio=0.8, steps=1), latency_repeats=3,
    )  # fmt: skip
    report = run_compress(settings)
    stages = report["stages"]
    assert list(stages) == ["fp32", "int8", "pruned", "distilled"]
    for row in stages.values():
        assert set(row) == {"params", "gflops", "map50", "map50_95", "latency_ms"}
        assert row["latency_ms"] > 0 and 0 <= row["map50"] <= 1
    assert stages["fp32"]["params"] == count_params(model) == stages["int8"]["params"]
    assert stages["pruned"]["params"] <= 0.8 * stages["fp32"]["params"]
    assert stages["distilled"]["params"] == stages["pruned"]["params"]  # the same pruning
    paths = write_report(report, settings.out_dir)
    assert json.loads(paths["json"].read_text())["stages"] == stages
    assert "| pruned |" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "yolov8n.yaml", "--weights", "missing.pt"], "--weights missing.pt"),
        (["--model", "yolov8n.yaml", "--stages", "int8,zip"], "--stages: zip"),
        (["--model", "yolov8n.yaml", "--data", "nope"], "--data 'nope'"),
        (["--study", "s"], "--study needs --trial"),
        ([], "give --model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
