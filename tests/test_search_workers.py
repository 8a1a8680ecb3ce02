"""Two worker processes on one JournalStorage file finish a study: none lost, none run twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 6


@pytest.mark.slow
def test_two_workers_share_one_journal(tmp_path: Path) -> None:
    journal = tmp_path / "shared.log"
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", f"n_trials={N_TRIALS}",
           f"storage={journal}", f"results_dir={tmp_path}", "train.epochs=3"]
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="quick",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials(deepcopy=False)
    # exactly n_trials, all finished: nothing left RUNNING or WAITING, nothing extra
    assert len(trials) == N_TRIALS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    # each trial was run by exactly one worker, and both workers took part
    pids = [t.system_attrs["nas:worker"]["pid"] for t in trials]
    assert set(pids) == {w.pid for w in workers}
    # the baseline and seed designs were enqueued once, by one of the workers
    designs = [t.user_attrs.get("design") for t in trials]
    assert designs.count("baseline") == 1 and designs.count("light") == 1
    # each worker's progress lines name distinct trials
    numbers = [
        int(line.split(" trial ")[1].split()[0])
        for out, _ in outputs for line in out.splitlines() if " trial " in line and "] " in line
    ]
    assert sorted(numbers) == list(range(N_TRIALS))
