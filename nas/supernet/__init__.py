"""Weight sharing: one supernet per study scores every candidate (``evaluator=supernet``).

- ``plan``: which rows each decision of a search space replaces, read off the wiring;
- ``choice`` / ``supernet``: ``ChoiceModule`` rows and the ``SuperNet`` of the branches;
- ``sampling``: the path trained at each step (``uniform`` SPOS, ``fair`` FairNAS);
- ``train``: the checkpointed, resumable supernet training;
- ``inherit``: a candidate's weights copied into its standalone build, BatchNorm recalibration,
  fine-tuning;
- ``evaluator``: the ``supernet`` evaluator of ``nas.search.evaluators``.
"""

from nas.supernet.choice import ChoiceModule
from nas.supernet.config import SupernetSettings
from nas.supernet.evaluator import SupernetEvaluator, supernet_dir
from nas.supernet.inherit import finetune, inherit_weights, recalibrate_bn
from nas.supernet.plan import Branch, SupernetError, SupernetPlan, plan_supernet
from nas.supernet.sampling import SAMPLING_RULES, PathSampler, option_sizes, sampling_names
from nas.supernet.supernet import SuperNet
from nas.supernet.train import SupernetRun, train_supernet

__all__ = [
    "SAMPLING_RULES",
    "Branch",
    "ChoiceModule",
    "PathSampler",
    "SuperNet",
    "SupernetError",
    "SupernetEvaluator",
    "SupernetPlan",
    "SupernetRun",
    "SupernetSettings",
    "finetune",
    "inherit_weights",
    "option_sizes",
    "plan_supernet",
    "recalibrate_bn",
    "sampling_names",
    "supernet_dir",
    "train_supernet",
]
