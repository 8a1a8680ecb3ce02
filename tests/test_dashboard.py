"""optuna-dashboard, served in-process on loopback, shows the study, trials, attrs, artifacts."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from nas.search.objective import LatencySettings, Objectives, TrialContext, TrialSettings
from nas.search.space import parse_space
from nas.search.study import _evaluate, resolve_storage

sys.path.insert(0, str(Path(__file__).parent))
from test_search_e2e import FakeFit  # noqa: E402

optuna_dashboard = pytest.importorskip("optuna_dashboard")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, optuna.Study]]:
    results = tmp_path_factory.mktemp("results")
    storage, _ = resolve_storage(None, "dash", results)  # the search's default journal file
    study = optuna.create_study(study_name="dash", storage=storage,
                                directions=Objectives().directions)
    space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC"]}},
                         "neck": {"type": ["PAN"]}, "width": [0.0625]}, source="t.yaml")
    ctx = TrialContext(
        space=space, objectives=Objectives(), data=None,
        train=SimpleNamespace(seed=0, device="cpu"),
        settings=TrialSettings(gflops_imgsz=64, keep_weights=False,
                               latency=LatencySettings(imgsz=64, repeats=1, warmup=0)),
        artifact_dir=results / "dash" / "artifacts", nc=2, fit=FakeFit(),
    )
    for block in ("C2f", "CSPPC"):
        study.enqueue_trial({"backbone.block.P3": block}, user_attrs={"design": block})
        trial = study.ask()
        outcome = _evaluate(trial, ctx)
        study.tell(trial, outcome.values, state=outcome.state)
    app = optuna_dashboard.wsgi(storage, artifact_store=FileSystemArtifactStore(
        str(results / "dash" / "artifacts")))
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", study
    finally:
        server.shutdown()
        thread.join()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


def test_dashboard_lists_the_study(served: tuple[str, optuna.Study]) -> None:
    base, study = served
    studies = json.loads(get(f"{base}/api/studies"))["study_summaries"]
    assert [s["study_name"] for s in studies] == ["dash"]
    assert list(studies[0]["directions"]) == ["maximize", "minimize"]


def test_dashboard_shows_trials_attrs_and_artifacts(served: tuple[str, optuna.Study]) -> None:
    base, study = served
    study_id = study._study_id
    detail = json.loads(get(f"{base}/api/studies/{study_id}"))
    trials = detail["trials"]
    assert [t["number"] for t in trials] == [0, 1]
    for served_trial, trial in zip(trials, study.trials, strict=True):
        attrs = {a["key"]: a["value"] for a in served_trial["user_attrs"]}
        for key in ("params", "gflops", "latency_ms", "map50", "map50_95", "train_seconds",
                    "arch_yaml"):
            assert key in attrs, key
        assert attrs["params"] == str(trial.user_attrs["params"])
        assert attrs["design"] == trial.user_attrs["design"]
        assert served_trial["values"] == pytest.approx(trial.values)
        artifacts = served_trial["artifacts"]
        assert [a["artifact_id"] for a in artifacts] == [trial.user_attrs["yaml_artifact"]]
        trial_id, artifact_id = served_trial["trial_id"], artifacts[0]["artifact_id"]
        url = f"{base}/artifacts/{study_id}/{trial_id}/{artifact_id}"
        assert get(url).decode() == trial.user_attrs["arch_yaml"]
    assert {t["number"] for t in detail["best_trials"]} <= {0, 1}
    assert detail["best_trials"]
