"""The artifact store: a failed upload names its cause; keep_weights=front keeps the front."""

from __future__ import annotations

import errno
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from nas.errors import ConfigError
from nas.search.artifacts import (
    DROPPED_ATTR,
    ArtifactStoreError,
    drop_weights_off_front,
    keep_policy,
    store_artifact,
)


def test_keep_policy() -> None:
    assert [keep_policy(v) for v in (True, False, "front", "all", "none")] == [
        "all", "none", "front", "all", "none"]
    with pytest.raises(ConfigError, match="trial.keep_weights='some': valid: front, all, none"):
        keep_policy("some")


def test_failing_store_names_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study()
    trial = study.ask()
    weights = tmp_path / "trial0.pt"
    weights.write_bytes(b"x" * 100)
    store = FileSystemArtifactStore(tmp_path / "store")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write", full)
    with pytest.raises(ArtifactStoreError, match=r"could not store trial0.pt \(No space left"):
        store_artifact(store, trial, weights, "application/octet-stream", tmp_path / "store")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's folder should be")
    with pytest.raises(ArtifactStoreError, match=f"artifact store {blocked}: could not store"):
        store_artifact(FileSystemArtifactStore(blocked), trial, weights, "x", blocked)


def test_front_keeps_only_front_weights(tmp_path: Path) -> None:
    store = FileSystemArtifactStore(tmp_path)
    directions = ["maximize", "minimize"]
    study = optuna.create_study(directions=directions)
    points = [(0.5, 3.0), (0.4, 2.0), (0.3, 2.5), (0.6, 3.5), (0.1, 9.0)]  # 2 and 4 dominated
    ids = []
    for i, values in enumerate(points):
        trial = study.ask()
        path = tmp_path / f"w{i}.pt"
        path.write_bytes(b"w")
        ids.append(store_artifact(store, trial, path, "x", tmp_path))
        trial.set_user_attr("weights_artifact", ids[-1])
        study.tell(trial, list(values))
    assert drop_weights_off_front(study, store, directions) == [2, 4]
    kept = {i for i, a in enumerate(ids) if (tmp_path / a).exists()}
    assert kept == {0, 1, 3}
    assert study.user_attrs[DROPPED_ATTR] == [2, 4]
    assert drop_weights_off_front(study, store, directions) == []  # done once


def test_study_goes_on_when_the_store_fails(tmp_path: Path) -> None:
    """Every upload fails (the store's folder is a file): each trial is FAIL with the cause."""
    import subprocess
    import sys

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "artifacts").write_text("not a folder")
    cmd = [sys.executable, str(root / "tests" / "fake_search_worker.py"), "n_trials=3",
           "rungs=single", f"results_dir={tmp_path}"]
    run = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    journal = str(tmp_path / "quick" / "journal.log")
    trials = optuna.load_study(study_name="quick", storage=JournalStorage(
        JournalFileBackend(journal))).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # finished, the study went on
    for t in trials:
        reason = t.user_attrs["fail_reason"]
        assert "[Errno" in reason and "artifacts" in reason, reason  # the cause, the path
