"""Where a study lives: storage settings resolved to an Optuna storage, and opening a study.

- ``None`` -> a JournalStorage file ``<results_dir>/<study_name>/journal.log``; a path
  (``*.log``, ``*.journal``, ``*.jsonl``, or ``journal:///abs/path``) -> a JournalStorage file
  (safe for several processes on one machine), checked first and a torn last record cut away
  (``nas.search.journal``); any other URL (``sqlite:///x.db``, ``postgresql://...``) ->
  Optuna's ``RDBStorage`` with pre-pinged connections whose calls are retried while the
  database is unreachable (a server restart); ``:memory:`` -> in memory (tests).
- ``postgresql://`` URLs use psycopg 3 (``postgresql+psycopg://``), the driver this project
  depends on, unless the URL names another driver.

Example:
    >>> from nas.search.storage import journal_path
    >>> journal_path(None, "demo", "results").as_posix()
    'results/demo/journal.log'
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from nas.search.journal import repair_journal

__all__ = [
    "RetryingRDBStorage",
    "database_url",
    "is_connection_error",
    "journal_path",
    "open_study",
    "resolve_storage",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

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
        repair_journal(path)
        return JournalStorage(JournalFileBackend(str(path))), str(path)
    assert storage is not None
    if storage == ":memory:":
        return InMemoryStorage(), storage
    url = database_url(storage)
    return RetryingRDBStorage(url, engine_kwargs={"pool_pre_ping": True}), storage


def database_url(storage: str) -> str:
    """A database URL with its SQLAlchemy driver: ``postgresql://`` -> psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if storage.startswith(scheme):
            return "postgresql+psycopg://" + storage.removeprefix(scheme)
    return storage


def is_connection_error(error: BaseException) -> bool:
    """Whether an error (or one it was raised from) is a lost or refused database connection."""
    import sqlalchemy.exc

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, _driver_errors()):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@functools.cache
def _driver_errors() -> tuple[type[BaseException], ...]:
    """The drivers' own connection errors (psycopg's AdminShutdown is one), raised unwrapped."""
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors.append(psycopg.OperationalError)
    return tuple(errors)


def retry_connection(
    call: Callable[[], _T], what: str, *, retry_s: float = 300.0, first_wait_s: float = 0.5
) -> _T:
    """``call()``, retried with back-off while the database cannot be reached (``retry_s``)."""
    deadline = time.monotonic() + retry_s
    wait = first_wait_s
    while True:
        try:
            return call()
        except Exception as e:
            if not is_connection_error(e) or time.monotonic() + wait > deadline:
                raise
            logger.warning("storage unreachable during %s (%s); retrying in %.1f s "
                           "(for up to %.0f s in all)", what, _first_line(e), wait, retry_s)
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


def _first_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause) else ''}"


class RetryingRDBStorage(RDBStorage):
    """``RDBStorage`` whose calls wait for the database while it is unreachable.

    A restarted or briefly unreachable server makes every call raise a connection error;
    each public storage call is retried with back-off for ``retry_s`` seconds (a warning line
    per attempt) instead of failing the trial or the worker. ``pool_pre_ping`` makes the
    connection pool replace connections the restart closed. A write whose commit reached the
    server just before the connection dropped may be retried once more: Optuna's writes are
    idempotent except trial creation, and that window is the server's own crash window.
    """

    retry_s: float = 300.0

    def __init__(self, url: str, *, retry_s: float = 300.0, **kwargs: Any) -> None:
        import sqlalchemy.exc

        self.retry_s = retry_s
        for attempt in range(5):
            try:
                retry_connection(
                    lambda: RDBStorage.__init__(self, url, **kwargs), "connect", retry_s=retry_s
                )
                return
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
                # workers creating the tables at once: PostgreSQL says DuplicateTable (or a
                # unique violation in its catalog); the next attempt finds the tables made
                if attempt == 4 or not _is_table_race(e):
                    raise
                time.sleep(0.2 * (attempt + 1))


def _is_table_race(error: BaseException) -> bool:
    """Whether a schema-creation error is another process having created the same table."""
    import sqlalchemy.exc

    text = str(error).lower()
    return isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in text


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retry_connection(lambda: method(self, *args, **kwargs), name, retry_s=self.retry_s)

    return call


# the public storage API, and the private RDBStorage methods Optuna's _CachedStorage calls
_CACHED_STORAGE_CALLS = ("_create_new_trial", "_set_trial_param", "_get_best_trial_id",
                         "_get_trials", "_get_stale_trial_ids")
for _name in [*dir(BaseStorage), *_CACHED_STORAGE_CALLS]:
    if (not _name.startswith("_") or _name in _CACHED_STORAGE_CALLS) and callable(
        getattr(RDBStorage, _name, None)
    ):
        setattr(RetryingRDBStorage, _name, _retrying(_name))


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
