"""``launcher=ray``: search workers as Ray tasks on a local Ray instance share one study."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import candidates
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ray_launcher_runs_the_quick_search(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", "launcher=ray", "workers=2",
           "n_trials=4", f"results_dir={tmp_path}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-4000:]
    assert "launching 2 Ray tasks (num_cpus=1" in out
    journal = tmp_path / "quick" / "journal.log"
    study = optuna.load_study(study_name="quick",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials(deepcopy=False)
    n = len(trials)  # 4 candidates and any copy a sampler drew in the 8-design space
    assert len(candidates(trials)) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    # the Ray tasks ran them (not the driver), each trial once; progress relayed to the driver
    pids = {t.system_attrs["nas:worker"]["pid"] for t in trials}
    assert run.pid not in pids
    progress = [line for line in out.splitlines() if "] trial " in line and "_ray_worker" in line]
    assert sorted(int(line.split("] trial ")[1].split()[0]) for line in progress) == list(range(n))
    # the summary once, by the driver, and the results written
    assert out.count(f"trials: {n} (COMPLETE {n})") == 1
    assert (tmp_path / "quick" / "trials.csv").is_file()
