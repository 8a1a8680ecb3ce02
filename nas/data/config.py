"""Data configuration (mirrors ``conf/data/*.yaml``), split loading and cached preparation.

Fields of ``DataConfig`` by ``format``:
    - ``synthetic`` (default): ``path`` = cache root (default ``data/synthetic`` under the
      working directory), options in ``synthetic``; ``train``/``val`` unused.
    - ``coco``: ``train``/``val`` = annotation json files, ``train_images``/``val_images`` =
      image folders; relative paths are relative to ``path`` when given, else to the working
      directory.
    - ``yolo``: ``path`` = the ``data.yaml``; ``train``/``val`` = its split keys.
    - ``voc``: ``path`` = the VOC root; ``train``/``val`` = ``ImageSets/Main`` split names;
      ``names`` optionally fixes the class order.

Relative paths are resolved against the current working directory (Hydra 1.3 keeps it unless
``hydra.job.chdir=true``).

Example:
    >>> cfg = DataConfig.from_dict({"synthetic": {"num_train": 16, "num_val": 8}})
    >>> data = prepare_data(cfg, imgsz=128, device="cpu")  # doctest: +SKIP
    >>> data.train.images.shape  # doctest: +SKIP
    torch.Size([16, 3, 128, 128])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.config import from_mapping
from nas.data.cache import ImageCache, cache_images
from nas.data.coco import load_coco
from nas.data.defects import DatasetError
from nas.data.records import DetectionDataset
from nas.data.subset import subset
from nas.data.synthetic import SyntheticConfig, ensure_synthetic
from nas.data.voc import load_voc, voc_class_names
from nas.data.yolo import load_yolo
from nas.errors import ConfigError

__all__ = ["FORMATS", "DataConfig", "PreparedData", "load_splits", "prepare_data"]

FORMATS = ("synthetic", "coco", "yolo", "voc")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to use and how (see the module docstring for the per-format fields).

    Attributes:
        format: ``synthetic`` | ``coco`` | ``yolo`` | ``voc``.
        path: Dataset location (meaning depends on ``format``).
        train: Training split (json file for coco, split name otherwise).
        val: Validation split.
        train_images: coco only: image folder of ``train``.
        val_images: coco only: image folder of ``val``.
        names: voc only: class names in index order (default: sorted names found).
        train_subset: Use only this many training images (None = all), see ``nas.data.subset``.
        val_subset: Use only this many validation images (None = all).
        seed: Seed of the subset sampler.
        synthetic: Generator options of the synthetic dataset.

    Augmentation is a training setting (``TrainConfig.augment``, ``train.augment.*``).
    """

    format: str = "synthetic"
    path: str | None = None
    train: str = "train"
    val: str = "val"
    train_images: str | None = None
    val_images: str | None = None
    names: list[str] | None = None
    train_subset: int | None = None
    val_subset: int | None = None
    seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DatasetError(f"data: format={self.format!r} is not one of {list(FORMATS)}")
        for key in ("path", "train", "val", "train_images", "val_images"):
            if getattr(self, key) == "???":
                raise DatasetError(f"data: key {key!r} must be set (e.g. data.{key}=...)")
        if self.format in ("yolo", "voc") and not self.path:
            raise DatasetError(f"data: format={self.format!r} needs key 'path'")
        if self.format == "coco" and not (self.train_images and self.val_images):
            raise DatasetError("data: format='coco' needs keys 'train_images' and 'val_images'")
        for key in ("train_subset", "val_subset"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise DatasetError(f"data: {key}={value} must be >= 1 or null")
        if not isinstance(self.synthetic, SyntheticConfig):
            raise ConfigError(f"data.synthetic: {self.synthetic!r} is not a SyntheticConfig")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataConfig:
        """Build from a plain mapping (e.g. ``OmegaConf.to_container(cfg.data)``).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or values of the
                wrong type (see ``nas.config``).
            DatasetError: A combination of values no loader accepts.
        """
        values = {k: v for k, v in values.items() if k != "_target_"}
        if "augment" in values:
            raise ConfigError("data.augment: augmentation is a training setting; set it under "
                              "train.augment (e.g. train.augment.mosaic=1.0)")
        return from_mapping(cls, values, "data")

    def _resolve(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or not self.path else Path(self.path) / p


def _load(cfg: DataConfig, split: str, images: str | None) -> DetectionDataset:
    if cfg.format == "coco":
        assert images is not None
        return load_coco(cfg._resolve(split), cfg._resolve(images))
    if cfg.format == "yolo":
        assert cfg.path is not None
        return load_yolo(cfg.path, split)
    assert cfg.format == "voc" and cfg.path is not None
    names = cfg.names if cfg.names is not None else voc_class_names(cfg.path)
    return load_voc(cfg.path, split, names=names)


def load_splits(cfg: DataConfig) -> tuple[DetectionDataset, DetectionDataset]:
    """Load (train, val) as configured, with the subsets applied.

    Raises:
        DatasetError: The dataset is unusable, or train and val disagree on class names.
    """
    if cfg.format == "synthetic":
        folder = ensure_synthetic(cfg.synthetic, cfg.path)
        train = load_coco(folder / "annotations" / "train.json", folder / "images" / "train")
        val = load_coco(folder / "annotations" / "val.json", folder / "images" / "val")
    else:
        train = _load(cfg, cfg.train, cfg.train_images)
        val = _load(cfg, cfg.val, cfg.val_images)
    if train.names != val.names:
        raise DatasetError(f"data: train and val class names differ: {train.names} vs {val.names}")
    return subset(train, cfg.train_subset, cfg.seed), subset(val, cfg.val_subset, cfg.seed)


@dataclass(eq=False)
class PreparedData:
    """Everything a training run needs from the data, built once per process.

    Attributes:
        train: Letterboxed training images and targets.
        val: Letterboxed validation images and targets.
        names: Class names.
        val_dataset: The validation samples (``val_dataset.to_coco()`` is the COCOeval ground
            truth; row ``i`` of ``val`` is ``val_dataset.samples[i]``).
    """

    train: ImageCache
    val: ImageCache
    names: list[str]
    val_dataset: DetectionDataset

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.names)


def prepare_data(
    cfg: DataConfig,
    imgsz: int,
    device: str | torch.device = "cpu",
    *,
    progress: bool | None = None,
) -> PreparedData:
    """Load the splits and cache them letterboxed to ``imgsz`` on ``device``.

    Args:
        cfg: Data configuration.
        imgsz: Training / validation image size (multiple of 32).
        device: Device of the cached tensors.
        progress: Show tqdm bars (default: for more than 200 images).
    """
    train, val = load_splits(cfg)
    return PreparedData(
        train=cache_images(train, imgsz, device, progress=progress),
        val=cache_images(val, imgsz, device, progress=progress),
        names=list(train.names),
        val_dataset=val,
    )
