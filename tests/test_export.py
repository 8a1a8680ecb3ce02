"""python -m nas.export round trip, nas.info on the export, and loading exports in ultralytics."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas.model.arch import save_arch
from nas.model.counting import count_params
from nas.model.detector import build_model
from nas.search.export import main as export_main
from nas.search.export import parse_budget, select_trial
from nas.search.objective import LatencySettings, Objectives, TrialContext, TrialSettings
from nas.search.space import load_space, parse_space
from nas.search.study import _evaluate
from nas.search.wiring import to_arch

sys.path.insert(0, str(Path(__file__).parent))
from test_search_e2e import FakeFit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HAS_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/<study>/ with a journal and artifacts: three trained trials (stand-in fit)."""
    results = tmp_path_factory.mktemp("results")
    space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC", "C2fGhost"]}},
                         "neck": {"type": ["PAN"]}, "width": [0.0625]}, source="t.yaml")
    settings = TrialSettings(gflops_imgsz=64, keep_weights=True,
                             latency=LatencySettings(imgsz=64, repeats=1, warmup=0))
    (results / "exp").mkdir()
    storage = JournalStorage(JournalFileBackend(str(results / "exp" / "journal.log")))
    study = optuna.create_study(study_name="exp", storage=storage,
                                directions=Objectives().directions)
    ctx = TrialContext(space=space, objectives=Objectives(), data=None, train=_Train(),
                       settings=settings, artifact_dir=results / "exp" / "artifacts", nc=3,
                       fit=FakeFit())
    for block in ("C2f", "CSPPC", "C2fGhost"):
        study.enqueue_trial({"backbone.block.P3": block})
        trial = study.ask()
        outcome = _evaluate(trial, ctx)
        study.tell(trial, outcome.values, state=outcome.state)
    return results


class _Train:
    seed = 0
    device = "cpu"


def load(results: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(results / "exp" / "journal.log")))
    return optuna.load_study(study_name="exp", storage=storage)


def test_export_trial_round_trip(study_dir: Path, tmp_path: Path) -> None:
    study = load(study_dir)
    recorded = study.trials[1].user_attrs["params"]
    code = export_main(["--study", "exp", "--results-dir", str(study_dir), "--trial", "1",
                        "--out", str(tmp_path)])
    assert code == 0
    yaml_path = tmp_path / "yolov8n-exp-trial1.yaml"
    weights = tmp_path / "yolov8n-exp-trial1.pt"
    assert yaml_path.is_file() and weights.is_file()
    proc = subprocess.run([sys.executable, "-m", "nas.info", str(yaml_path), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == recorded
    model = build_model(yaml_path)
    model.load_state_dict(torch.load(weights, weights_only=True))
    assert count_params(model) == recorded


def test_best_under_budget(study_dir: Path, tmp_path: Path) -> None:
    study = load(study_dir)
    params = sorted(t.user_attrs["params"] for t in study.trials)
    budget = (params[0] + params[1]) / 2
    chosen = select_trial(study, budgets=[("params", budget)])
    assert chosen.user_attrs["params"] == params[0]
    best = max(study.trials, key=lambda t: t.user_attrs["map50_95"])
    assert select_trial(study, budgets=[("params", 1e9)]).number == best.number
    with pytest.raises(ValueError, match="no COMPLETE trial"):
        select_trial(study, budgets=[("params", 10)])


def test_export_errors(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export_main(["--study", "exp", "--results-dir", str(study_dir), "--trial", "99"]) == 2
    assert "no trial 99" in capsys.readouterr().err
    assert export_main(["--study", "nope", "--results-dir", str(study_dir), "--trial", "0"]) == 2
    assert "no study storage" in capsys.readouterr().err
    with pytest.raises(ValueError, match="size=3.*METRIC one of"):
        parse_budget("size=3")


def _ultralytics_params(yaml_path: Path, register: bool) -> int:
    code = (
        "import sys, nas.ultralytics as nu\n"
        f"{'nu.register()' if register else ''}\n"
        "from ultralytics import YOLO\n"
        "m = YOLO(sys.argv[1])\n"
        "print(sum(p.numel() for p in m.model.parameters()))\n"
    )
    cfg = yaml_path.parent / "ycfg"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "OMP_NUM_THREADS": "1",
           "YOLO_CONFIG_DIR": str(cfg), "YOLO_VERBOSE": "False"}
    proc = subprocess.run([sys.executable, "-c", code, str(yaml_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="ultralytics not installed (optional extra)")
def test_standard_blocks_export_loads_in_ultralytics(study_dir: Path, tmp_path: Path) -> None:
    assert export_main(["--study", "exp", "--results-dir", str(study_dir), "--trial", "0",
                        "--out", str(tmp_path)]) == 0
    recorded = load(study_dir).trials[0].user_attrs["params"]
    assert _ultralytics_params(tmp_path / "yolov8n-exp-trial0.yaml", register=False) == recorded


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="ultralytics not installed (optional extra)")
def test_nas_blocks_load_in_ultralytics_after_register(tmp_path: Path) -> None:
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    # seed 000 uses CSPPC, ADown, Down_wt and the AFPN row with Index rows
    arch = to_arch(space, space.seeds["seed000_csppc_adown_afpn"], nc=3)
    path = save_arch(arch, tmp_path / "yolov8n-seed000.yaml")
    assert _ultralytics_params(path, register=True) == count_params(build_model(arch))
