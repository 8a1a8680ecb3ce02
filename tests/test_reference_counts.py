"""The reference counts of ``tests/data/reference_counts.yaml`` (measured with ultralytics
8.4.190), reproduced by this project's builder and counters."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import yaml

from nas.model.counting import count_gflops, count_params, count_trainable_params
from nas.model.detector import Detector, build_model

_DATA = yaml.safe_load((Path(__file__).parent / "data" / "reference_counts.yaml").read_text())
# (model name, nc, params, GFLOPs at 640)
REFERENCE = [(m["name"], m["nc"], m["params"], m["gflops"]) for m in _DATA["models"]]
DETECT_ALONE: dict[int, int] = _DATA["detect_alone"]
PER_LAYER_NC1: dict[int, int] = _DATA["per_layer_nc1"]


def test_reference_data_states_its_source() -> None:
    assert "ultralytics 8.4.190" in _DATA["source"]
    assert len(REFERENCE) == 9 and sum(PER_LAYER_NC1.values()) == 3_011_043


@functools.cache
def _model(name: str, nc: int) -> Detector:
    return build_model(name, nc=nc)


@pytest.mark.parametrize(("name", "nc", "params", "gflops"), REFERENCE)
def test_params_and_gflops_match_ultralytics(name: str, nc: int, params: int, gflops: float):
    model = _model(name, nc)
    assert count_params(model) == params
    assert count_trainable_params(model) == params - 16  # the frozen DFL conv
    assert count_gflops(model, 640) == pytest.approx(gflops, abs=1e-3)


@pytest.mark.parametrize(("name", "nc", "params", "gflops"), REFERENCE[:1] + REFERENCE[5:])
def test_gflops_at_320_are_a_quarter(name: str, nc: int, params: int, gflops: float):
    model = _model(name, nc)
    assert count_gflops(model, 320) == pytest.approx(count_gflops(model, 640) / 4, rel=1e-9)
    assert count_gflops(model, 320) == pytest.approx(gflops / 4, abs=1e-3)


@pytest.mark.parametrize(("nc", "params"), sorted(DETECT_ALONE.items()))
def test_detect_layer_alone(nc: int, params: int):
    model = _model("yolov8n.yaml", nc)
    assert count_params(model.head) == params
    assert model.layer_table()[-1].params == params


def test_per_layer_params_nc1():
    table = _model("yolov8n.yaml", 1).layer_table()
    assert {info.index: info.params for info in table} == PER_LAYER_NC1
    assert sum(info.params for info in table) == 3_011_043


def test_fused_yolov8n_params_and_outputs():
    model = build_model("yolov8n.yaml", nc=80)
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():  # non-trivial BN statistics, so fusing has work to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
    model.eval()
    x = torch.rand(1, 3, 64, 64, generator=generator)
    with torch.no_grad():
        before = model(x)
        model.fuse()
        after = model(x)
    assert count_params(model) == 3_151_904
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


_ULTRALYTICS_SCRIPT = r"""
import json, os, sys, tempfile
tmp = tempfile.mkdtemp()
os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=tmp)
import torch, yaml
from ultralytics.nn.tasks import DetectionModel
from nas.model import build_model, count_params, dump_arch, load_arch
from nas.model.arch import models_dir

result = {}
names = ("yolov8n.yaml", "yolov8n-ghost.yaml", "yolov8n-adown.yaml", "yolov8n-adown-head.yaml")
for name in names:
    ours = build_model(name)
    path = os.path.join(tmp, name)  # our dump, read by ultralytics (scale from the file name)
    with open(path, "w") as f:
        f.write(dump_arch(ours.arch))
    theirs = DetectionModel(path, verbose=False)
    result[name] = [count_params(ours), sum(p.numel() for p in theirs.parameters())]
    if name == "yolov8n.yaml":  # same weights -> same predictions
        src = list(ours.state_dict().values())
        dst = theirs.state_dict()
        assert [tuple(v.shape) for v in src] == [tuple(v.shape) for v in dst.values()]
        theirs.load_state_dict(dict(zip(dst, src)))
        x = torch.rand(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a, b = ours.eval()(x), theirs.eval()(x)[0]
        result["max_abs_diff"] = float((a - b).abs().max())
        result["scale"] = float(a.abs().max())
print(json.dumps(result))
"""


@pytest.mark.slow
def test_cross_check_with_ultralytics():
    """ultralytics reads our dumped YAML and builds the same model (skipped without it)."""
    import importlib.util
    import json
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec("ultralytics") is None:  # not imported here: it sets globals
        pytest.skip("ultralytics is not installed")
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", _ULTRALYTICS_SCRIPT], cwd=repo, text=True,
                         capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["yolov8n.yaml"] == [3_157_200, 3_157_200]
    assert result["yolov8n-ghost.yaml"] == [1_865_316, 1_865_316]
    assert result["yolov8n-adown.yaml"] == [2_877_648, 2_877_648]
    assert result["yolov8n-adown-head.yaml"] == [2_744_528, 2_744_528]
    assert result["max_abs_diff"] <= 1e-4 * result["scale"]
