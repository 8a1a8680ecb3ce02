"""Worker processes sharing one study: who runs each trial, and what a dead worker leaves.

- A worker records itself on the trial it asks for (``WORKER_ATTR``: host, pid, process start
  time) and keeps a heartbeat (``HEARTBEAT_ATTR``) while it trains, so a live worker's trial is
  never touched.
- Resume: trials left RUNNING by a dead worker are marked FAIL (``fail_reason = "interrupted:
  ..."``) and their candidates enqueued again (``retry_of``).
- ``n_trials`` counts finished trials (COMPLETE, PRUNED, FAIL) except interrupted ones, so a
  resumed study runs until that many trials really finished. Workers sharing a study take
  its lock (``study_lock``, ``nas.search.locks``: a file lock on a journal or SQLite file, a
  PostgreSQL advisory lock) to fail dead workers' trials, count and ask, so together they
  never exceed it and a worker killed mid-study has its trial re-run by the next ask.

Example:
    >>> from nas.search.workers import worker_id
    >>> sorted(worker_id())
    ['host', 'pid', 'start']
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search import attrs as A
from nas.search.locks import lock_for, study_lock
from nas.search.optuna_api import set_state, set_system_attr, set_user_attr

__all__ = [
    "HEARTBEAT_ATTR",
    "INTERRUPTED",
    "WORKER_ATTR",
    "Heartbeat",
    "counted_trials",
    "fail_stale_trials",
    "finished_counts",
    "is_stale",
    "lock_for",
    "study_lock",
    "worker_id",
]

_CARRIED = (A.DESIGN, A.RUNG, A.PROMOTED_FROM, A.ARCH_HASH)  # onto a dead trial's retry
WORKER_ATTR = "nas:worker"
HEARTBEAT_ATTR = "nas:heartbeat"
INTERRUPTED = "interrupted"


def worker_id() -> dict[str, Any]:
    """This process: host name, pid and start time (tells a reused pid from the same process)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def _worker_alive(worker: dict[str, Any]) -> bool:
    pid = int(worker.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = worker.get("start")
    return start is None or _process_start(pid) in (None, start)


def is_stale(
    trial: FrozenTrial,
    stale_after_s: float,
    now: float | None = None,
    *,
    locked: bool = False,
) -> bool:
    """Whether a RUNNING trial's worker is gone (dead pid on this host, or no heartbeat).

    ``locked``: the caller holds the study lock under which workers ask for a trial and record
    themselves, so a RUNNING trial without a worker record belongs to a process that died in
    between.
    """
    now = time.time() if now is None else now
    worker = trial.system_attrs.get(WORKER_ATTR)
    if worker is None and locked:
        return True
    if isinstance(worker, dict) and worker.get("host") == socket.gethostname():
        return not _worker_alive(worker)
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if beat is None:
        start = trial.datetime_start
        beat = start.timestamp() if start is not None else now
    return now - float(beat) > stale_after_s


def fail_stale_trials(
    study: optuna.Study, stale_after_s: float, *, locked: bool = False
) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker died and enqueue it again; their numbers."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, stale_after_s, locked=locked):
            continue
        worker = trial.system_attrs.get(WORKER_ATTR, {})
        reason = f"{INTERRUPTED}: worker {worker.get('host')}:{worker.get('pid')} stopped"
        set_user_attr(study, trial, A.FAIL_REASON, reason)
        if set_state(study, trial, TrialState.FAIL):
            failed.append(trial.number)
            # the same candidate runs again (as Optuna's RetryFailedTrialCallback would)
            attrs = {A.RETRY_OF: trial.number}
            # what the candidate is and which rung it runs at (a promotion stays a promotion)
            attrs.update({k: trial.user_attrs[k] for k in _CARRIED if k in trial.user_attrs})
            study.enqueue_trial(trial.params, user_attrs=attrs)
    return failed


def counted_trials(
    study: optuna.Study,
    stale_after_s: float,
    where: Callable[[FrozenTrial], bool] | None = None,
) -> int:
    """Trials that count towards ``n_trials``: finished (not interrupted) or live RUNNING.

    ``where``: only trials it accepts count (the search counts candidates, not promotions).
    """
    n = 0
    for t in study.get_trials(deepcopy=False):
        if where is not None and not where(t):
            continue
        if t.state == TrialState.RUNNING:
            n += not is_stale(t, stale_after_s)
        else:
            n += finished_counts(t)
    return n


def finished_counts(trial: FrozenTrial) -> bool:
    """A finished trial that counts: COMPLETE, PRUNED, or FAIL for a reason other than its
    worker's death (an interrupted trial runs again)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not str(
        trial.user_attrs.get(A.FAIL_REASON, "")).startswith(INTERRUPTED)


class Heartbeat:
    """Writes the trial's heartbeat system attribute every ``interval`` seconds (a thread)."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, interval: float = 30.0) -> None:
        self._study, self._trial = study, trial
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # a finished trial can no longer be written
                set_system_attr(self._study, self._trial, HEARTBEAT_ATTR, time.time())

    def __enter__(self) -> Heartbeat:
        set_system_attr(self._study, self._trial, HEARTBEAT_ATTR, time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
