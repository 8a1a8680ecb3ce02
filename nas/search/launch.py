"""Launchers: one search, ``workers`` processes sharing its study (``launcher=local|ray``).

- ``workers=auto`` (the default): one worker per usable core on the CPU, one on a GPU
  (``resolve_workers``).
- ``launcher=local workers=1``: this single process, ``run_search`` here.
- ``launcher=local workers=N``: N subprocesses running the same command line on the same
  study; the parent waits, relays their output (``[w0] ...``), then finishes the study itself
  (nothing left to run unless a worker died) and writes the results once.
- ``launcher=ray workers=N``: N Ray tasks (``num_cpus``/``num_gpus`` each, retried
  ``max_retries`` times when they fail), each running the same worker command, against the
  study's storage (a journal file on one machine, PostgreSQL across machines);
  ``ray.init(address=launcher.address or $RAY_ADDRESS)``, else a local Ray instance.

Threads: ``train.threads: null`` means this worker's share of the cores: ``cores // workers``
(at least 1; ``cores`` = the CPUs this process may use), or the Ray task's ``num_cpus``. The
launcher passes it to each worker as ``train.threads=K``; an explicit ``train.threads`` wins.

Example:
    >>> worker_threads(None, workers=2, cores=16)
    8
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import ConfigError

__all__ = [
    "LAUNCHERS",
    "LauncherSettings",
    "WORKER_ENV",
    "WorkerError",
    "is_worker",
    "launch",
    "resolve_workers",
    "worker_command",
    "worker_index",
    "worker_threads",
]

logger = logging.getLogger(__name__)

WORKER_ENV = "LITEYOLO_SEARCH_WORKER"  # set in a launched worker: it skips the results
_OWN_KEYS = ("launcher", "workers", "train.threads")  # what the launcher sets for a worker


@dataclass(frozen=True)
class LauncherSettings:
    """The ``launcher`` config group and the top-level ``workers``.

    Attributes:
        name: ``local`` or ``ray``.
        workers: worker processes (local) or Ray tasks sharing the study.
        num_cpus: CPUs per Ray task (None: ``cores // workers`` of the local Ray instance).
        num_gpus: GPUs per Ray task (fractions share one GPU between trials).
        max_retries: times Ray restarts a failed task.
        address: the Ray cluster (None: ``$RAY_ADDRESS``, else a local instance).
    """

    name: str = "local"
    workers: int = 1
    num_cpus: float | None = None
    num_gpus: float = 0.0
    max_retries: int = 3
    address: str | None = None

    def __post_init__(self) -> None:
        if self.name not in LAUNCHERS:
            raise ConfigError(f"launcher={self.name!r}: valid: {sorted(LAUNCHERS)}")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}: must be >= 1")
        if self.num_cpus is not None and self.num_cpus <= 0:
            raise ConfigError(f"launcher.num_cpus={self.num_cpus}: must be > 0 or null")
        if self.num_gpus < 0 or self.max_retries < 0:
            raise ConfigError("launcher.num_gpus and launcher.max_retries must be >= 0")

    @classmethod
    def from_config(cls, launcher: dict[str, Any] | None, workers: int | str,
                    device: str = "cpu") -> LauncherSettings:  # fmt: skip
        """From the composed config's ``launcher`` group and ``workers`` key (``auto``: see
        ``resolve_workers``; ``device`` is ``train.device``)."""
        values = dict(launcher or {})
        fields = set(cls.__dataclass_fields__) - {"workers"}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"launcher: unknown keys {unknown}; valid: {sorted(fields)}")
        return cls(workers=resolve_workers(workers, device), **values)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask: a SLURM or container share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, device: str = "cpu", cores: int | None = None) -> int:
    """``workers``: a count, or ``auto``: one worker per usable core when training on the CPU
    (each with one thread: a small detector at a small image size gains little from a second
    thread, a second trial in parallel almost doubles the throughput), one on an accelerator.

    Example:
        >>> resolve_workers("auto", "cpu", cores=2), resolve_workers("auto", "cuda:0")
        (2, 1)
    """
    if isinstance(workers, str) and workers.strip().lower() == "auto":
        if not str(device).startswith("cpu"):
            return 1
        return usable_cores() if cores is None else max(1, int(cores))
    try:
        return int(workers)
    except (TypeError, ValueError):
        raise ConfigError(f"workers={workers!r}: give a count >= 1 or auto") from None


def worker_threads(threads: int | None, *, workers: int, cores: int | None = None) -> int:
    """Torch threads of one worker: ``threads`` if set, else ``cores // workers`` (>= 1)."""
    if threads:
        return int(threads)
    return max(1, (usable_cores() if cores is None else cores) // workers)


def is_worker() -> bool:
    """Whether this process is a worker started by a launcher (it leaves the results out)."""
    return bool(os.environ.get(WORKER_ENV))


def worker_index() -> int:
    """This worker's number among its launcher's (0 outside a launcher). Each worker seeds its
    sampler with ``seed + worker_index()``: identically seeded workers would suggest the same
    candidates at the same time, and train them twice (the dedupe only sees finished trials)."""
    value = os.environ.get(WORKER_ENV, "")
    return max(0, int(value) - 1) if value.isdigit() else 0


def worker_command(overrides: Sequence[str], threads: int) -> list[str]:
    """The worker's command line: the same overrides, one worker, ``train.threads``."""
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in _OWN_KEYS]
    return [sys.executable, "-m", "nas.search", *kept, "launcher=local", "workers=1",
            f"train.threads={threads}"]


class WorkerError(RuntimeError):
    """Launched workers failed (the study was finished and its results written regardless)."""


def launch(
    launcher: LauncherSettings,
    overrides: Sequence[str],
    threads: int | None,
    run: Callable[[bool], Any],
) -> None:
    """Run the search with ``launcher``.

    Args:
        launcher: how many workers, where.
        overrides: the command line's Hydra overrides (each worker gets the same).
        threads: the config's ``train.threads`` (None: the worker's share of the cores).
        run: runs the search in this process (``run_search``); its argument says whether to
            write the results.

    Raises:
        WorkerError: some workers failed (after the study was finished here).
    """
    if launcher.workers == 1 and launcher.name == "local" or is_worker():
        run(not is_worker())
        return
    codes = LAUNCHERS[launcher.name](launcher, overrides, threads)
    failed = {i: c for i, c in enumerate(codes) if c != 0}
    if failed:
        logger.warning("workers %s exited with codes %s; finishing the study here",
                       sorted(failed), sorted(set(failed.values())))
    run(True)  # nothing left unless a worker died: then its trials run here; writes results
    if failed:
        raise WorkerError(f"workers {sorted(failed)} of {launcher.workers} failed "
                          f"(exit codes {sorted(set(failed.values()))}); their output is above")


def _local(launcher: LauncherSettings, overrides: Sequence[str], threads: int | None) -> list[int]:
    k = worker_threads(threads, workers=launcher.workers)
    cmd = worker_command(overrides, k)
    logger.info("launching %d local workers, %d torch threads each: %s", launcher.workers, k,
                " ".join(cmd[1:]))
    env = {**os.environ, WORKER_ENV: "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**env, WORKER_ENV: str(i + 1)}, bufsize=1)
             for i in range(launcher.workers)]
    relays = [threading.Thread(target=_relay, args=(p, f"[w{i}] "), daemon=True)
              for i, p in enumerate(procs)]
    for t in relays:
        t.start()
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    for t in relays:
        t.join()
    return codes


def _relay(proc: subprocess.Popen, prefix: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        print(prefix + line, end="", flush=True)


def _ray(launcher: LauncherSettings, overrides: Sequence[str], threads: int | None) -> list[int]:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("launcher=ray needs Ray: pip install 'liteyolo-nas[ray]'") from e

    address = launcher.address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=True)
    try:
        return _run_ray_tasks(ray, launcher, overrides, threads, address)
    finally:
        if started:
            ray.shutdown()  # flushes the tasks' output before the summary


def _run_ray_tasks(
    ray: Any,
    launcher: LauncherSettings,
    overrides: Sequence[str],
    threads: int | None,
    address: str | None,
) -> list[int]:
    cpus = launcher.num_cpus
    if cpus is None:
        cpus = float(worker_threads(None, workers=launcher.workers,
                                    cores=int(ray.cluster_resources().get("CPU", 1))))
    k = worker_threads(threads, workers=1, cores=max(1, int(cpus)))
    cmd = worker_command(overrides, k)
    logger.info("launching %d Ray tasks (num_cpus=%g, num_gpus=%g, max_retries=%d), %d torch "
                "threads each, on %s", launcher.workers, cpus, launcher.num_gpus,
                launcher.max_retries, k, address or "a local Ray instance")
    task = ray.remote(num_cpus=cpus, num_gpus=launcher.num_gpus,
                      max_retries=launcher.max_retries, retry_exceptions=True)(_ray_worker)
    refs = [task.remote(cmd, str(Path.cwd()), i + 1) for i in range(launcher.workers)]
    codes = []
    for ref in refs:
        try:
            codes.append(ray.get(ref))
        except ray.exceptions.RayError as e:
            logger.warning("a Ray worker failed after %d retries: %s", launcher.max_retries,
                           str(e).strip().splitlines()[0] if str(e) else e)
            codes.append(1)
    return codes


def _ray_worker(cmd: list[str], cwd: str, index: int) -> int:
    """One Ray task: the worker command in a subprocess (its output goes to the driver)."""
    env = {**os.environ, WORKER_ENV: str(index)}
    cmd = [sys.executable, *cmd[1:]]  # this node's interpreter
    proc = subprocess.run(cmd, cwd=cwd if Path(cwd).is_dir() else None, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"search worker {index} exited with code {proc.returncode}")
    return 0


LAUNCHERS: dict[str, Callable[[LauncherSettings, Sequence[str], int | None], list[int]]] = {
    "local": _local,
    "ray": _ray,
}
