"""Storage settings resolve to the right Optuna storage (nas.search.storage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.storages import InMemoryStorage, JournalStorage

from nas.search import study as study_module
from nas.search.storage import journal_path, open_study, resolve_storage


def test_journal_path_of_each_setting(tmp_path: Path) -> None:
    assert journal_path(None, "s", tmp_path) == tmp_path / "s" / "journal.log"
    assert journal_path("", "s", tmp_path) == tmp_path / "s" / "journal.log"
    assert journal_path("journal:///x/y.bin", "s", tmp_path) == Path("/x/y.bin")
    assert journal_path(str(tmp_path / "a.jsonl"), "s", tmp_path) == tmp_path / "a.jsonl"
    assert journal_path("sqlite:///x.db", "s", tmp_path) is None
    assert journal_path(":memory:", "s", tmp_path) is None
    with pytest.raises(ValueError, match="not an Optuna storage URL"):
        journal_path("results/x.db", "s", tmp_path)


def test_resolve_and_open(tmp_path: Path) -> None:
    storage, url = resolve_storage(None, "s", tmp_path)
    assert isinstance(storage, JournalStorage) and url == str(tmp_path / "s" / "journal.log")
    assert isinstance(resolve_storage(":memory:", "s", tmp_path)[0], InMemoryStorage)
    study = open_study(study_name="s", storage=storage, directions=["maximize", "minimize"],
                       sampler=None, pruner=None)
    assert study.study_name == "s"
    with pytest.raises(ValueError, match="exists with directions"):
        open_study(study_name="s", storage=storage, directions=["maximize"], sampler=None,
                   pruner=None)


def test_study_module_reexports_storage() -> None:
    assert study_module.resolve_storage is resolve_storage
    assert study_module.journal_path is journal_path
    assert study_module.open_study is open_study


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("DuplicateTable: relation \"studies\" already exists", True),
        ("syntax error at or near \"CREATE\"", False),
    ],
)
def test_rdb_storage_survives_a_table_creation_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, retried: bool
) -> None:
    """Two processes creating the tables of a fresh database: the loser retries and loads them."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage

    from nas.search.storage import RetryingRDBStorage

    real_init = RDBStorage.__init__
    calls = []

    def racing_init(self: RDBStorage, url: str, **kwargs: object) -> None:
        calls.append(url)
        if len(calls) == 1:  # the other process won: its CREATE TABLE came first
            raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, Exception(error))
        real_init(self, url, **kwargs)

    monkeypatch.setattr(RDBStorage, "__init__", racing_init)
    url = f"sqlite:///{tmp_path / 's.db'}"
    if not retried:
        with pytest.raises(sqlalchemy.exc.ProgrammingError):
            RetryingRDBStorage(url)
        assert len(calls) == 1
        return
    storage = RetryingRDBStorage(url)
    assert len(calls) == 2
    assert storage.get_all_studies() == []
