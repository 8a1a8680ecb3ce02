"""Where a study lives: storage settings resolved to an Optuna storage, and opening a study.

- ``None`` -> a JournalStorage file ``<results_dir>/<study_name>/journal.log``; a path
  (``*.log``, ``*.journal``, ``*.jsonl``, or ``journal:///abs/path``) -> a JournalStorage file
  (safe for several processes on one machine); any other URL (``sqlite:///x.db``,
  ``postgresql://...``) -> Optuna's own storage for it; ``:memory:`` -> in memory (tests).

Example:
    >>> from nas.search.storage import journal_path
    >>> journal_path(None, "demo", "results").as_posix()
    'results/demo/journal.log'
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

__all__ = ["journal_path", "open_study", "resolve_storage"]

_JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


def journal_path(storage: str | None, study_name: str, results_dir: str | Path) -> Path | None:
    """The journal file a storage setting names, or None for a database URL / in memory."""
    if storage is None or storage == "":
        return Path(results_dir) / study_name / "journal.log"
    if storage.startswith("journal://"):
        return Path(storage.removeprefix("journal://"))
    if "://" in storage or storage == ":memory:":
        return None
    if Path(storage).suffix in _JOURNAL_SUFFIXES or Path(storage).is_file():
        return Path(storage)
    raise ValueError(
        f"storage={storage!r}: not an Optuna storage URL (sqlite:///..., postgresql://..., "
        f"mysql://...), nor a journal file path (suffix {', '.join(_JOURNAL_SUFFIXES)} or "
        "journal:///path), nor ':memory:'"
    )


def resolve_storage(
    storage: str | None, study_name: str, results_dir: str | Path
) -> tuple[BaseStorage, str]:
    """The storage object and a display URL (for ``optuna-dashboard``) of a storage setting."""
    path = journal_path(storage, study_name, results_dir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), str(path)
    assert storage is not None
    if storage == ":memory:":
        return InMemoryStorage(), storage
    return optuna.storages.get_storage(storage), storage


def open_study(
    *,
    study_name: str,
    storage: BaseStorage,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler | None,
    pruner: optuna.pruners.BasePruner | None,
) -> optuna.Study:
    """Create the study, or load it if it exists (resume); its directions must match."""
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ValueError(
            f"study {study_name!r} exists with directions {have}, but the objectives ask for "
            f"{directions}: use another study_name= or the same objectives= as before"
        )
    return study
