"""``python -m nas.info``: table, summary line, JSON output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.info import main

REPO = Path(__file__).resolve().parents[1]


def test_table_and_summary_line(capsys: pytest.CaptureFixture[str]):
    assert main(["yolov8n.yaml", "--nc", "1", "--imgsz", "320"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["from", "n", "params", "module", "arguments"]
    assert out[1].split() == ["0", "-1", "1", "464", "Conv", "[64,", "3,", "2]"]
    assert out[23].split()[:5] == ["22", "[15,", "18,", "21]", "1"]
    assert "751,507  Detect" in out[23]
    assert out[-1].startswith("yolov8n summary: ")
    assert "3,011,043 parameters, 3,011,027 gradients, 2.0 GFLOPs (2.0479 at 320x320)" in out[-1]


def test_json_output(capsys: pytest.CaptureFixture[str]):
    assert main(["yolov8-adown", "--scale", "n", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["params"] == 2_877_648 and data["trainable_params"] == 2_877_632
    assert data["gflops"] == pytest.approx(8.3439, abs=1e-3)
    assert data["scale"] == "n" and data["nc"] == 80 and len(data["layers"]) == 23
    assert data["layers"][3] == {"index": 3, "from": -1, "repeats": 1, "module": "ADown",
                                 "params": 5_248, "args": [256], "channels": 64}
    assert data["layers"][11]["from"] == [-1, 6]
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]


def test_bad_model_path_exit_code_2(capsys: pytest.CaptureFixture[str]):
    assert main(["no/such/model.yaml"]) == 2
    err = capsys.readouterr().err
    assert "error: model description 'no/such/model.yaml' not found" in err
    assert "yolov8.yaml" in err  # lists the available models


def test_bad_scale_and_bad_row_exit_code_2(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert main(["yolov8.yaml", "--scale", "q"]) == 2
    assert "unknown scale 'q'; valid scales: n, s, m, l, x" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone:\n  - [-1, 1, Nope, [8]]\nhead:\n  - [[0], 1, Detect, [nc]]\n")
    assert main([str(bad)]) == 2
    assert "unknown block 'Nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "nas.info", "yolov8n-ghost.yaml", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == 1_865_316
    missing = subprocess.run([sys.executable, "-m", "nas.info", "missing.yaml"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stderr
