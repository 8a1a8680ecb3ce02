"""``python -m nas.compress``: the compression chain of one detector, one report.

Usage::

    python -m nas.compress --model MODEL.yaml --weights WEIGHTS.pt [--data NAME]
                           [--stages int8,prune,distill] [--json] [--out DIR]
    python -m nas.compress --study NAME --trial N [...]

``--data`` is a ``conf/data`` option (default: the synthetic default); ``--train`` a
``conf/train`` option giving the fine-tuning recipe (default ``brief``), with ``--epochs``
and ``--imgsz`` (export, calibration and evaluation size; default the recipe's) on top.
Writes ``report.json``, ``report.md`` and ``map_latency.png`` (plus the ONNX files and the
pruned checkpoints) to ``--out`` (default ``results/compress/<model>``). ``--json`` prints only
the report's JSON object; its ``stages`` maps ``fp32``, ``int8``, ``pruned``, ``distilled`` to
``{params, gflops, map50, map50_95, latency_ms}``. Bad input: one line on stderr, exit code 2.

Example:
    $ python -m nas.compress --model yolov8n.yaml --weights outputs/.../weights.pt --json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas import resources
from nas.deploy.errors import DeployError

__all__ = ["main", "parse_args"]

_CONF = resources.path("conf")  # the checkout's conf/, or the installed copy


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (argparse exits 2 on a malformed one)."""
    parser = argparse.ArgumentParser(prog="python -m nas.compress",
                                     description=(__doc__ or "").split("\n\n")[0])  # fmt: skip
    parser.add_argument("--model", help="model YAML (path or name under models/)")
    parser.add_argument("--weights", help="weights.pt (state dict) or a nas.deploy checkpoint")
    parser.add_argument("--study", help="a search study (with --trial)")
    parser.add_argument("--trial", type=int, help="trial number of --study")
    parser.add_argument("--results-dir", default="results", help="the search's results_dir")
    parser.add_argument("--data", default="synthetic", help="a conf/data option")
    parser.add_argument("--train", default="brief", help="a conf/train option (fine-tuning)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="fine-tuning epochs after each pruning step")  # fmt: skip
    parser.add_argument("--lr0", type=float, default=0.001,
                        help="fine-tuning peak lr (no warm-up: the weights are trained)")
    parser.add_argument("--imgsz", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--stages", default="int8,prune,distill",
                        help="comma-separated subset of int8,prune,distill")  # fmt: skip
    parser.add_argument("--prune-ratio", type=float, default=0.7, help="parameters kept")
    parser.add_argument("--prune-steps", type=int, default=2)
    parser.add_argument("--round-to", type=int, default=None,
                        help="keep pruned channel counts multiples of this (e.g. 8)")  # fmt: skip
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--teacher", help="teacher model YAML (default: the input model)")
    parser.add_argument("--teacher-weights", help="the teacher's weights.pt")
    parser.add_argument("--distill-weight", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per stage")
    parser.add_argument("--out", default=None, help="report folder")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    return parser.parse_args(argv)


def _compose(data: str, train: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``data`` and ``train`` groups, resolved, as ``nas.train`` composes them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(_CONF), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"data={data}", f"train={train}"])
    except HydraException as e:
        options = {g: sorted(p.stem for p in (_CONF / g).glob("*.yaml")) for g in ("data",
                                                                                   "train")}
        raise DeployError(f"--data {data!r} / --train {train!r}: {str(e).splitlines()[0]} "
                          f"(data: {options['data']}, train: {options['train']})") from None
    finally:
        GlobalHydra.instance().clear()
    return (OmegaConf.to_container(cfg.data, resolve=True),  # type: ignore[return-value]
            OmegaConf.to_container(cfg.train, resolve=True))  # fmt: skip


def _trial_files(args: argparse.Namespace, out: Path) -> tuple[str, str | None]:
    """Model YAML and weights of ``--study``'s ``--trial`` (through ``nas.search.export``)."""
    import optuna

    from nas.search.export import export_trial, select_trial
    from nas.search.storage import resolve_storage

    storage, url = resolve_storage(None, args.study, args.results_dir)
    try:
        study = optuna.load_study(study_name=args.study, storage=storage)
    except KeyError:
        raise DeployError(f"--study {args.study!r}: no such study in {url}") from None
    trial = select_trial(study, number=args.trial, budgets=[])
    study_dir = Path(args.results_dir) / args.study
    result = export_trial(study, trial, out, artifact_dir=study_dir / "artifacts")
    if result.weights_path is None:
        raise DeployError(f"--study {args.study} --trial {args.trial}: the trial kept no weights")
    return str(result.yaml_path), str(result.weights_path)


def _settings(args: argparse.Namespace) -> Any:
    from nas.compress.pipeline import CompressSettings
    from nas.data import DataConfig
    from nas.deploy.prune import PruneConfig
    from nas.train.config import TrainConfig

    if (args.study is None) == (args.model is None and args.weights is None):
        raise DeployError("give --model MODEL.yaml --weights W.pt, or --study NAME --trial N")
    if args.study is not None and args.trial is None:
        raise DeployError("--study needs --trial N")
    if args.weights is not None and not Path(args.weights).is_file():
        raise DeployError(f"--weights {args.weights}: no such file")
    if args.epochs < 1:
        raise DeployError(f"--epochs {args.epochs}: must be >= 1")
    data_values, train_values = _compose(args.data, args.train)
    changes: dict[str, Any] = {"epochs": args.epochs, "warmup_epochs": 0.0}
    for key, value in (("imgsz", args.imgsz), ("lr0", args.lr0),
                       ("distill_weight", args.distill_weight)):  # fmt: skip
        if value is not None:
            changes[key] = value
    recipe = TrainConfig.from_dict(train_values).replace(**changes)
    name = Path(args.model or args.weights or f"{args.study}-trial{args.trial}").stem
    out = Path(args.out) if args.out else Path("results") / "compress" / name
    model, weights = args.model, args.weights
    if args.study is not None:
        model, weights = _trial_files(args, out / "trial")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    return CompressSettings(
        model_yaml=model,
        weights=weights,
        data=DataConfig.from_dict(data_values),
        recipe=recipe,
        out_dir=out,
        stages=stages,
        threads=args.threads,
        calibration_images=args.calibration_images,
        prune=PruneConfig(target_ratio=args.prune_ratio, steps=args.prune_steps,
                          round_to=args.round_to),
        teacher_yaml=args.teacher,
        teacher_weights=args.teacher_weights,
        latency_repeats=args.repeats,
        progress=not args.json,
    )


def _run(argv: Sequence[str] | None) -> int:
    from nas.compress.pipeline import run_compress
    from nas.compress.report import markdown_table, write_report

    args = parse_args(argv)
    settings = _settings(args)
    report = run_compress(settings)
    paths = write_report(report, settings.out_dir)
    if args.json:
        print(json.dumps(report))
    else:
        print(markdown_table(report), end="")
        print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input (a file, a flag, a value, a missing extra; ``nas.errors.UserError``)
    -> one line on stderr and exit code 2 (``nas.cli.run_cli``); anything else is a bug and keeps
    its traceback."""
    from nas.cli import run_cli

    return run_cli(lambda: _run(argv))


if __name__ == "__main__":
    raise SystemExit(main())
