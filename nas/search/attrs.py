"""The trial schema: the names of what a search trial records, and the metric lists.

Every module that writes or reads a trial's user attributes (the objective, the study loop,
workers, results, export, fidelity) uses these names, so a record is renamed in one place.
optuna-dashboard shows them as the trial's user attributes.

Example:
    >>> from nas.search import attrs
    >>> attrs.MAP50_95, attrs.MAXIMIZE
    ('map50_95', ('map50_95', 'map50'))
"""

from __future__ import annotations

# What the candidate is.
CHOICES = "choices"  # {decision key: option}
ARCH_YAML = "arch_yaml"  # the model YAML (ultralytics format)
ARCH_HASH = "arch_hash"  # sha256 of ARCH_YAML, 16 hex digits: a candidate's identity
DESIGN = "design"  # "baseline" or a seed design's name (enqueued designs only)

# Its counts.
PARAMS = "params"
GFLOPS = "gflops"
LATENCY_MS = "latency_ms"
LATENCY_IQR_MS = "latency_iqr_ms"
LATENCY_RUNTIME = "latency_runtime"

# Its scores at the trial's rung (the mean over the rung's seeds).
MAP50 = "map50"
MAP50_95 = "map50_95"
MAP50_95_SD = "map50_95_sd"  # sd over the rung's seeds (None with one seed)
MAP50_95_SEEDS = "map50_95_seeds"  # one value per seed
N_SEEDS = "n_seeds"
TRAIN_SECONDS = "train_seconds"
EPOCHS = "epochs"
LAST_EPOCH = "last_epoch"
EVALUATOR = "evaluator"
PROXY = "proxy_score"  # a zero-cost rung's score instead of the mAPs (its evaluator names it)

# Multi-fidelity: which rung this trial evaluated, and where it came from.
RUNG = "rung"
PROMOTED_FROM = "promoted_from"  # the trial number at the rung below

# How the trial ended, when not plainly COMPLETE.
DUPLICATE_OF = "duplicate_of"
REJECT_REASON = "reject_reason"
PRUNE_REASON = "prune_reason"
FAIL_REASON = "fail_reason"
RETRY_OF = "retry_of"

# Optuna artifact ids.
YAML_ARTIFACT = "yaml_artifact"
WEIGHTS_ARTIFACT = "weights_artifact"

# Study-level records.
DESIGNS_ENQUEUED = "designs_enqueued"
SCHEDULE = "rung_schedule"

MAXIMIZE = (MAP50_95, MAP50)  # metrics an objective may maximise
MINIMIZE = (PARAMS, GFLOPS, LATENCY_MS)  # metrics an objective may minimise
BUDGETED = {PARAMS: "max_params", GFLOPS: "max_gflops", LATENCY_MS: "max_latency_ms"}
SCORES = (MAP50, MAP50_95, MAP50_95_SD, MAP50_95_SEEDS, N_SEEDS, TRAIN_SECONDS, EPOCHS, PROXY)
METRICS = (PARAMS, GFLOPS, LATENCY_MS, MAP50, MAP50_95, MAP50_95_SD, N_SEEDS, RUNG,
           TRAIN_SECONDS, PROXY)  # the numeric columns of trials.csv
REASONS = (REJECT_REASON, PRUNE_REASON, FAIL_REASON)
