"""The trials' artifact store: uploads that fail with a reason, and which weights are kept.

- ``store_artifact``: one upload to the study's ``FileSystemArtifactStore``; an ``OSError``
  (disk full, permission denied, a vanished mount) becomes an ``ArtifactStoreError`` whose
  message names the store, the file and the cause, so the trial ends FAIL with that reason
  (``fail_reason``) and the study goes on.
- ``trial.keep_weights``: ``all`` (every finished trial keeps its weights), ``none``, or
  ``front``: weights are kept only while the trial is on the Pareto front of its rung;
  ``drop_weights_off_front`` removes the others' (called after each ``tell``), so a
  1,000-trial study keeps a front's worth of weight files, not a thousand.

Example:
    >>> keep_policy(True), keep_policy("front")
    ('all', 'front')
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.search import attrs as A

__all__ = [
    "DROPPED_ATTR",
    "KEEP_WEIGHTS",
    "ArtifactStoreError",
    "drop_weights_off_front",
    "keep_policy",
    "store_artifact",
]

logger = logging.getLogger(__name__)

KEEP_WEIGHTS = ("front", "all", "none")
WEIGHTS_ATTR = A.WEIGHTS_ARTIFACT
RUNG_ATTR = A.RUNG
DROPPED_ATTR = "weights_dropped"  # study user attr: trial numbers whose weights were removed


class ArtifactStoreError(RuntimeError):
    """The artifact store refused a file (disk full, permission denied, ...)."""


def keep_policy(value: str | bool) -> str:
    """``trial.keep_weights`` as one of ``KEEP_WEIGHTS`` (``true`` = all, ``false`` = none)."""
    if isinstance(value, bool):
        return "all" if value else "none"
    if value not in KEEP_WEIGHTS:
        raise ConfigError(f"trial.keep_weights={value!r}: valid: {', '.join(KEEP_WEIGHTS)}")
    return value


def store_artifact(
    store: FileSystemArtifactStore, trial: optuna.Trial, path: Path, mime: str, root: Path
) -> str:
    """Upload ``path`` as the trial's artifact; its id.

    Raises:
        ArtifactStoreError: the store could not take the file (the message says why).
    """
    try:
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                               mimetype=mime)
    except OSError as e:
        raise ArtifactStoreError(
            f"artifact store {root}: could not store {path.name} "
            f"({e.strerror or type(e).__name__}{f': {e.filename}' if e.filename else ''})"
        ) from e


def drop_weights_off_front(
    study: optuna.Study, store: FileSystemArtifactStore, directions: Sequence[str]
) -> list[int]:
    """Remove the weights of COMPLETE trials no longer on their rung's front; their numbers.

    The front is the non-dominated set of the trials' objective values (``directions``)
    among the COMPLETE trials of the same rung (``rung`` user attribute, 0 when absent).
    Removed trials are listed in the study's ``weights_dropped`` user attribute.
    """
    from nas.search.results import pareto_mask

    dropped_before = set(study.user_attrs.get(DROPPED_ATTR, []))
    by_rung: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.values is not None:
            by_rung.setdefault(int(t.user_attrs.get(RUNG_ATTR, 0)), []).append(t)
    dropped = []
    for trials in by_rung.values():
        mask = pareto_mask([t.values for t in trials], list(directions))
        for t, on_front in zip(trials, mask, strict=True):
            artifact = t.user_attrs.get(WEIGHTS_ATTR)
            if on_front or artifact is None or t.number in dropped_before:
                continue
            with contextlib.suppress(FileNotFoundError):  # another worker removed it first
                store.remove(artifact)
            dropped.append(t.number)
    if dropped:
        study.set_user_attr(DROPPED_ATTR, sorted(dropped_before | set(dropped)))
        logger.info("weights removed (off the front): trials %s", dropped)
    return dropped
