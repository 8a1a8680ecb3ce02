"""Shared test setup: keep every test independent of what an earlier one imported.

Some tests compare against ultralytics (an optional extra). Importing it patches process-wide
state (``PIL.Image.open``, ``torch.save``, environment variables, torch threads); this
fixture restores that state after every test so later tests see plain PIL and torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
