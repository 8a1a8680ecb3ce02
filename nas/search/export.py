"""``python -m nas.export`` (``main`` here): a searched architecture as a model YAML (+ weights).

Usage::

    python -m nas.export --study NAME [--storage URL] [--results-dir results]
                         (--trial N | --best-under params=1.5e6 [--best-under gflops=5])
                         [--out DIR]

The YAML (``yolov8<scale>-<study>-trial<N>.yaml``, ultralytics format, the scale letter in the
name as ultralytics expects) is ready for ``python -m nas.train`` and, when it uses only blocks
ultralytics has, for ``ultralytics.YOLO(path)`` unchanged (other blocks: ``nas.ultralytics``).
The weights (``.pt``, this project's ``Detector`` state dict) are written when the trial kept
them as an Optuna artifact.

Example:
    >>> from nas.search.export import parse_budget
    >>> parse_budget("params=1.5e6")
    ('params', 1500000.0)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.cli import run_cli
from nas.errors import UserError
from nas.search import attrs as A
from nas.search.artifacts import DROPPED_ATTR

__all__ = ["ExportResult", "export_trial", "main", "parse_budget", "select_trial"]

BUDGET_METRICS = ("params", "gflops", "latency_ms")


@dataclass(frozen=True)
class ExportResult:
    """What ``export_trial`` wrote."""

    trial: int
    yaml_path: Path
    weights_path: Path | None
    params: int | None
    map50_95: float | None


def parse_budget(text: str) -> tuple[str, float]:
    """``"params=1.5e6"`` -> ``("params", 1.5e6)``; the error lists the valid metrics."""
    name, sep, value = text.partition("=")
    if not sep or name not in BUDGET_METRICS:
        raise ValueError(f"--best-under {text!r}: expected METRIC=VALUE with METRIC one of "
                         f"{list(BUDGET_METRICS)}")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"--best-under {text!r}: {value!r} is not a number") from None


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def select_trial(
    study: optuna.Study, *, number: int | None = None,
    budgets: Sequence[tuple[str, float]] = (),
) -> FrozenTrial:
    """The trial ``number``, or the best mAP50-95 among trials within every budget.

    With rungs, only the highest rung that has a trial within the budgets competes (mAPs of
    different rungs come from different recipes); its mAP50-95 is the mean over its seeds.

    Raises:
        ValueError: no such trial, it has no architecture, or nothing fits the budgets.
    """
    trials = study.get_trials(deepcopy=False)
    if number is not None:
        found = [t for t in trials if t.number == number]
        if not found:
            raise ValueError(f"study {study.study_name!r} has no trial {number} "
                             f"(trials 0..{len(trials) - 1})")
        if A.ARCH_YAML not in found[0].user_attrs:
            raise ValueError(f"trial {number} ({found[0].state.name}) recorded no architecture")
        return found[0]
    candidates = [
        t for t in trials
        if t.state == TrialState.COMPLETE and _feasible(t) and A.MAP50_95 in t.user_attrs
        and all(float(t.user_attrs.get(m, float("inf"))) <= v for m, v in budgets)
    ]
    if not candidates:
        raise ValueError(f"no COMPLETE trial of study {study.study_name!r} fits "
                         f"{', '.join(f'{m} <= {v:g}' for m, v in budgets)}")
    top = max(int(t.user_attrs.get(A.RUNG, 0)) for t in candidates)
    candidates = [t for t in candidates if int(t.user_attrs.get(A.RUNG, 0)) == top]
    return max(candidates, key=lambda t: (t.user_attrs[A.MAP50_95], -t.user_attrs[A.PARAMS],
                                          -t.number))


def export_trial(
    study: optuna.Study, trial: FrozenTrial, out_dir: str | Path, *,
    artifact_dir: str | Path | None = None,
) -> ExportResult:
    """Write the trial's model YAML (and weights when an artifact holds them) to ``out_dir``."""
    from nas.model.arch import load_arch

    text = trial.user_attrs[A.ARCH_YAML]
    scale = load_arch(text).scale or "n"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"yolov8{scale}-{study.study_name}-trial{trial.number}"
    yaml_path = out / f"{stem}.yaml"
    yaml_path.write_text(text, encoding="utf-8")
    weights_path = None
    artifact_id = trial.user_attrs.get(A.WEIGHTS_ARTIFACT)
    dropped = trial.number in study.user_attrs.get(DROPPED_ATTR, [])
    if artifact_id and not dropped and artifact_dir is not None and Path(artifact_dir).is_dir():
        from optuna.artifacts import FileSystemArtifactStore, download_artifact

        weights_path = out / f"{stem}.pt"
        if weights_path.exists():
            weights_path.unlink()
        try:
            download_artifact(artifact_store=FileSystemArtifactStore(str(artifact_dir)),
                              artifact_id=artifact_id, file_path=str(weights_path))
        except FileNotFoundError:  # removed off the front (trial.keep_weights=front)
            weights_path = None
    params = trial.user_attrs.get(A.PARAMS)
    map50_95 = trial.user_attrs.get(A.MAP50_95)
    return ExportResult(trial.number, yaml_path, weights_path,
                        int(params) if params is not None else None,
                        float(map50_95) if map50_95 is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad input, one line)."""
    return run_cli(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    from nas.search.study import journal_path, resolve_storage

    parser = argparse.ArgumentParser(prog="python -m nas.export", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL or journal file (default: the search's)")
    parser.add_argument("--results-dir", default="results", help="the search's results_dir")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number")
    which.add_argument("--best-under", action="append", metavar="METRIC=VALUE",
                       help="best mAP50-95 with METRIC <= VALUE (params, gflops, latency_ms); "
                            "repeat for several budgets")
    parser.add_argument("--out", default=None,
                        help="output folder (default: <results-dir>/<study>/export)")
    args = parser.parse_args(argv)
    try:
        budgets = [parse_budget(b) for b in args.best_under or []]
        journal = journal_path(args.storage, args.study, args.results_dir)
        if journal is not None and not journal.is_file():
            raise ValueError(f"no study storage at {journal} (give --storage or --results-dir)")
        storage, url = resolve_storage(args.storage, args.study, args.results_dir)
        try:
            study = optuna.load_study(study_name=args.study, storage=storage)
        except KeyError:
            raise ValueError(f"no study {args.study!r} in {url}") from None
        trial = select_trial(study, number=args.trial, budgets=budgets)
        study_dir = Path(args.results_dir) / args.study
        result = export_trial(study, trial, args.out or study_dir / "export",
                              artifact_dir=study_dir / "artifacts")
    except ValueError as e:  # the selection's messages name the study, trial and budget
        raise UserError(str(e)) from e
    print(f"trial {result.trial}: params={result.params} mAP50-95={result.map50_95}")
    print(f"wrote {result.yaml_path}" + (f" and {result.weights_path}"
                                         if result.weights_path else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
