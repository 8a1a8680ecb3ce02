"""A search worker with a stand-in trainer: ``python tests/fake_search_worker.py [overrides]``.

The same as ``python -m nas.search experiment=quick [overrides]`` (config, storage, locks,
worker records, the trial loop, results), except that ``nas.train.fit`` is replaced by a
deterministic fake that sleeps ``FAKE_FIT_SECONDS`` (default 0) per epoch: tests of several
workers and benchmarks of the storage then measure the storage, not the training.
Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def fake_fit(model, data, cfg, *, on_epoch=None, progress=True):
    """Stands in for nas.train.fit: per-epoch callbacks, mAP derived from the parameter count."""
    seconds = float(os.environ.get("FAKE_FIT_SECONDS", "0"))
    params = sum(p.numel() for p in model.parameters())
    epochs = int(getattr(cfg, "epochs", 1))
    for epoch in range(1, epochs + 1):
        time.sleep(seconds)
        m = 0.1 + params % 97 / 1000 + epoch / 1000
        if on_epoch is not None:
            on_epoch(SimpleNamespace(epoch=epoch, map50=m, map50_95=m / 2, seconds=seconds))
    final = 0.1 + params % 97 / 1000
    return SimpleNamespace(map50=final, map50_95=final / 2, train_seconds=seconds * epochs,
                           epochs=epochs)


def main(overrides: list[str]) -> None:
    import logging

    from hydra import compose, initialize_config_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as Hydra's job logging

    import nas.train
    from nas.search.__main__ import settings_from_config
    from nas.search.study import run_search

    nas.train.fit = fake_fit
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=["experiment=quick", *overrides])
    run_search(settings_from_config(cfg))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
