"""The few Optuna internals the search needs, behind one small adapter.

Optuna has no public API to write a system attribute, or a user attribute of a trial that
another process owns, nor to end such a trial: the worker records, heartbeats and the recovery
of dead workers' trials need all three. Everything else uses Optuna's public API.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = ["set_state", "set_system_attr", "set_user_attr", "storage_of", "trial_id"]


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage object."""
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number)."""
    return trial._trial_id


def set_system_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str,
                    value: Any) -> None:
    """Write a system attribute of a running trial."""
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def set_user_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str,
                  value: Any) -> None:
    """Write a user attribute of a running trial this process does not hold as ``Trial``."""
    storage_of(study).set_trial_user_attr(trial_id(trial), key, value)


def set_state(study: optuna.Study, trial: optuna.Trial | FrozenTrial, state: TrialState) -> bool:
    """End a running trial with ``state``; False if another process ended it first."""
    return storage_of(study).set_trial_state_values(trial_id(trial), state)
