"""The trainings of a fidelity measurement: jobs, one worker function, parallel processes.

A job is (design, recipe, seed). ``train_job`` builds the design with ``torch.manual_seed(seed)``
(the search's own initialisation: seed 0 of the trial recipe reproduces a search trial trained
with the same thread count), trains it with ``nas.train.fit``, measures the validation loss and
returns one record: mAP50-95, mAP50, the per-epoch losses, SoTL (their sum over the run), the
validation loss, and the CPU-seconds (``time.process_time`` of the worker: every thread
counted) and wall seconds of the training. ``run_jobs`` skips jobs in the cache, runs the rest
in ``workers`` spawned processes (each with ``threads`` torch threads), in the order given, and
appends every record to the cache as it arrives.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
from tqdm.auto import tqdm

from nas.fidelity.cache import RunCache
from nas.fidelity.panel import Design, text_to_arch
from nas.fidelity.recipes import Recipe

__all__ = ["SYNFLOW_KEY", "Job", "run_jobs", "synflow_key", "synflow_record", "train_job"]

logger = logging.getLogger(__name__)

SYNFLOW_KEY = "synflow"  # recipe_key of the (training-free) SynFlow records


@dataclass(frozen=True)
class Job:
    """One training: ``design`` trained with ``recipe`` at ``seed`` on ``threads`` threads."""

    design: Design
    recipe: Recipe
    seed: int
    threads: int | None = 1

    @property
    def key(self) -> tuple[str, str, int]:
        return self.design.arch_hash, self.recipe.key, self.seed


class _PreparedCache:
    """Per-process prepared data of the last few recipes (a worker trains many designs)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def get(self, recipe: Recipe) -> tuple[Any, float]:
        """(PreparedData, seconds it took to prepare; 0 when reused)."""
        from nas.data import prepare_data

        key = recipe.key
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0], 0.0
        start = time.perf_counter()
        data = prepare_data(recipe.data, recipe.train.imgsz, recipe.train.device, progress=False)
        self._items[key] = (data, time.perf_counter() - start)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return self._items[key]


_PREPARED = _PreparedCache()


def _base_record(job: Job) -> dict[str, Any]:
    d, r = job.design, job.recipe
    return {
        "arch_hash": d.arch_hash, "recipe_key": r.key, "seed": job.seed, "design": d.name,
        "role": d.role, "params": d.params, "gflops": d.gflops, "recipe": r.name,
        "recipe_desc": r.describe(), "overrides": list(r.overrides), "imgsz": r.train.imgsz,
        "epochs": r.train.epochs, "threads": job.threads,
    }  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def train_job(job: Job) -> dict[str, Any]:
    """Train one job (see the module docstring); a training that fails gives ``error``."""
    from nas.fidelity.proxies import validation_loss
    from nas.model.detector import build_model
    from nas.train import fit
    from nas.train.loss import NonFiniteLossError

    if job.threads:
        torch.set_num_threads(job.threads)
    data, data_seconds = _PREPARED.get(job.recipe)
    record = _base_record(job)
    record.update(train_images=len(data.train), val_images=len(data.val),
                  data_seconds=round(data_seconds, 3))  # fmt: skip
    cfg = dataclasses.replace(job.recipe.train, seed=job.seed, threads=job.threads)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        torch.manual_seed(job.seed)
        model = build_model(text_to_arch(job.design.arch_yaml))
        result = fit(model, data, cfg, progress=False)
        val_loss = validation_loss(model, data, batch_size=cfg.eval_batch_size)
    except (NonFiniteLossError, RuntimeError, ValueError) as e:
        record.update(error=f"{type(e).__name__}: {e}", map50=None, map50_95=None, sotl=None,
                      val_loss=None, cpu_seconds=time.process_time() - cpu0,
                      wall_seconds=time.perf_counter() - wall0, finished_at=_now())  # fmt: skip
        return record
    losses = [h.loss_box + h.loss_cls + h.loss_dfl for h in result.history]
    record.update(
        map50=float(result.map50), map50_95=float(result.map50_95), sotl=float(sum(losses)),
        epoch_losses=[round(v, 6) for v in losses], val_loss=float(val_loss),
        cpu_seconds=round(time.process_time() - cpu0, 3),
        wall_seconds=round(time.perf_counter() - wall0, 3),
        fit_seconds=round(result.train_seconds, 3),
        images_per_second=round(result.images_per_second, 3), finished_at=_now(),
    )
    return record


def synflow_key(imgsz: int = 64) -> str:
    """The cache's recipe key of SynFlow at ``imgsz`` (``synflow`` at the default 64 px)."""
    return SYNFLOW_KEY if imgsz == 64 else f"{SYNFLOW_KEY}@{imgsz}"


def synflow_record(design: Design, imgsz: int = 64) -> dict[str, Any]:
    """The SynFlow score of ``design`` as a cache record (``synflow_key(imgsz)``, seed 0)."""
    from nas.fidelity.proxies import synflow
    from nas.model.detector import build_model

    cpu0 = time.process_time()
    torch.manual_seed(0)
    score = synflow(build_model(text_to_arch(design.arch_yaml)), imgsz)
    return {"arch_hash": design.arch_hash, "recipe_key": synflow_key(imgsz), "seed": 0,
            "design": design.name, "recipe": SYNFLOW_KEY, "synflow": score,
            "cpu_seconds": round(time.process_time() - cpu0, 3)}  # fmt: skip


def run_jobs(
    jobs: Sequence[Job],
    cache: RunCache,
    *,
    workers: int = 1,
    train_fn: Callable[[Job], dict[str, Any]] = train_job,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the jobs not yet in ``cache`` (in order), append each record as it finishes.

    With ``workers > 1`` the jobs run in that many spawned processes (``train_fn`` must then be
    picklable: a module-level function); otherwise in this process.

    Returns:
        The new records, in the order they finished.
    """
    todo, seen = [], set()
    for job in jobs:
        if job.key not in cache and job.key not in seen:
            seen.add(job.key)
            todo.append(job)
    skipped = len(jobs) - len(todo)
    if skipped:
        logger.info("%d of %d trainings already in %s", skipped, len(jobs), cache.path)
    done: list[dict[str, Any]] = []
    bar = tqdm(total=len(todo), desc="trainings", unit="run", disable=not progress)

    def finish(record: dict[str, Any]) -> None:
        cache.add(record)
        done.append(record)
        bar.set_postfix_str(f"{record['design']} {record['recipe']} s{record['seed']} "
                            f"mAP50-95={record.get('map50_95')}")  # fmt: skip
        bar.update()

    try:
        if workers <= 1:
            for job in todo:
                finish(train_fn(job))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(train_fn, job) for job in todo]
                for future in cf.as_completed(futures):
                    finish(future.result())
    finally:
        bar.close()
    return done
