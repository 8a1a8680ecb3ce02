"""How well does the search's score predict a real training? (``python -m nas.fidelity``).

One concern per module:

- ``recipes``: a training recipe (data + train config) composed from ``conf/`` with Hydra
  overrides, its identity (``recipe_key``) and its compute (images x pixels x epochs);
- ``panel``: the designs measured (from a study, a list of model YAMLs, or a seeded spread of a
  search space);
- ``proxies``: training-free and after-training scores (SynFlow, validation loss);
- ``cache``: every finished training as one JSON line keyed by (arch_hash, recipe, seed);
- ``runner``: the training jobs (in parallel processes), skipping those in the cache;
- ``stats``: Kendall tau with a bootstrap interval, Spearman, top-k overlap, seed noise;
- ``report``: the scores of every recipe against the reference, fidelity.csv/json/png.
"""
