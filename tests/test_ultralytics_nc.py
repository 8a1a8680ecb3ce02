"""An exported YAML (``nc: 4``, custom blocks) trains in ultralytics on data with 7 classes.

ultralytics overrides ``nc`` with the data's class count; ``nas.ultralytics.register()`` must
make the ``Detect`` row follow it, also when the row holds the number (``Detect, [4]``, as a
search trial's YAML does). One training step each on a tiny YOLO dataset built in a temporary
folder, in a subprocess (importing ultralytics changes process-wide state), offline.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, os, shutil, sys
from pathlib import Path
tmp = Path(sys.argv[1])
os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(tmp / "cfg"))
import matplotlib
(tmp / "cfg" / "Ultralytics").mkdir(parents=True)
shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf",
            tmp / "cfg" / "Ultralytics" / "Arial.ttf")  # no font download
import numpy as np
import yaml
from PIL import Image

rng = np.random.default_rng(0)
for split in ("train", "val"):
    for sub in ("images", "labels"):
        (tmp / "ds" / split / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            tmp / "ds" / split / "images" / f"{i}.jpg")
        (tmp / "ds" / split / "labels" / f"{i}.txt").write_text(
            f"{6 - i} 0.5 0.5 0.4 0.4\n{i} 0.3 0.3 0.2 0.2\n")  # class 6 > the YAML's nc
(tmp / "ds" / "data.yaml").write_text(yaml.safe_dump({
    "path": str(tmp / "ds"), "train": "train/images", "val": "val/images",
    "names": ["a", "b", "c", "d", "e", "f", "g"]}))

import nas.ultralytics
from nas.model import dump_arch, load_arch
from nas.model.arch import models_dir

nas.ultralytics.register()
from ultralytics import YOLO
import ultralytics.utils.torch_utils as torch_utils

torch_utils.NUM_THREADS = 1
result = {}
for name in ("yolov8n-csppc", "yolov8n-afpn"):
    for literal in (False, True):
        arch = yaml.safe_load(dump_arch(load_arch(f"{name}.yaml", nc=4)))
        if literal:  # as a search trial writes it
            arch["head"][-1][3] = [4]
        path = tmp / f"{name}-{'literal' if literal else 'nc'}.yaml"
        path.write_text(yaml.safe_dump(arch, sort_keys=False))
        model = YOLO(str(path))
        model.train(data=str(tmp / "ds" / "data.yaml"), epochs=1, imgsz=64, batch=2, workers=0,
                    device="cpu", plots=False, val=False, amp=False, verbose=False,
                    project=str(tmp / "runs"), name=path.stem, exist_ok=True)
        head = model.model.model[-1]
        tloss = model.trainer.tloss
        losses = tloss.values() if isinstance(tloss, dict) else tloss.flatten().tolist()
        result[path.stem] = [int(head.nc), int(model.model.yaml["nc"]),
                             sum(float(v) for v in losses)]
print(json.dumps(result))
"""


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                    reason="ultralytics is not installed")  # fmt: skip
def test_export_with_custom_blocks_trains_on_another_class_count(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=REPO, text=True,
                         capture_output=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    names = {f"yolov8n-{n}-{k}" for n in ("csppc", "afpn") for k in ("nc", "literal")}
    assert set(result) == names
    for name, (head_nc, yaml_nc, loss) in result.items():
        assert (head_nc, yaml_nc) == (7, 7), name
        assert loss > 0 and loss == loss, name  # finite: the assigner saw 7 classes
