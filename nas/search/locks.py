"""The study lock: workers sharing one study count the finished trials and ask under it.

One lock per study, taken around the count-and-ask step (and around failing dead workers'
trials and enqueueing the designs), so several workers together run exactly ``n_trials``:

- a journal file: ``flock`` on ``<journal>.nas-lock`` (released by the kernel if the holder
  dies);
- SQLite: ``flock`` on ``<db file>.nas-lock`` next to the database file;
- PostgreSQL: a session advisory lock, ``pg_advisory_lock(hashtext(<study name>))``, on a
  connection of its own (psycopg 3; released by the server if the holder dies). A lost
  connection (server restart) is reopened, with retries, by the next ``acquire``;
- in memory (one process): no lock.

Example:
    >>> from nas.search.locks import lock_for
    >>> lock_for(":memory:", "s", "results") is None
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from nas.search.storage import database_url, journal_path, retry_connection

__all__ = ["Lock", "PostgresAdvisoryLock", "StudyLock", "file_lock", "lock_for", "study_lock"]

logger = logging.getLogger(__name__)



class Lock(Protocol):
    """What a database lock offers (``PostgresAdvisoryLock``)."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...


StudyLock = Path | Lock  # a lock file (flock), or a database lock


def lock_for(storage: str | None, study_name: str, results_dir: str | Path) -> StudyLock | None:
    """The lock that serialises the workers of a study on the given storage (None: none)."""
    journal = journal_path(storage, study_name, results_dir)
    if journal is not None:
        return journal.with_name(journal.name + ".nas-lock")
    assert storage is not None
    if storage == ":memory:":
        return None
    url = make_url(database_url(storage))
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        db = Path(url.database)
        return db.with_name(db.name + ".nas-lock")
    if url.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(storage, study_name)
    logger.warning("storage %s: no study lock for %s databases; workers may overshoot "
                   "n_trials by up to workers - 1", storage, url.get_backend_name())
    return None


@contextlib.contextmanager
def study_lock(lock: StudyLock | None) -> Iterator[None]:
    """Hold the study lock (``lock_for``) for the ``with`` block; no-op if None."""
    if lock is None:
        yield
        return
    if isinstance(lock, Path):
        with file_lock(lock):
            yield
        return
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class PostgresAdvisoryLock:
    """``pg_advisory_lock(hashtext(key))`` on a dedicated psycopg connection (kept open).

    Args:
        url: the study's ``postgresql://`` storage URL (any SQLAlchemy driver suffix).
        key: what the lock is named after (the study name).
        retry_s: how long ``acquire`` retries while the server is unreachable.
    """

    def __init__(self, url: str, key: str, *, retry_s: float = 300.0) -> None:
        sa_url = make_url(database_url(url)).set(drivername="postgresql")
        self.conninfo = sa_url.render_as_string(hide_password=False)
        self.key = key
        self.retry_s = retry_s
        self._conn: Any = None

    def acquire(self) -> None:
        """Block until this process holds the lock (reconnecting after a lost connection)."""
        retry_connection(self._acquire_once, "study lock", retry_s=self.retry_s)

    def _acquire_once(self) -> None:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        try:
            self._conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.key,))
        except psycopg.OperationalError:
            self.close()
            raise

    def release(self) -> None:
        """Release the lock (a dropped connection has released it already)."""
        import psycopg

        try:
            self._conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.key,))
        except psycopg.OperationalError as e:
            logger.warning("study lock: connection lost while held (%s); the server has "
                           "released it", str(e).strip().splitlines()[0] if str(e) else e)
            self.close()

    def close(self) -> None:
        """Close the lock's connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_conn": None}
