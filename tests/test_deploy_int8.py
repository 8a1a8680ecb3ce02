"""INT8 static quantization end to end on a tiny model, and the ONNX evaluation adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from conftest import tiny_synthetic  # noqa: E402

from nas.data import PreparedData  # noqa: E402
from nas.deploy.onnx_export import export_onnx  # noqa: E402
from nas.deploy.ort_eval import OnnxDetector, evaluate_onnx  # noqa: E402
from nas.deploy.quantize import head_decode_nodes, quantize_int8  # noqa: E402
from nas.model import Detector, build_model  # noqa: E402
from nas.train import TrainConfig, evaluate, fit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tiny_model(nc: int) -> Detector:
    arch = yaml.safe_load((REPO / "models" / "yolov8.yaml").read_text())
    arch["scales"] = {"t": [0.33, 0.0625, 1024]}
    arch["scale"] = "t"
    torch.manual_seed(0)
    return build_model(arch, nc=nc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, PreparedData]:
    data = tiny_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=16, num_val=6,
                          min_size=10)
    model = tiny_model(data.num_classes)
    fit(model, data, TrainConfig(epochs=2, imgsz=64, batch_size=4, optimizer="adamw",
                                 lr0=0.002, warmup_epochs=0.0, threads=1,
                                 eval_batch_size=4), progress=False)  # fmt: skip
    return model.eval(), data


def test_fp32_onnx_evaluates_like_torch(trained: tuple[Detector, PreparedData],
                                        tmp_path: Path) -> None:  # fmt: skip
    model, data = trained
    path = export_onnx(model, tmp_path / "fp32.onnx", imgsz=64)
    ours = evaluate(model, data, batch_size=4)
    # batch 4 over a batch-1 graph: chunks, the last one padded
    via_onnx = evaluate_onnx(path, data, threads=1, batch_size=4)
    assert via_onnx.map50 == pytest.approx(ours.map50, abs=1e-4)
    assert via_onnx.map50_95 == pytest.approx(ours.map50_95, abs=1e-4)
    with pytest.raises(ValueError, match="export at the evaluation image size"):
        OnnxDetector(path, threads=1)(torch.zeros(1, 3, 96, 96))


def test_int8_quantizes_the_body_keeps_the_decoding_and_evaluates(
    trained: tuple[Detector, PreparedData], tmp_path: Path
) -> None:
    model, data = trained
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", imgsz=64)
    excluded = head_decode_nodes(onnx.load(str(fp32)))
    head = len(model.layers) - 1
    assert f"/layers.{head}/dfl/Softmax" in excluded
    assert f"/layers.{head}/Sigmoid" in excluded
    assert not any("/cv2." in n or "/cv3." in n for n in excluded)
    result = quantize_int8(fp32, tmp_path / "int8.onnx", data.train, num_images=8)
    assert result.calibration_images == 8 and result.excluded_nodes == tuple(excluded)
    graph = onnx.load(str(result.path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    # the DFL softmax reads a float tensor, not a dequantized one
    producers = {o: n.op_type for n in graph.node for o in n.output}
    softmax = next(n for n in graph.node if n.name == f"/layers.{head}/dfl/Softmax")
    assert producers.get(softmax.input[0]) != "DequantizeLinear"
    metrics = evaluate_onnx(result.path, data, threads=1)
    assert 0.0 <= metrics.map50 <= 1.0 and 0.0 <= metrics.map50_95 <= metrics.map50
    with pytest.raises(ValueError, match="calibration images"):
        quantize_int8(fp32, tmp_path / "bad.onnx", data.val, num_images=0)
