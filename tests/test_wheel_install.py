"""A wheel, installed in a fresh virtual environment without the source tree, runs every command.

The wheel is built from a copy of the packaging inputs (``nas/``, ``conf/``, ``models/``,
``search_spaces/``, ``pyproject.toml``, ``setup.py``, ``README.md``), so the build leaves
nothing in the repository. The fresh environment sees this environment's dependencies (torch,
optuna, hydra...) through a ``.pth`` file naming a folder of links to this environment's
``site-packages`` entries, minus this project's own (its editable finder, ``nas``, its
dist-info), and gets the wheel with ``pip install --no-deps --no-index``: nothing is
downloaded. The commands then run from an empty folder, one of them with a user's own
config group (``--config-dir``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INPUTS = ("nas", "conf", "models", "search_spaces", "pyproject.toml", "setup.py", "README.md")
SHIPPED = ("conf", "models", "search_spaces")
OWN = ("nas", "__editable__", "liteyolo_nas")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None,
    reason="building the wheel needs setuptools (pip install -e '.[dev]')",
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300):  # noqa: ANN202
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(out), str(src)], src, dict(os.environ))  # fmt: skip
    (found,) = out.glob("liteyolo_nas-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    deps = root / "deps"  # this environment's packages, minus this project
    deps.mkdir()
    parents = dict.fromkeys(Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib"))
    for parent in parents:
        for entry in parent.iterdir():
            if entry.name.startswith(OWN) or entry.suffix == ".pth":
                continue
            if not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (site / "_liteyolo_test_deps.pth").write_text(f"{deps}\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
         root, _clean_env())  # fmt: skip
    return python


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_wheel_ships_every_module_and_the_shipped_folders(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "nas").rglob("*.py")
               if "__pycache__" not in p.parts}  # fmt: skip
    assert modules <= names, sorted(modules - names)
    for folder in SHIPPED:
        files = {f"nas/_resources/{p.relative_to(REPO).as_posix()}"
                 for p in (REPO / folder).rglob("*.yaml")}  # fmt: skip
        assert files and files <= names, sorted(files - names)


def test_installed_commands_run_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env()
    where = _run([str(venv), "-c", "import nas, nas.resources as r; "
                  "print(nas.__file__); print(r.path('conf'))"], work, env).stdout.split()
    assert Path(where[0]).is_relative_to(venv.parents[1]), where  # the wheel's copy
    assert Path(where[1]).is_relative_to(venv.parents[1]), where

    info = _run([str(venv), "-m", "nas.info", "yolov8n.yaml", "--json"], work, env)
    assert json.loads(info.stdout)["params"] == 3_157_200

    search = _run([str(venv), "-m", "nas.search", "experiment=quick", "n_trials=2"], work, env)
    assert (work / "results" / "quick" / "trials.csv").is_file(), search.stdout[-2000:]

    out = work / "run"
    mine = tmp_path / "my_conf"  # a user's own config group option, by --config-dir
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "tiny.yaml").write_text(
        "format: synthetic\nsynthetic: {num_train: 8, num_val: 4, image_size: 64, "
        "min_size: 8.0}\n")  # fmt: skip
    tiny = ["imgsz=64", "train.batch_size=4", "train.threads=1", "progress=false"]
    train = _run([str(venv), "-m", "nas.train", "yolov8n.yaml", "--config-dir", str(mine),
                  "data=tiny", "train=brief", "epochs=1", *tiny, f"hydra.run.dir={out}"],
                 work, env)  # fmt: skip
    assert train.stdout.strip().splitlines()[-1] == str(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["train_images"] == 8  # the user's data group

    bad = subprocess.run([str(venv), "-m", "nas.train", "nosuch.yaml"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "yolov8.yaml" in bad.stderr  # the shipped models listed
