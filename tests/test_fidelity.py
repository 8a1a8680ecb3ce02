"""nas.fidelity: statistics against scipy, the cache and its skip rule, the report and --json."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nas.fidelity.__main__ import main
from nas.fidelity.cache import RunCache
from nas.fidelity.panel import spread
from nas.fidelity.recipes import compose_recipe, recipe_key
from nas.fidelity.runner import Job, _base_record, run_jobs
from nas.fidelity.stats import bootstrap_tau, noise, rank_agreement, top_k_overlap

TINY = ["data.synthetic.num_train=12", "data.synthetic.num_val=6",
        "data.synthetic.image_size=64", "data.synthetic.max_objects=3"]  # fmt: skip
FAST = ["--bootstrap", "50", "--synflow-imgsz", "32"]
MODELS = ["yolov8n.yaml", "yolov8n-ghostnet.yaml", "yolov8n-csppc.yaml"]


def _common(tmp_path: Path) -> str:
    return " ".join([f"data.path={tmp_path / 'data'}", *TINY])


def test_rank_agreement_is_scipys() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.normal(size=12)
    r = rank_agreement(x.tolist(), y.tolist(), top_k=3, resamples=300, seed=1)
    assert r.kendall_tau == pytest.approx(kendalltau(x, y).statistic)
    assert r.spearman == pytest.approx(spearmanr(x, y).statistic)
    lo, hi = r.kendall_tau_ci
    assert -1 <= lo <= r.kendall_tau <= hi <= 1
    assert r.n == 12


def test_bootstrap_interval_narrows_with_agreement() -> None:
    x = list(range(15))
    same = bootstrap_tau(x, x, resamples=200)
    assert same == pytest.approx((1.0, 1.0))
    noisy = bootstrap_tau(x, [v + (5 if v % 2 else -5) for v in x], resamples=200)
    assert noisy[0] < noisy[1] < 1.0


def test_top_k_overlap() -> None:
    assert top_k_overlap([4, 3, 2, 1], [1, 2, 3, 4], 2) == 0.0
    assert top_k_overlap([4, 3, 2, 1], [9, 1, 8, 0], 2) == 0.5
    assert top_k_overlap([1, 2, 3], [1, 2, 3], 3) == 1.0


def test_noise_pooled_sd_and_retest_tau() -> None:
    values = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.8], [0.9, 0.7, 0.6], [0.2, 0.4, 0.1]])
    result = noise(values)
    sds = values.std(axis=1, ddof=1)
    assert result.per_design_sd == pytest.approx(sds.tolist())
    assert result.noise_sd == pytest.approx(math.sqrt(np.mean(sds**2)))
    pairs = [kendalltau(values[:, i], values[:, j]).statistic for i, j in ((0, 1), (0, 2), (1, 2))]
    assert result.retest_tau == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match="seeds >= 2"):
        noise(values[:, :1])


def test_spread_keeps_extremes() -> None:
    assert spread([5.0, 1.0, 9.0, 2.0, 8.0, 3.0], 3) == [1, 0, 2]
    assert spread([1.0, 2.0], 5) == [0, 1]


def test_recipe_key_ignores_seed_and_threads() -> None:
    a = compose_recipe("trial", [])
    b = compose_recipe("trial", ["train.seed=5", "train.threads=1"])
    c = compose_recipe("trial", ["train.epochs=6"])
    assert recipe_key(a) == recipe_key(b) != recipe_key(c)
    assert (a.train.imgsz, a.data.train_subset) == (160, 200)


def fake_train(job: Job) -> dict:
    """A deterministic stand-in for train_job: mAP grows with params, plus seed noise."""
    noise_ = (zlib.crc32(f"{job.design.name}{job.seed}".encode()) % 1000) / 1e5
    scale = 1.0 if job.recipe.name == "reference" else 0.5
    m = scale * job.design.params / 1e7 + noise_
    record = _base_record(job)
    record.update(map50_95=m, map50=2 * m, sotl=1.0 - m, val_loss=2.0 - m, train_images=12,
                  cpu_seconds=job.recipe.train.epochs * 1.0, wall_seconds=1.0)  # fmt: skip
    return record


def _run(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str, train_fn=fake_train) -> dict:
    main(["--models", *MODELS, "--results-dir", str(tmp_path / "results"),
          "--common", _common(tmp_path), "--seeds", "0", "1", "--json", *FAST, *extra],
         train_fn=train_fn)  # fmt: skip
    out = capsys.readouterr().out.strip()
    return json.loads(out)


def test_report_json_keys_and_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    summary = _run(tmp_path, capsys, "--candidate", "c2: train.epochs=2")
    assert list(summary)[:7] == ["kendall_tau", "kendall_tau_ci", "spearman", "n_designs",
                                 "noise_sd", "retest_tau", "proxies"]  # fmt: skip
    assert summary["n_designs"] == 3
    assert summary["kendall_tau"] == pytest.approx(1.0)  # params decide both, noise is small
    assert len(summary["kendall_tau_ci"]) == 2
    assert summary["proxies"]["params"] == pytest.approx(1.0)
    assert {"trial:sotl@s0", "trial:val_loss@mean", "gflops", "synflow", "c2:map50_95@s1"} <= set(
        summary["proxies"])
    assert summary["noise_sd"] > 0
    out = tmp_path / "results" / "fidelity"
    for name in ("fidelity.csv", "fidelity.json", "fidelity.png", "fidelity.md"):
        assert (out / name).stat().st_size > 0
    import pandas as pd

    frame = pd.read_csv(out / "fidelity.csv")
    # 3 designs x (trial 2 seeds + reference 1 seed + candidate 2 seeds)
    assert len(frame) == 15
    assert set(frame["recipe"]) == {"trial", "reference", "c2"}


def test_rerun_skips_cached_trainings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = _run(tmp_path, capsys)
    cache = tmp_path / "results" / "fidelity-cache.jsonl"
    lines = cache.read_text().splitlines()

    def must_not_train(job: Job) -> dict:
        raise AssertionError(f"retrained {job.key}")

    again = _run(tmp_path, capsys, train_fn=must_not_train)
    assert again["kendall_tau"] == first["kendall_tau"]
    assert cache.read_text().splitlines() == lines
    more = _run(tmp_path, capsys, "--seeds", "0", "1", "2")  # only seed 2 is new
    assert len(cache.read_text().splitlines()) == len(lines) + 3
    assert more["n_designs"] == 3


def test_cache_survives_a_torn_line(tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "c.jsonl")
    cache.add({"arch_hash": "a", "recipe_key": "r", "seed": 0, "map50_95": 0.5})
    with cache.path.open("a") as f:
        f.write('{"arch_hash": "b", "recipe_ke')
    again = RunCache(cache.path)
    assert ("a", "r", 0) in again and len(again) == 1
    assert again.get(("a", "r", 0))["map50_95"] == 0.5


def test_run_jobs_dedupes_and_orders(tmp_path: Path) -> None:
    from nas.fidelity.panel import Design

    recipe = compose_recipe("trial", [])
    designs = [Design(f"d{i}", "", f"h{i}", 10 * i, 1.0) for i in range(3)]
    jobs = [Job(d, recipe, 0) for d in designs] + [Job(designs[0], recipe, 0)]
    cache = RunCache(tmp_path / "c.jsonl")
    done = run_jobs(jobs, cache, train_fn=fake_train, progress=False)
    assert [r["design"] for r in done] == ["d0", "d1", "d2"]
    assert run_jobs(jobs, cache, train_fn=fake_train, progress=False) == []


def test_real_tiny_trainings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The real trainer on 12 images at 64 px, 1 epoch: records losses, val loss, CPU time."""
    tiny = "train.imgsz=64 train.epochs=1 data.train_subset=null data.val_subset=null"
    summary = _run(tmp_path, capsys, "--trial", tiny, "--reference",
                   "train.imgsz=64 train.epochs=2 data.train_subset=null", train_fn=None)
    records = [json.loads(line) for line in
               (tmp_path / "results" / "fidelity-cache.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["recipe"] != "synflow"]
    assert len(trained) == 9
    for r in trained:
        assert r["val_loss"] > 0 and r["sotl"] > 0 and r["cpu_seconds"] > 0
        assert len(r["epoch_losses"]) == r["epochs"]
        assert r["train_images"] == 12
    assert summary["panel"] == 3


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--models", *MODELS, "--trial", "train.nope=1", "--results-dir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.nope" in err
    with pytest.raises(SystemExit) as e:
        main(["--study", "missing", "--results-dir", str(tmp_path)])
    assert e.value.code == 2
    assert "missing" in capsys.readouterr().err


def _fake_study(results: Path, name: str, *, promote: bool = False) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.model.arch import dump_arch, load_arch
    from nas.search.objective import arch_hash

    journal = results / name / "journal.log"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name=name, directions=["maximize", "minimize"],
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    for i, (model, design, score, rung_mean) in enumerate([
        ("yolov8n.yaml", "baseline", 0.30, None), ("yolov8n-ghostnet.yaml", "seed001", 0.20, None),
        ("yolov8n-csppc.yaml", None, 0.40, 0.35), ("yolov8n-adown.yaml", None, 0.10, None),
    ]):  # fmt: skip
        text = dump_arch(load_arch(model, nc=4))
        attrs = {"arch_yaml": text, "map50_95": score, "arch_hash": arch_hash(text),
                 "params": 1_000_000 + 100_000 * i, "gflops": 4.0 + i}
        if design:
            attrs["design"] = design
        if rung_mean is not None and not promote:  # one rung: its seeds' mean is the score
            attrs["map50_95"] = score = rung_mean
        if promote and rung_mean is not None:  # rung 0 here, its promotion below
            attrs["rung"] = 0
        study.add_trial(optuna.trial.create_trial(values=[score, 1e6 + i], user_attrs=attrs))
        if promote and rung_mean is not None:
            study.add_trial(optuna.trial.create_trial(values=[rung_mean, 1e6 + i], user_attrs={
                **attrs, "rung": 1, "map50_95": rung_mean, "promoted_from": i}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))


def _study_measurement(tmp_path: Path, capsys: pytest.CaptureFixture, *,
                       promote: bool) -> tuple[dict, Any]:  # fmt: skip
    """``nas.fidelity --study --json`` on a fake study: the summary and fidelity.csv."""
    import pandas as pd

    results = tmp_path / "results"
    _fake_study(results, "s", promote=promote)
    main(["--study", "s", "--results-dir", str(results), "--common", _common(tmp_path),
          "--seeds", "0", "1", "--json", *FAST], train_fn=fake_train)  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["score"] == "search" and summary["n_designs"] == 4
    return summary, pd.read_csv(results / "s" / "fidelity" / "fidelity.csv")


def test_study_panel_uses_the_searchs_score(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    summary, frame = _study_measurement(tmp_path, capsys, promote=False)
    assert "trial:map50_95@s0" in summary["proxies"]
    assert "search@rung0" not in summary["proxies"]  # one rung: the same as ``search``
    scores = dict(zip(frame["design"], frame["search_score"], strict=False))
    assert scores["baseline"] == 0.30 and scores["trial2"] == 0.35  # the top rung's mean
    assert set(frame["role"]) == {"baseline", "seed", "front", "other"}


def test_study_panel_scores_rung0_apart(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A study with two rungs: ``search`` is each design's highest rung, ``search@rung0`` the
    cheapest rung's score that every candidate got (a supernet study's weight-sharing score)."""
    summary, frame = _study_measurement(tmp_path, capsys, promote=True)
    assert "search@rung0" in summary["proxies"]
    per_design = frame.drop_duplicates("design").set_index("design")
    promoted = per_design[per_design["search_score"] == 0.35]
    assert len(promoted) == 1 and promoted["search_rung0"].iloc[0] == 0.40
    assert per_design.loc["baseline", "search_rung0"] == per_design.loc["baseline", "search_score"]


def test_study_panel_of_a_screened_search(tmp_path: Path) -> None:
    """A study whose rung 0 is a zero-cost screen: the designs it trained come first, their
    ``search_score`` the highest trained rung's, their ``rung0_score`` the screen's proxy; the
    designs only screened fill the panel when the trained ones are too few."""
    import optuna

    from nas.fidelity.panel import panel_from_study
    from nas.model.arch import dump_arch, load_arch
    from nas.search.objective import arch_hash

    study = optuna.create_study(directions=["maximize", "minimize"])
    models = ["yolov8n.yaml", "yolov8n-ghostnet.yaml", "yolov8n-csppc.yaml", "yolov8n-adown.yaml"]
    for i, model in enumerate(models):
        text = dump_arch(load_arch(model, nc=4))
        attrs = {"arch_yaml": text, "arch_hash": arch_hash(text), "params": 1_000_000 + i,
                 "gflops": 4.0, "rung": 0, "proxy_score": 30.0 + i, "evaluator": "synflow"}
        study.add_trial(optuna.trial.create_trial(values=[30.0 + i, 1e6 + i], user_attrs=attrs))
        if i < 2:  # the first two were promoted and trained
            trained = {k: v for k, v in attrs.items() if k not in ("proxy_score", "evaluator")}
            study.add_trial(optuna.trial.create_trial(values=[0.1 * (i + 1), 1e6 + i], user_attrs={
                **trained, "rung": 1, "map50_95": 0.1 * (i + 1), "promoted_from": i}))
    two = panel_from_study(study, 2)
    assert [d.search_score for d in two] == [pytest.approx(0.1), pytest.approx(0.2)]
    assert [d.rung0_score for d in two] == [30.0, 31.0]
    four = panel_from_study(study, 4)
    assert len(four) == 4 and [d.search_score for d in four[2:]] == [None, None]
    assert sorted(d.rung0_score for d in four[2:]) == [32.0, 33.0]


def test_study_panel_spread_over_params_or_the_rung0_score() -> None:
    """After the front, ``spread_by="params"`` keeps the size extremes, ``"score"`` the designs
    the search's cheapest score rated worst and best; anything else is refused by name."""
    import optuna

    from nas.fidelity.panel import PanelError, panel_from_study
    from nas.model.arch import dump_arch, load_arch

    study = optuna.create_study(directions=["maximize", "minimize"])
    text = dump_arch(load_arch("yolov8n.yaml", nc=4))
    # design 0 dominates (best score, fewest params): the front is it alone
    for i, score in enumerate([0.9, 0.5, 0.1, 0.3, 0.8, 0.2]):
        attrs = {"arch_yaml": text, "arch_hash": f"h{i}", "params": 1_000_000 + 100_000 * i,
                 "gflops": 4.0, "rung": 0, "map50_95": score}
        study.add_trial(optuna.trial.create_trial(values=[score, 1e6 + i], user_attrs=attrs))
    by_params = panel_from_study(study, 3)
    by_score = panel_from_study(study, 3, "score")
    assert [d.arch_hash for d in by_params] == ["h0", "h1", "h5"]
    assert [d.arch_hash for d in by_score] == ["h0", "h2", "h4"]
    assert [d.role for d in by_score] == ["front", "other", "other"]
    with pytest.raises(PanelError, match=r"spread_by='size'; valid: \['params', 'score'\]"):
        panel_from_study(study, 3, "size")


def test_score_spread_panel_reports_apart(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--spread score`` writes its own report (``fidelity-by-score/``) next to the params
    panel's, so the two panels of one study do not overwrite each other."""
    results = tmp_path / "results"
    _fake_study(results, "s", promote=True)
    main(["--study", "s", "--results-dir", str(results), "--common", _common(tmp_path),
          "--seeds", "0", "--spread", "score", "--json", *FAST], train_fn=fake_train)  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_designs"] == 4 and "search@rung0" in summary["proxies"]
    assert (results / "s" / "fidelity-by-score" / "fidelity.csv").is_file()
    assert not (results / "s" / "fidelity").exists()
