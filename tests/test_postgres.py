"""Search workers on a real PostgreSQL server: exact trial counts, a killed worker, a restart.

The server comes from ``LITEYOLO_TEST_POSTGRES`` (a ``postgresql://`` URL; ``.ci/run`` starts a
throwaway cluster and sets it). Without it the tests skip; with it set but the server down
they fail (CI must not skip them silently). The restart test also needs
``LITEYOLO_TEST_PG_CTL`` and ``LITEYOLO_TEST_PG_DATA`` (set by ``.ci/run``). Each test works
in a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import candidates
from optuna.trial import TrialState

from nas.search.storage import database_url

ROOT = Path(__file__).resolve().parents[1]
ENV = "LITEYOLO_TEST_POSTGRES"
FAKE = [sys.executable, str(ROOT / "tests" / "fake_search_worker.py")]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the test server, as a ``postgresql://`` URL."""
    psycopg = pytest.importorskip("psycopg")
    server = os.environ.get(ENV)
    if not server:
        pytest.skip(f"{ENV} not set (.ci/run starts a PostgreSQL server and sets it)")
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        pytest.fail(f"{ENV}={server} is set but the server cannot be reached: {e}")
    name = f"nas_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    base = server.rsplit("/", 1)[0]
    admin.close()
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start(cmd: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})


def finish(workers: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    logs = []
    for w in workers:
        out, err = w.communicate(timeout=timeout)
        assert w.returncode == 0, err[-3000:]
        logs.append(out + err)
    return logs


def load(url: str) -> optuna.Study:
    return optuna.load_study(study_name="quick", storage=database_url(url))


def check_exact(study: optuna.Study, n_trials: int, pids: set[int]) -> list:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(candidates(finished)) == n_trials, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # every trial was asked by exactly one worker, and every worker took part
    assert {t.system_attrs["nas:worker"]["pid"] for t in trials} == pids
    designs = [t.user_attrs.get("design") for t in finished]
    assert designs.count("baseline") == 1 and designs.count("light") == 1
    return trials


@pytest.mark.slow
def test_two_workers_quick_search(pg_url: str, tmp_path: Path) -> None:
    """The issue's check: ``experiment=quick n_trials=6`` by two workers, exactly 6 trials."""
    cmd = [sys.executable, "-m", "nas.search", "experiment=quick", "n_trials=6",
           f"storage={pg_url}", f"results_dir={tmp_path}"]
    workers = [start(cmd) for _ in range(2)]
    finish(workers)
    check_exact(load(pg_url), 6, {w.pid for w in workers})


@pytest.mark.parametrize("n_workers", [2, 3])
def test_workers_run_exactly_n_trials(pg_url: str, tmp_path: Path, n_workers: int) -> None:
    cmd = [*FAKE, "n_trials=7", f"storage={pg_url}", f"results_dir={tmp_path}"]
    workers = [start(cmd, FAKE_FIT_SECONDS="0.3") for _ in range(n_workers)]
    logs = finish(workers)
    trials = check_exact(load(pg_url), 7, {w.pid for w in workers})
    assert len(candidates(trials)) == 7  # no overshoot: the count-and-ask step is locked
    lines = [line for log in logs for line in log.splitlines() if "] trial " in line]
    numbers = sorted(int(line.split("] trial ")[1].split()[0]) for line in lines)
    assert numbers == list(range(len(trials)))  # each trial reported by one worker only


def test_sigkilled_worker_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    cmd = [*FAKE, "n_trials=5", "train.epochs=4", f"storage={pg_url}",
           f"results_dir={tmp_path}"]
    victim = start(cmd, FAKE_FIT_SECONDS="0.5")
    deadline = time.monotonic() + 240
    target = None
    while time.monotonic() < deadline and target is None and victim.poll() is None:
        time.sleep(0.2)
        try:
            running = load(pg_url).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            continue
        target = next((t for t in running if t.number >= 1 and "last_epoch" in t.user_attrs),
                      None)
    assert target is not None, "never saw the victim training a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = start(cmd, FAKE_FIT_SECONDS="0.1")
    (log,) = finish([survivor])
    assert f"marked interrupted trials [{target.number}] as FAIL" in log

    trials = load(pg_url).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(candidates(finished)) == 5
    killed = trials[target.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["fail_reason"].startswith("interrupted")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == target.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed.params
    assert retry[0].system_attrs["nas:worker"]["pid"] == survivor.pid


def test_server_restart_mid_study(pg_url: str, tmp_path: Path) -> None:
    pg_ctl, data = os.environ.get("LITEYOLO_TEST_PG_CTL"), os.environ.get("LITEYOLO_TEST_PG_DATA")
    if not (pg_ctl and data):
        pytest.skip("LITEYOLO_TEST_PG_CTL / LITEYOLO_TEST_PG_DATA not set (see .ci/run)")
    cmd = [*FAKE, "n_trials=6", "train.epochs=3", f"storage={pg_url}",
           f"results_dir={tmp_path}"]
    workers = [start(cmd, FAKE_FIT_SECONDS="0.4") for _ in range(2)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            done = load(pg_url).get_trials(deepcopy=False, states=FINISHED)
        except KeyError:
            continue
        if len(done) >= 2:
            break
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_postgres, pg_ctl, "-D", data, "stop", "-m", "fast", "-w"], check=True,
                   capture_output=True)
    time.sleep(3)  # workers call the storage while it is down
    subprocess.run([*as_postgres, pg_ctl, "-D", data, "start", "-w", "-l",
                    f"{data}/server.log"], check=True, capture_output=True)
    logs = finish(workers)
    assert any("storage unreachable" in log for log in logs), logs[0][-3000:]
    check_exact(load(pg_url), 6, {w.pid for w in workers})
