"""Shared test setup: keep every test independent of what an earlier one imported.

Some tests compare against ultralytics (an optional extra). Importing it patches process-wide
state (``PIL.Image.open``, ``torch.save``, environment variables, torch threads); this
fixture restores that state after every test so later tests see plain PIL and torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    image_open, torch_save, torch_load = Image.open, torch.save, torch.load
    environ, threads = dict(os.environ), torch.get_num_threads()
    yield
    Image.open, torch.save, torch.load = image_open, torch_save, torch_load
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def tiny_synthetic(root: Path, *, num_train: int = 8, num_val: int = 4, min_size: int = 8):
    """Prepared 64 px synthetic data with 3 classes (a few images: quick trainings in tests)."""
    from nas.data import DataConfig, prepare_data

    cfg = DataConfig.from_dict(
        {"path": str(root),
         "synthetic": {"num_train": num_train, "num_val": num_val, "image_size": 64,
                       "min_size": min_size, "max_size": 0.5, "max_objects": 3,
                       "num_classes": 3}}
    )  # fmt: skip
    return prepare_data(cfg, imgsz=64, device="cpu", progress=False)


def candidates(trials):
    """The trials that count towards ``n_trials``: rung-0 samples that are not a copy of a
    design already scored (``duplicate_of``); a sampler in a small space repeats designs."""
    return [t for t in trials
            if not t.user_attrs.get("rung") and "duplicate_of" not in t.user_attrs]
