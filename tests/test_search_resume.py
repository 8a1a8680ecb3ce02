"""SIGKILL a search in the middle of a trial, run the same command again: it resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import candidates
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.search.workers import counted_trials, fail_stale_trials, is_stale, worker_id

ROOT = Path(__file__).resolve().parents[1]
# Trials of a few seconds each, so the kill lands inside the second one.
COMMAND = [sys.executable, "-m", "nas.search", "experiment=quick", "n_trials=4",
           "train.epochs=6"]


def load(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="quick",
                             storage=JournalStorage(JournalFileBackend(str(journal))))


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(tmp_path: Path) -> None:
    cmd = [*COMMAND, f"results_dir={tmp_path}"]
    journal = tmp_path / "quick" / "journal.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    killed = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file():
                with contextlib.suppress(KeyError):
                    trials = load(journal).get_trials(deepcopy=False)
                    s = {t.number: t for t in trials}
                    if (0 in s and s[0].state == TrialState.COMPLETE and 1 in s
                            and s[1].state == TrialState.RUNNING
                            and "arch_hash" in s[1].user_attrs):  # built, now training
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = True
                        break
            time.sleep(0.05)
    finally:
        if not killed and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed, f"never saw trial 1 running: {proc.stderr.read().decode()[-2000:]}"
    assert load(journal).trials[1].state == TrialState.RUNNING  # left behind by the dead process

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "marked interrupted trials [1] as FAIL" in rerun.stdout
    trials = load(journal).get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    assert by_number[0].state == TrialState.COMPLETE  # kept, not re-run
    assert by_number[0].user_attrs["design"] == "baseline"
    assert by_number[1].state == TrialState.FAIL
    assert by_number[1].user_attrs["fail_reason"].startswith("interrupted")
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(candidates(finished)) == 4  # continued to n_trials
    assert len(trials) == len(finished) + 1  # and the interrupted trial
    assert [t.user_attrs.get("design") for t in trials].count("baseline") == 1
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == by_number[1].params
    assert retry[0].user_attrs["design"] == by_number[1].user_attrs["design"] == "light"


def test_live_worker_trial_is_not_stale(tmp_path: Path) -> None:
    """Only trials of dead workers are failed: this process's own running trial is left alone."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, "nas:worker", worker_id())
    frozen = study.trials[0]
    assert not is_stale(frozen, stale_after_s=0.0)
    assert fail_stale_trials(study, 0.0) == []
    dead = study.ask()
    study._storage.set_trial_system_attr(
        dead._trial_id, "nas:worker", {**worker_id(), "pid": 2**22 + 12345})
    assert fail_stale_trials(study, 600.0) == [dead.number]
    assert counted_trials(study, 600.0) == 1  # the live running one; interrupted ones not
    other_host = study.ask()
    study._storage.set_trial_system_attr(
        other_host._trial_id, "nas:worker", {"host": "elsewhere", "pid": 1, "start": None})
    study._storage.set_trial_system_attr(other_host._trial_id, "nas:heartbeat",
                                         time.time() - 1000)
    assert is_stale(study.trials[2], stale_after_s=600.0)
    assert not is_stale(study.trials[2], stale_after_s=3600.0)
