"""ONNX export: every registered block exports and matches PyTorch; whole detectors too; the
onnxruntime latency; a missing ``[deploy]`` extra names the install command.

Tolerance: ``|onnxruntime - torch| <= ATOL + RTOL * |torch|`` elementwise (float32 kernels
differ in summation order; Detect's outputs are pixels, hence the relative term).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from test_blocks import EXAMPLES, _channels_of, _tensor_of  # noqa: E402

from nas.blocks import block_names  # noqa: E402
from nas.blocks.head import Detect  # noqa: E402
from nas.blocks.pconv import PConv  # noqa: E402
from nas.blocks.registry import RowContext, Scale, create_block  # noqa: E402
from nas.deploy._extra import EXTRA_HINT, MissingExtraError  # noqa: E402
from nas.deploy.latency import LatencyResult, measure_ort_latency  # noqa: E402
from nas.deploy.onnx_export import export_module, export_onnx  # noqa: E402
from nas.deploy.session import make_session  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.model.counting import LatencyStats  # noqa: E402

RTOL = 1e-4
ATOL = 1e-4
WIDTH = 0.25  # the smallest width of tests/test_blocks.py


def _flat(y: Any) -> list[torch.Tensor]:
    return [t for item in y for t in _flat(item)] if isinstance(y, list | tuple) else [y]


def _run_onnx(path: Path, feeds: list[torch.Tensor]) -> list[np.ndarray]:
    """Feeds are named ``in_<i>``; inputs a block does not read are dropped from its graph."""
    session = make_session(path, threads=1)
    present = {i.name for i in session.get_inputs()}
    named = {f"in_{i}": t.numpy() for i, t in enumerate(feeds)}
    return session.run(None, {n: a for n, a in named.items() if n in present})


@pytest.mark.parametrize("name", block_names())
def test_block_exports_and_matches_torch(name: str, tmp_path: Path) -> None:
    if name not in EXAMPLES:
        pytest.fail(f"registered block {name!r} has no example row in tests/test_blocks.py")
    scale = Scale(1.0, WIDTH, 1024)
    ex = EXAMPLES[name](scale.channels)
    row = RowContext(5, name, tuple(_channels_of(s) for s in ex.inputs), ex.args, ex.repeats,
                     scale, 3)  # fmt: skip
    module, _ = create_block(row)
    if isinstance(module, Detect):
        module.stride = torch.tensor([8.0, 16.0, 32.0])
    module.eval()
    gen = torch.Generator().manual_seed(0)
    feeds = [_tensor_of(s, gen) for s in ex.inputs]
    arg = feeds if len(feeds) > 1 else feeds[0]
    with torch.no_grad():
        expected = _flat(module(arg))
    names = [f"in_{i}" for i in range(len(_flat(arg)))]
    path = export_module(module, (arg,), tmp_path / f"{name}.onnx", input_names=names)
    got = _run_onnx(path, _flat(arg))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("model", ["yolov8n.yaml", "yolov8n-csppc.yaml", "yolov8n-ghostnet.yaml"])
def test_detector_exports_inference_output(model: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = build_model(model, nc=3)
    for m in detector.modules():
        if isinstance(m, PConv):
            m.forward_mode = "slicing"  # the export must still use split/concat
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    path = export_onnx(detector, tmp_path / "m.onnx", imgsz=64)
    assert detector.training  # modes restored
    with torch.no_grad():
        expected = detector.eval()(x)
    got = make_session(path, threads=1).run(None, {"images": x.numpy()})[0]
    assert got.shape == (1, 4 + 3, 84)
    np.testing.assert_allclose(got, expected.numpy(), rtol=RTOL, atol=ATOL)
    import onnx

    graph = onnx.load(str(path))
    assert graph.opset_import[0].version >= 17
    ops = {n.op_type for n in graph.graph.node}
    assert "ScatterND" not in ops
    if "csppc" in model:
        assert {"Split", "Concat"} <= ops
        assert all(m.forward_mode == "slicing" for m in detector.modules()
                   if isinstance(m, PConv))  # fmt: skip


def test_ort_latency_has_the_torch_fields_and_an_iqr() -> None:
    torch.manual_seed(0)
    result = measure_ort_latency(build_model("yolov8n.yaml", nc=3), imgsz=64, threads=1,
                                 warmup=2, repeats=7)  # fmt: skip
    assert isinstance(result, LatencyResult) and isinstance(result, LatencyStats)
    assert (result.batch, result.imgsz, result.repeats, result.threads) == (1, 64, 7, 1)
    assert 0 < result.min_ms <= result.median_ms <= result.p90_ms
    assert result.iqr_ms >= 0
    assert result.images_per_second > 0


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.delitem(sys.modules, "nas.deploy", raising=False)
    with pytest.raises(MissingExtraError, match=r"onnxruntime.*pip install -e '\.\[deploy\]'"):
        importlib.import_module("nas.deploy")
    assert EXTRA_HINT == "pip install -e '.[deploy]'"
    assert issubclass(MissingExtraError, ImportError)


def test_search_with_the_ort_latency_needs_the_extra_up_front(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    """``trial.latency.runtime=onnxruntime`` without the extra stops the search before its first
    trial with the message naming the extra (not a FAIL per trial)."""
    from nas.data import DataConfig
    from nas.search.objective import LatencySettings, TrialSettings
    from nas.search.study import SearchSettings, run_search
    from nas.train import TrainConfig

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.delitem(sys.modules, "nas.deploy", raising=False)
    space = Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml"
    settings = SearchSettings(
        study_name="ort", n_trials=1, space_path=space,
        data=DataConfig(), train=TrainConfig(), results_dir=tmp_path,
        trial=TrialSettings(latency=LatencySettings(runtime="onnxruntime")))
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[deploy\]'"):
        run_search(settings)
    assert not (tmp_path / "ort").exists()  # nothing was created


def test_deploy_command_exports_and_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:  # fmt: skip
    from nas.deploy.__main__ import main

    out = tmp_path / "m.onnx"
    assert main(["yolov8n.yaml", "--nc", "3", "--imgsz", "64", "--out", str(out),
                 "--threads", "1"]) == 0  # fmt: skip
    assert out.is_file() and "fp32:" in capsys.readouterr().out
    assert main(["yolov8n.yaml", "--weights", str(tmp_path / "missing.pt")]) == 2
    assert capsys.readouterr().err.startswith("error: --weights")
