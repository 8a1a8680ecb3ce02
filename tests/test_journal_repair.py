"""A journal whose last record was torn (power loss mid-append) is repaired on open; damage
anywhere else is an error that leaves the file untouched."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.search.journal import JournalDamageError, repair_journal
from nas.search.storage import resolve_storage

ROOT = Path(__file__).resolve().parents[1]
WORKER = [sys.executable, str(ROOT / "tests" / "fake_search_worker.py")]


def load(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="quick",
                             storage=JournalStorage(JournalFileBackend(str(journal))))


def small_journal(path: Path) -> bytes:
    study = optuna.create_study(study_name="quick",
                                storage=JournalStorage(JournalFileBackend(str(path))))
    for _ in range(3):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    return path.read_bytes()


def test_torn_last_record_resumes_and_finishes(tmp_path: Path) -> None:
    cmd = [*WORKER, f"results_dir={tmp_path}", "n_trials=3"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    journal = tmp_path / "quick" / "journal.log"
    whole = journal.read_bytes()
    assert [t.state for t in load(journal).trials] == [TrialState.COMPLETE] * 3
    os.truncate(journal, len(whole) - 37)  # what a power loss mid-append leaves

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # the warning names the lost change and what follows from it
    assert "the last record was torn" in rerun.stderr
    assert "trial 2's state change to COMPLETE" in rerun.stderr
    assert "trial 2 stays RUNNING" in rerun.stderr
    backups = list(journal.parent.glob("journal.log.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == whole[:-37]
    assert "marked interrupted trials [2] as FAIL" in rerun.stdout + rerun.stderr
    trials = load(journal).trials
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[3].user_attrs["retry_of"] == 2 and trials[3].params == trials[2].params
    assert trials[2].user_attrs["fail_reason"].startswith("interrupted")
    assert (tmp_path / "quick" / "trials.csv").is_file()


def test_garbled_middle_record_is_an_error(tmp_path: Path) -> None:
    journal = tmp_path / "j.log"
    lines = small_journal(journal).splitlines(keepends=True)
    lines[2] = lines[2][:10] + b"#garbage#" + lines[2][20:]
    damaged = b"".join(lines)
    journal.write_bytes(damaged)
    with pytest.raises(JournalDamageError, match=rf"{journal}: line 3 of {len(lines)} "):
        resolve_storage(str(journal), "quick", tmp_path)
    assert journal.read_bytes() == damaged  # untouched
    assert not list(tmp_path.glob("j.log.bak-*"))


def test_intact_and_lost_newline(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "j.log"
    whole = small_journal(journal)
    assert repair_journal(journal) is None and journal.read_bytes() == whole
    journal.write_bytes(whole[:-1])  # only the final newline lost: the record is complete
    with caplog.at_level(logging.WARNING):
        repair = repair_journal(journal)
    assert repair is not None and repair.dropped_bytes == 0
    assert journal.read_bytes() == whole and "lost its newline" in caplog.text


@pytest.mark.parametrize(("cut", "dropped"), [
    (2, "trial 2's state change to COMPLETE"),
    (37, "trial 2's state change to COMPLETE"),
    (150, "a trial's state change (its trial id was cut off)"),
])
def test_torn_tail_in_process(tmp_path: Path, cut: int, dropped: str,
                              caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "j.log"
    whole = small_journal(journal)
    journal.write_bytes(whole[:-cut])
    with caplog.at_level(logging.WARNING):
        repair = repair_journal(journal)
    assert repair is not None and repair.dropped == dropped and dropped in caplog.text
    kept = whole[: whole.rstrip(b"\n").rfind(b"\n") + 1]
    assert journal.read_bytes() == kept and repair.backup.read_bytes() == whole[:-cut]
    study = load(journal)
    assert [t.state for t in study.trials][-1] == TrialState.RUNNING  # its tell was lost
