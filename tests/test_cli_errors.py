"""Bad input through every entry point: one line on stderr naming the key/value, exit code 2.

The commands run as subprocesses from an empty folder, three at a time (each exits before any
training); ``run_cli`` and ``hydra_task`` are also tested in-process: a bug keeps its
traceback, ``LITEYOLO_DEBUG=1`` shows it for known errors too.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nas.cli import DEBUG_ENV, hydra_task, one_line, run_cli
from nas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BAD_SPACE = "backbone:\n  block:\n    P3: [C2F]\n"
BAD_MODEL = "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\nhead:\n  - [-1, 1, NoSuch, [2]]\n"

# name: (command after `python -m`, what the one line must contain)
CASES = {
    "search_bad_space": (["nas.search", "space.path={tmp}/bad_space.yaml"],
                         "bad_space.yaml: backbone.block.P3: unknown block 'C2F'; valid: ["),
    "search_missing_space": (["nas.search", "space.path={tmp}/none.yaml"],
                             "search space file not found: "),
    "search_bad_value": (["nas.search", "n_trials=abc"], "n_trials: 'abc' is not an integer"),
    "search_unknown_key": (["nas.search", "bogus=1"],
                           "'bogus' is not a key; valid: ['data', "),
    "search_unknown_group_key": (["nas.search", "train.bogus=1"],
                                 "'bogus' is not a key of 'train'; valid: ['amp', "),
    "search_added_key": (["nas.search", "+train.bogus=1"], "train: unknown keys ['bogus']"),
    "search_unknown_option": (["nas.search", "sampler=nope"],
                              "Could not find 'sampler/nope'. Available options in 'sampler': "),
    "search_missing_data": (["nas.search", "data=yolo", "data.path={tmp}/nodata/data.yaml"],
                            "yolo: data yaml {tmp}/nodata/data.yaml does not exist"),
    "train_unknown_model": (["nas.train", "nosuch.yaml"],
                            "model description 'nosuch.yaml' not found"),
    "train_bad_model": (["nas.train", "{tmp}/bad_model.yaml"],
                        "key 'module': unknown block 'NoSuch'; registered blocks: ADown"),
    "train_missing_data": (["nas.train", "yolov8n.yaml", "data=yolo",
                            "data.path={tmp}/nodata/data.yaml"], "does not exist"),
    "train_bad_value": (["nas.train", "yolov8n.yaml", "epochs=abc"],
                        "train.epochs: 'abc' is not an integer"),
    "train_out_of_range": (["nas.train", "yolov8n.yaml", "train.augment.mosaic=2"],
                           "train.augment: mosaic=2.0 outside [0, 1]"),
    "train_data_augment": (["nas.train", "yolov8n.yaml", "+data.augment.mosaic=1"],
                           "augmentation is a training setting; set it under train.augment"),
    "info_unknown_model": (["nas.info", "nosuch.yaml"], "models available in "),
    "info_bad_model": (["nas.info", "{tmp}/bad_model.yaml"],
                       "key 'module': unknown block 'NoSuch'; registered blocks: ADown"),
    "export_no_study": (["nas.export", "--study", "nope", "--trial", "0"],
                        "no study storage at results/nope/journal.log"),
    "deploy_unknown_model": (["nas.deploy", "nosuch.yaml"],
                             "model description 'nosuch.yaml' not found"),
    "deploy_missing_weights": (["nas.deploy", "yolov8n.yaml", "--weights", "{tmp}/none.pt"],
                               "--weights {tmp}/none.pt: no such file"),
    "compress_no_model": (["nas.compress"],
                          "give --model MODEL.yaml --weights W.pt, or --study NAME --trial N"),
    "compress_bad_data": (["nas.compress", "--model", "yolov8n.yaml", "--weights",
                           "{tmp}/bad_model.yaml", "--data", "nope"], "--data 'nope'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Every case's (exit code, stderr, tmp folder), three processes at a time."""
    env = {k: v for k, v in os.environ.items() if k not in (DEBUG_ENV, "HYDRA_FULL_ERROR")}
    env["PYTHONPATH"] = str(REPO)

    def run(name: str) -> tuple[int, str, Path]:
        tmp = tmp_path_factory.mktemp(name)
        (tmp / "bad_space.yaml").write_text(BAD_SPACE)
        (tmp / "bad_model.yaml").write_text(BAD_MODEL)
        cmd = [sys.executable, "-m", *(a.format(tmp=tmp) for a in CASES[name][0])]
        proc = subprocess.run(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
        return proc.returncode, proc.stderr, tmp

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_known_error_is_one_line_and_exit_code_2(name: str, results) -> None:  # noqa: ANN001
    code, stderr, tmp = results[name]
    expected = CASES[name][1].format(tmp=tmp)
    # the only other lines allowed are progress logs (Optuna's "[I ...] A new study created")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[I ")]
    assert code == 2, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


def _bug() -> None:
    raise RuntimeError("a real bug")


def _bad_value() -> None:
    raise ConfigError("train.epochs: 'abc' is not an integer")


def test_run_cli_reports_known_errors_and_lets_bugs_through(capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert run_cli(_bad_value) == 2
    assert capsys.readouterr().err == "error: train.epochs: 'abc' is not an integer\n"
    with pytest.raises(RuntimeError, match="a real bug"):
        run_cli(_bug)
    assert run_cli(lambda: 3) == 3 and run_cli(lambda: None) == 0
    assert "HYDRA_FULL_ERROR" not in os.environ  # restored
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigError):
        run_cli(_bad_value)


def test_hydra_task_carries_known_errors_only(capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    task = hydra_task(known=(KeyError,))

    def runner(fn) -> None:  # noqa: ANN001 - what Hydra's job runner does with Exception
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            raise AssertionError("Hydra would print 'Error executing job'") from e

    assert run_cli(functools.partial(runner, task(_bad_value))) == 2
    assert run_cli(functools.partial(runner, task(lambda: {}["k"]))) == 2
    assert capsys.readouterr().err.count("error: ") == 2
    with pytest.raises(AssertionError):
        run_cli(functools.partial(runner, task(_bug)))
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigError):  # the task's own exception, not the carrier
        run_cli(functools.partial(runner, task(_bad_value)))


def test_one_line_joins_hydra_option_lists() -> None:
    text = ("In 'search': Could not find 'sampler/nope'\n\nAvailable options in 'sampler':\n"
            "\tauto\n\tgp\nConfig search path:\n\tprovider=hydra, path=pkg://hydra.conf")
    assert one_line(text) == ("In 'search': Could not find 'sampler/nope'. "
                              "Available options in 'sampler': auto, gp")  # fmt: skip
