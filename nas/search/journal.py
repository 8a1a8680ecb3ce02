"""A JournalStorage file checked before Optuna reads it: a torn last record is cut away.

Optuna's journal is one JSON record per line, appended (and fsynced) under a lock. A power
loss or a full disk in the middle of an append leaves the last line incomplete, and Optuna
then refuses the whole file (``JSONDecodeError``). ``repair_journal`` looks at the file first:

- every line complete and valid: nothing to do;
- only the last record torn (no final newline, or not JSON): the file is copied to
  ``<name>.bak-<UTC timestamp>``, cut back to its last complete record, and a warning names
  what was dropped (e.g. trial 11's state change: the trial stays RUNNING, so the next start
  fails it as interrupted and runs its candidate again);
- a garbled record before the last one: ``JournalDamageError`` naming the file and line; the
  file is left untouched (that is not what an interrupted append leaves).

Example:
    >>> from nas.search.journal import describe_record
    >>> describe_record(b'{"op_code":6,"worker_id":"w","trial_id":3,"state":1', {3: 2})
    "trial 2's state change to COMPLETE"
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock
from optuna.trial import TrialState

__all__ = ["JournalDamageError", "JournalRepair", "describe_record", "repair_journal"]

logger = logging.getLogger(__name__)

# optuna.storages.journal._storage.JournalOperation (a private enum): what each record does.
_OPERATIONS = {
    0: "the study's creation",
    1: "the study's deletion",
    2: "a study user attribute",
    3: "a study system attribute",
    4: "a trial's creation",
    5: "a parameter",
    6: "state change",
    7: "an intermediate value",
    8: "user attribute",
    9: "system attribute",
}
_CREATE_TRIAL = 4
_SET_STATE = 6
_FIELD = re.compile(rb'"(op_code|trial_id|state|key)":\s*("(?:[^"\\]|\\.)*"|-?\d+)')


class JournalDamageError(ValueError):
    """A journal file damaged where an interrupted append cannot have damaged it."""


@dataclass(frozen=True)
class JournalRepair:
    """What ``repair_journal`` did: the backup, the bytes cut and what the cut record held."""

    path: Path
    backup: Path
    dropped_bytes: int
    dropped: str


def repair_journal(path: str | Path) -> JournalRepair | None:
    """Check a journal file; cut a torn last record away (after a backup). None if intact.

    Holds Optuna's own journal write lock (``<path>.lock``) meanwhile, so a live worker's
    append in progress is never mistaken for a torn record.

    Raises:
        JournalDamageError: a line other than the last one is not a complete JSON record.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        return _repair_locked(path)
    finally:
        lock.release()


def _repair_locked(path: Path) -> JournalRepair | None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    trial_numbers: dict[int, int] = {}  # trial_id -> number, as Optuna's replay counts them
    per_study: dict[int, int] = {}
    good = 0  # bytes of complete records
    for lineno, line in enumerate(lines, start=1):
        record = _parse(line)
        last = lineno == len(lines)
        if record is None:
            if not last:
                raise JournalDamageError(
                    f"{path}: line {lineno} of {len(lines)} is not a complete journal record "
                    f"({line[:80]!r}); only a torn last record is repaired, so the file was "
                    "left untouched: restore it from a backup or remove that line"
                )
            return _cut(path, data, good, *_describe(line, trial_numbers))
        if record.get("op_code") == _CREATE_TRIAL:
            study = int(record.get("study_id", 0))
            trial_numbers[len(trial_numbers)] = per_study.get(study, 0)
            per_study[study] = per_study.get(study, 0) + 1
        if not line.endswith(b"\n"):  # complete record, only its newline lost
            return _cut(path, data, len(data), "", newline=True)
        good += len(line)
    return None


def _parse(line: bytes) -> dict | None:
    if not line.endswith(b"\n") and not line.rstrip().endswith(b"}"):
        return None
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "op_code" in record else None


def describe_record(line: bytes, trial_numbers: dict[int, int]) -> str:
    """What a (torn) journal record was about, from the fields still readable in it."""
    return _describe(line, trial_numbers)[0]


def _describe(line: bytes, trial_numbers: dict[int, int]) -> tuple[str, str]:
    """(what the record was about, what losing it means)."""
    fields = {k.decode(): v.decode().strip('"') for k, v in _FIELD.findall(line)}
    op = int(fields["op_code"]) if "op_code" in fields else None
    if op is None:
        return "an unreadable record", ""
    what = _OPERATIONS.get(op, f"operation {op}")
    if op == _CREATE_TRIAL:
        return what, ": that trial was never created; the next worker asks for a new one"
    if op < _CREATE_TRIAL:
        return what, ""
    if "trial_id" not in fields:
        return f"a trial's {what} (its trial id was cut off)", ""
    number = trial_numbers.get(int(fields["trial_id"]))
    trial = f"trial {number}" if number is not None else f"trial id {fields['trial_id']}"
    if op == _SET_STATE and "state" in fields:
        state = TrialState(int(fields["state"]))
        if state == TrialState.RUNNING:
            return (f"{trial}'s {what} to RUNNING",
                    f": {trial} stays WAITING and runs at the next ask")
        return (f"{trial}'s {what} to {state.name}",
                f": {trial} stays RUNNING, so it is failed as interrupted and its candidate "
                "runs again")
    key = f" {fields['key']!r}" if "key" in fields else ""
    return f"{trial}'s {what}{key}", f" ({trial} keeps its other records)"


def _cut(
    path: Path, data: bytes, keep: int, dropped: str, consequence: str = "", *,
    newline: bool = False,
) -> JournalRepair:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    shutil.copy2(path, backup)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        if newline:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    if newline:
        logger.warning("%s: the last record had lost its newline; added (backup: %s)", path,
                       backup)
        return JournalRepair(path, backup, 0, "")
    lost = len(data) - keep
    logger.warning(
        "%s: the last record was torn (%d bytes, %s): cut back to the last complete record "
        "(backup: %s); that change is lost%s",
        path, lost, dropped, backup, consequence,
    )
    return JournalRepair(path, backup, lost, dropped)

