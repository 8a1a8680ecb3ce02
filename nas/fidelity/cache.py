"""Finished trainings, one JSON object per line, keyed by (arch_hash, recipe key, seed).

Each training is appended (and flushed) the moment it finishes, so an interrupted measurement
loses at most the trainings in flight, and a rerun (or another study's panel that shares
designs, by ``arch_hash``) skips what is already there. Lines that do not parse (a write cut
short) are ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["Key", "RunCache"]

logger = logging.getLogger(__name__)

Key = tuple[str, str, int]


class RunCache:
    """An append-only JSON-lines file of training records (dicts with the key fields).

    Attributes:
        path: The file (created on the first ``add``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._records: dict[Key, dict[str, Any]] = {}
        if self.path.is_file():
            self._read()

    @staticmethod
    def key_of(record: dict[str, Any]) -> Key:
        return str(record["arch_hash"]), str(record["recipe_key"]), int(record["seed"])

    def _read(self) -> None:
        bad = 0
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._records[self.key_of(record)] = record
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad += 1
        if bad:
            logger.warning("%s: ignored %d unreadable line(s)", self.path, bad)

    def __contains__(self, key: Key) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The record of ``key``, or None."""
        return self._records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the file (flushed and synced) and index it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._records[self.key_of(record)] = record
