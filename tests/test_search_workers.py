"""Workers sharing one JournalStorage file: none lost, none run twice; the local launcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import candidates
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.search.launch import LauncherSettings, usable_cores, worker_command, worker_threads

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
    assert len(candidates(trials)) == N_TRIALS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
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


def test_worker_threads_are_a_share_of_the_cores() -> None:
    assert worker_threads(None, workers=1, cores=2) == 2  # one worker: all cores, as before
    assert worker_threads(None, workers=2, cores=2) == 1
    assert worker_threads(None, workers=3, cores=16) == 5
    assert worker_threads(None, workers=4, cores=2) == 1  # at least one
    assert worker_threads(3, workers=2, cores=2) == 3  # an explicit train.threads wins


def test_worker_command_and_settings() -> None:
    cmd = worker_command(["experiment=quick", "workers=4", "launcher=local",
                          "+train.threads=2", "n_trials=6"], threads=1)
    assert cmd[1:] == ["-m", "nas.search", "experiment=quick", "n_trials=6", "launcher=local",
                       "workers=1", "train.threads=1"]
    assert LauncherSettings.from_config({"name": "ray", "num_gpus": 0.25}, 2).num_gpus == 0.25
    with pytest.raises(ConfigError, match="launcher='slurm': valid"):
        LauncherSettings(name="slurm")
    with pytest.raises(ConfigError, match="unknown keys"):
        LauncherSettings.from_config({"name": "local", "gpus": 1}, 1)
    with pytest.raises(ConfigError, match="workers=0"):
        LauncherSettings(workers=0)


@pytest.mark.slow
def test_local_launcher_two_workers(tmp_path: Path) -> None:
    """``launcher=local workers=2``: two subprocesses, a share of the cores each, one summary."""
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", "launcher=local", "workers=2",
           "n_trials=5", "train.threads=null", f"results_dir={tmp_path}"]
    run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    out = run.communicate(timeout=600)[0]
    assert run.returncode == 0, out[-4000:]
    share = max(1, usable_cores() // 2)
    assert f"launching 2 local workers, {share} torch threads each" in out
    assert f"train.threads={share}" in out
    journal = tmp_path / "quick" / "journal.log"
    trials = optuna.load_study(study_name="quick", storage=JournalStorage(
        JournalFileBackend(str(journal)))).get_trials(deepcopy=False)
    n = len(trials)  # 5 candidates, and any sample that repeated one (a copy, not counted)
    assert sum("duplicate_of" not in t.user_attrs for t in trials) == 5
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert run.pid not in {t.system_attrs["nas:worker"]["pid"] for t in trials}
    relayed = [line for line in out.splitlines() if line.startswith(("[w0] ", "[w1] "))
               and "] trial " in line]
    assert sorted(int(line.split("] trial ")[1].split()[0]) for line in relayed) == list(range(n))
    assert out.count(f"trials: {n} (COMPLETE {n})") == 1  # the summary once, by the launcher
    assert (tmp_path / "quick" / "trials.csv").is_file()
