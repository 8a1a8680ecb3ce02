"""Trials per hour and storage overhead per trial with 1, 2 and 4 workers, journal vs PostgreSQL.

Storage mode (default): every worker is ``tests/fake_search_worker.py`` (the quick search with
a stand-in trainer that sleeps ``--fit-seconds`` per trial), so what differs between runs is
the storage: the lock, ask, attributes, artifacts and tell. The reference is the same loop on
an in-memory storage (one worker, no lock); the overhead per trial is a worker's loop time per
trial minus the reference's (ms). Trials per hour count from the first trial's start to the
last trial's end (process start-up left out).

Real mode (``--real``): the default search (``rungs=single``, real training) with
``launcher=local workers=W``; each worker trains with its share of the cores. Prints trials
per hour (first trial start to last end, and whole command) against one worker.

Usage::

    python benchmarks/bench_storage.py --workers 1 2 4 --trials 24 \\
        --postgres postgresql://postgres@127.0.0.1:54329/postgres
    python benchmarks/bench_storage.py --real --workers 1 2 --trials 4 [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.search.storage import database_url  # noqa: E402

FAKE = [sys.executable, str(ROOT / "tests" / "fake_search_worker.py")]


def run_workers(cmds: list[list[str]], env: dict[str, str]) -> tuple[float, float]:
    """Start the commands together, wait; (wall seconds, children's CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode}): {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu


def trial_stats(study: optuna.Study) -> tuple[int, float, float]:
    """(finished trials, span first start -> last end in s, mean loop seconds per trial)."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete]
    starts = [t.datetime_start.timestamp() for t in trials]
    ends = [t.datetime_complete.timestamp() for t in trials]
    span = max(ends) - min(starts)
    by_worker: dict[int, list] = {}
    for t in trials:
        by_worker.setdefault(t.system_attrs["nas:worker"]["pid"], []).append(t)
    loops = []
    for own in by_worker.values():
        own.sort(key=lambda t: t.datetime_start)
        first, last = own[0].datetime_start.timestamp(), own[-1].datetime_complete.timestamp()
        loops.append((last - first) / len(own))
    return len(trials), span, sum(loops) / len(loops)


def new_database(server: str) -> str:
    import psycopg

    name = f"nas_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


def drop_database(server: str, url: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def bench_storage(args: argparse.Namespace) -> None:
    env = {**os.environ, "FAKE_FIT_SECONDS": str(args.fit_seconds)}
    common = [f"n_trials={args.trials}", "rungs=single", "train.threads=1"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_loop = _memory_loop(args, tmp)  # the same loop on an in-memory study
        storages = ["journal"] + (["postgres"] if args.postgres else [])
        for storage in storages:
            for n in args.workers:
                if storage == "journal":
                    url = f"{tmp}/j{n}/bench.log"
                else:
                    url = new_database(args.postgres)
                cmd = [*FAKE, *common, f"storage={url}", f"results_dir={tmp}/r{storage}{n}"]
                wall, cpu = run_workers([cmd] * n, env)
                backend = _journal(url) if storage == "journal" else database_url(url)
                study = optuna.load_study(study_name="quick", storage=backend)
                done, span, loop = trial_stats(study)
                if storage == "postgres":
                    drop_database(args.postgres, url)
                rows.append((storage, n, done, done / span * 3600, (loop - ref_loop) * 1000,
                             loop * 1000, wall, cpu))
    print(f"fake trainer: {args.fit_seconds} s per trial; reference (in memory, 1 worker): "
          f"{ref_loop * 1000:.0f} ms per trial loop")
    print(f"{'storage':9} {'workers':>7} {'trials':>6} {'trials/h':>9} {'x 1 worker':>10} "
          f"{'overhead ms/trial':>17} {'loop ms':>8} {'wall s':>7} {'cpu s':>6}")
    base: dict[str, float] = {}
    for storage, n, done, tph, overhead, loop, wall, cpu in rows:
        base.setdefault(storage, tph)
        print(f"{storage:9} {n:7d} {done:6d} {tph:9.0f} {tph / base[storage]:10.2f} "
              f"{overhead:17.0f} {loop:8.0f} {wall:7.1f} {cpu:6.1f}")


def _journal(path: str) -> optuna.storages.BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def _memory_loop(args: argparse.Namespace, tmp: str) -> float:
    """The in-memory loop time per trial, measured in this process (a study kept in memory)."""
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ["FAKE_FIT_SECONDS"] = str(args.fit_seconds)
    import fake_search_worker
    from hydra import compose, initialize_config_dir

    import nas.train
    from nas.search.__main__ import settings_from_config
    from nas.search.study import run_search

    nas.train.fit = fake_search_worker.fake_fit
    overrides = ["experiment=quick", f"n_trials={args.trials}", "rungs=single",
                 "train.threads=1", "storage=:memory:", f"results_dir={tmp}/mem2"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    study = run_search(settings_from_config(cfg))
    return trial_stats(study)[2]


def bench_real(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(args.workers):
            cmd = [sys.executable, "-m", "nas.search", "rungs=single", f"n_trials={args.trials}",
                   "launcher=local", f"workers={n}", f"results_dir={tmp}/{i}",
                   "study_name=bench", *args.overrides]
            wall, cpu = run_workers([cmd], dict(os.environ))
            study = optuna.load_study(study_name="bench",
                                      storage=_journal(f"{tmp}/{i}/bench/journal.log"))
            done, span, _ = trial_stats(study)
            rows.append((n, done, done / span * 3600, done / wall * 3600, span, wall, cpu))
            print(f"workers={n}: {done} trials, {span:.0f} s first start -> last end, "
                  f"{wall:.0f} s whole command, {cpu:.0f} CPU s", flush=True)
    print(f"{'workers':>7} {'trials':>6} {'trials/h':>9} {'x 1st':>6} {'trials/h (cmd)':>14} "
          f"{'x 1st':>6} {'span s':>7} {'wall s':>7} {'cpu s':>6}")
    first = rows[0]
    for n, done, tph, tph_cmd, span, wall, cpu in rows:
        print(f"{n:7d} {done:6d} {tph:9.1f} {tph / first[2]:6.2f} {tph_cmd:14.1f} "
              f"{tph_cmd / first[3]:6.2f} {span:7.0f} {wall:7.0f} {cpu:6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--fit-seconds", type=float, default=0.5)
    parser.add_argument("--postgres", default=os.environ.get("LITEYOLO_TEST_POSTGRES"),
                        help="a PostgreSQL server URL (default: $LITEYOLO_TEST_POSTGRES)")
    parser.add_argument("--real", action="store_true",
                        help="the default search with real training (launcher=local)")
    parser.add_argument("overrides", nargs="*",
                        help="--real: further overrides of the search (e.g. train.epochs=2)")
    args = parser.parse_args()
    (bench_real if args.real else bench_storage)(args)


if __name__ == "__main__":
    main()
