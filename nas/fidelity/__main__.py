"""``python -m nas.fidelity``: how well does the search's score predict a longer training?

Examples::

    python -m nas.fidelity --study liteyolo --json
    python -m nas.fidelity --study liteyolo --spread score --designs 14 --only reference
    python -m nas.fidelity --space search_spaces/default.yaml --sample 6 --out results/fid
    python -m nas.fidelity --models yolov8n.yaml yolov8n-ghostnet.yaml yolov8n-csppc.yaml \
        --reference "train=full data.train_subset=null train.epochs=30" \
        --candidate "r400: data.train_subset=null train.epochs=3"

Every recipe is a list of Hydra overrides on ``conf/search.yaml`` (the trial recipe: none);
``--common`` overrides apply to all of them (e.g. ``--common data=bccd``). Trainings are cached
in ``<results-dir>/fidelity-cache.jsonl`` (``--cache``) by (arch_hash, recipe, seed): a rerun, or
another panel sharing designs, skips what is done. Bad input: one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.fidelity.panel import SPREAD_BY
from nas.fidelity.recipes import DEFAULT_REFERENCE, compose_recipe, parse_recipe_arg

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m nas.fidelity",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--study", help="a search study's name (its trials are the panel)")
    src.add_argument("--models", nargs="+", metavar="YAML", help="model YAML files or names")
    src.add_argument("--space", help="a search-space YAML: baseline, seeds and --sample designs")
    p.add_argument("--results-dir", default="results", help="parent of <study>/ (default results)")
    p.add_argument("--storage", default=None, help="the study's storage (default: its journal)")
    p.add_argument("--sample", type=int, default=6, help="--space: sampled designs (default 6)")
    p.add_argument("--panel-seed", type=int, default=0, help="seed of the sampled designs")
    p.add_argument("--designs", type=int, default=10, help="--study: panel size (default 10)")
    p.add_argument("--spread", choices=sorted(SPREAD_BY), default="params",
                   help="--study: after the baseline, seeds and front, designs spread over the "
                   "study's params (default) or its rung-0 score (report in fidelity-by-score/)")
    p.add_argument("--trial", default="", help="overrides of the trial recipe (default none)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="training seeds of the trial recipe (default 0 1 2)")
    p.add_argument("--reference", default=" ".join(DEFAULT_REFERENCE),
                   help="overrides of the reference recipe (default: %(default)s)")
    p.add_argument("--reference-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--candidate", action="append", default=[], metavar="'NAME: OVERRIDES'",
                   help="a further cheap recipe to score (repeatable)")
    p.add_argument("--candidate-seeds", type=int, nargs="+", default=None,
                   help="seeds of the candidates (default: --seeds)")
    p.add_argument("--common", default="", help="overrides applied to every recipe")
    p.add_argument("--workers", type=int, default=1, help="parallel training processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples of the tau intervals (default 1000)")
    p.add_argument("--synflow-imgsz", type=int, default=64, help="SynFlow input side (64)")
    p.add_argument("--top-k", type=int, default=3, help="k of the top-k overlap (default 3)")
    p.add_argument("--out", default=None, help="output folder (default results/<study>/fidelity)")
    p.add_argument("--cache", default=None, help="training cache (default "
                   "<results-dir>/fidelity-cache.jsonl)")  # fmt: skip
    p.add_argument("--no-train", action="store_true", help="report from the cache only")
    p.add_argument("--only", nargs="+", default=None, metavar="RECIPE[@SEED]",
                   help="train only these recipes (or recipe@seed); the report uses all")
    p.add_argument("--json", action="store_true", help="print only the summary JSON object")
    return p


def _fail(message: str) -> None:
    print(f"nas.fidelity: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None, *, train_fn: Callable[..., Any] | None = None) -> None:
    """Parse, build the panel and recipes, train what is missing, write and print the report.

    ``train_fn`` replaces ``nas.fidelity.runner.train_job`` (tests: a fake trainer).
    """
    args = build_parser().parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO,
                        format="[fidelity] %(message)s")  # fmt: skip
    from nas.fidelity.measure import Measurement, run_measurement

    try:
        common = parse_recipe_arg(args.common, "common")[1]
        trial = compose_recipe("trial", common + parse_recipe_arg(args.trial, "trial")[1])
        reference = compose_recipe("reference", common + parse_recipe_arg(
            args.reference, "reference")[1])  # fmt: skip
        candidates = []
        for i, text in enumerate(args.candidate):
            name, overrides = parse_recipe_arg(text, f"candidate{i}")
            candidates.append(compose_recipe(name, common + overrides))
        spec = Measurement(
            trial=trial, reference=reference, candidates=candidates, seeds=args.seeds,
            reference_seeds=args.reference_seeds,
            candidate_seeds=args.candidate_seeds or args.seeds, workers=args.workers,
            threads=args.threads, top_k=args.top_k, bootstrap=args.bootstrap,
            synflow_imgsz=args.synflow_imgsz,
            train=not args.no_train,
            progress=not args.json, only=args.only,
        )
        if train_fn is not None:
            spec.train_fn = train_fn
        summary = run_measurement(spec, args)
    except (UserError, ValueError, OSError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return
    if args.json:
        print(json.dumps(summary))
    else:
        out = Path(summary["out"])
        print((out / "fidelity.md").read_text())
        print(f"written: {out}/fidelity.csv, fidelity.json, fidelity.png, fidelity.md")


if __name__ == "__main__":
    main()
