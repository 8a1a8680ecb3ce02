"""conf/search.yaml composes with every option of every group, and every option instantiates."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from nas.search.__main__ import settings_from_config
from nas.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_search(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="search", overrides=list(overrides))


def test_defaults_compose() -> None:
    cfg = compose_search()
    assert cfg.study_name and cfg.n_trials >= 1 and cfg.storage is None
    settings = settings_from_config(cfg)
    assert settings.objectives.directions == ["maximize", "minimize"]
    assert settings.train.seed == cfg.seed
    assert load_space(settings.space_path).seeds


def test_top_level_overrides() -> None:
    cfg = compose_search("study_name=s1", "n_trials=5", "storage=sqlite:///x.db", "seed=7")
    settings = settings_from_config(cfg)
    assert (settings.study_name, settings.n_trials, settings.storage) == ("s1", 5, "sqlite:///x.db")
    assert settings.sampler._rng.rng.randint(1 << 30) == optuna.samplers.TPESampler(
        seed=7)._rng.rng.randint(1 << 30)


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g in ("space", "sampler", "objectives", "pruner", "experiment", "data", "train")
     for o in options(g)],
)
def test_every_group_option_instantiates(group: str, option: str) -> None:
    # data templates that leave their location to the user get one (nothing is read here)
    template = group == "data" and "path: ???" in (CONF / "data" / f"{option}.yaml").read_text()
    extra = ["data.path=some/where"] if template else []
    cfg = compose_search(f"{group}={option}", *extra)
    settings = settings_from_config(cfg)
    assert isinstance(settings.sampler, optuna.samplers.BaseSampler)
    assert isinstance(settings.pruner, optuna.pruners.BasePruner)
    space = load_space(settings.space_path)
    assert space.decisions
    if group == "sampler":
        # the sampler really samples this search space (two trials, toy values)
        study = optuna.create_study(sampler=settings.sampler,
                                    directions=settings.objectives.directions)
        for i in range(2):
            trial = study.ask()
            choices = space.sample(trial)
            study.tell(trial, [float(i), float(len(choices))])


def test_objectives_modes() -> None:
    single = settings_from_config(compose_search("objectives=map_under_budget", "pruner=sha"))
    assert single.objectives.single and single.objectives.directions == ["maximize"]
    latency = settings_from_config(compose_search("objectives=latency_map"))
    assert latency.objectives.names == ["map50_95", "latency_ms"]


def test_space_budget_override() -> None:
    settings = settings_from_config(compose_search("space.budgets.max_params=1.5e6"))
    assert settings.budget_overrides["max_params"] == 1.5e6


def test_bad_option_names_the_group() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="sampler"):
        compose_search("sampler=nope")


def test_space_path_own_file_or_shipped_from_any_folder(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from nas import resources

    own = tmp_path / "my_space.yaml"
    own.write_text((CONF.parent / "search_spaces" / "tiny.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert settings_from_config(compose_search(f"space.path={own}")).space_path == own
    assert settings_from_config(compose_search("space.path=my_space.yaml")).space_path == Path(
        "my_space.yaml")  # relative to the working directory first
    shipped = settings_from_config(compose_search("space=tiny")).space_path
    assert shipped == resources.path("search_spaces") / "tiny.yaml" and shipped.is_file()


def test_bad_values_name_the_key() -> None:
    from nas.errors import ConfigError

    cases = {
        "n_trials=abc": "n_trials: 'abc' is not an integer",
        "trial.latency.repeats=many": "trial.latency.repeats: 'many' is not an integer",
        "+trial.latency.bogus=1": "trial.latency: unknown keys ['bogus']; valid: ['batch'",
        "+bogus=1": "unknown top-level keys ['bogus']; valid: [",
        "objectives.maximize=speed": "objectives.maximize: 'speed'; valid: ['map50_95'",
        "train.epochs=0": "train: invalid epochs=0",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError) as info:
            settings_from_config(compose_search(override))
        assert message in str(info.value), (override, str(info.value))


@pytest.mark.parametrize("overrides", [[], ["experiment=bccd"]])
def test_default_screens_with_synflow_then_confirms(overrides: list[str]) -> None:
    """rungs=asha: 60 candidates screened by SynFlow, the best 6 of all and the baseline and
    seed designs trained with 3 seeds at the top rung, whose recipe is ``top_rung`` (BCCD's at
    256 px), in bfloat16 where the CPU has it (``amp: auto``)."""
    settings = settings_from_config(compose_search(*overrides))
    screen, top = settings.rungs.rungs
    assert settings.n_trials == 60 and settings.rungs.always_promote == ("baseline",)
    assert (screen.evaluator, screen.promote_at_most, screen.promote_designs) == ("synflow", 6,
                                                                                   True)
    assert screen.promote_after_all
    assert top.seeds == 3 and top.evaluator == "standalone" and top.train["epochs"] == 10
    assert top.train.get("imgsz") == (256 if overrides else None) and top.train["amp"] == "auto"


@pytest.mark.parametrize("overrides", [["evaluator=supernet"],
                                       ["experiment=bccd", "evaluator=supernet"]])
def test_supernet_confirms_the_best_of_all_candidates(overrides: list[str]) -> None:
    """A supernet search scores 200 candidates (supernet and fine-tuning in bfloat16 where
    native) and promotes once all are scored (``promote_after_all``), at most 3, confirmed with
    3 seeds at the ``top_rung`` recipe."""
    settings = settings_from_config(compose_search(*overrides))
    rungs = settings.rungs.rungs
    assert settings.n_trials == 200 and len(rungs) == 2 and settings.train.amp == "auto"
    assert settings.evaluator["threads"] is None
    assert rungs[0].promote_after_all and rungs[0].promote_at_most == 3
    assert rungs[0].evaluator is None  # the study's: the supernet
    assert rungs[-1].seeds == 3 and rungs[-1].evaluator == "standalone"
    assert rungs[-1].train == ({"imgsz": 256, "epochs": 10, "amp": "auto"} if len(overrides) == 2
                               else {"epochs": 10, "amp": "auto"})


def test_rungs_single_trains_twelve() -> None:
    settings = settings_from_config(compose_search("rungs=single"))
    assert settings.n_trials == 12 and len(settings.rungs.rungs) == 1


def test_latency_runtime_is_a_config_key() -> None:
    """``trial.latency.runtime=onnxruntime`` is a plain override (the key is in search.yaml)."""
    settings = settings_from_config(compose_search("trial.latency.runtime=onnxruntime"))
    assert settings.trial.latency.runtime == "onnxruntime"
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match="trial.latency.runtime"):
        settings_from_config(compose_search("trial.latency.runtime=tvm"))
