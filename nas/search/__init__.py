"""The architecture search: search spaces, the Optuna study, trials, results.

``python -m nas.search`` runs it from the Hydra config in ``conf/search.yaml``; from Python,
build a ``SearchSettings`` and call ``run_search``.
"""

from nas.search.objective import LatencySettings, Objectives, TrialSettings
from nas.search.space import SearchSpace, SpaceError, load_space, parse_space
from nas.search.study import SearchSettings, run_search
from nas.search.wiring import to_arch

__all__ = [
    "LatencySettings",
    "Objectives",
    "SearchSettings",
    "SearchSpace",
    "SpaceError",
    "TrialSettings",
    "load_space",
    "parse_space",
    "run_search",
    "to_arch",
]
