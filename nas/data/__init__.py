"""Detection data: loaders (COCO, YOLO, VOC, synthetic), defects, subsets, cache and batches.

Example:
    >>> from nas.data import DataConfig, iterate_batches, prepare_data
    >>> data = prepare_data(DataConfig(), imgsz=256, device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

from nas.data.augment import (
    AugmentConfig,
    augment_batch,
    clip_boxes,
    colour_jitter,
    random_affine,
)
from nas.data.batches import Batch, collate, iterate_batches
from nas.data.cache import (
    ImageCache,
    Letterbox,
    cache_images,
    letterbox_image,
    letterbox_params,
    unletterbox,
)
from nas.data.coco import load_coco, save_coco
from nas.data.config import FORMATS, DataConfig, PreparedData, load_splits, prepare_data
from nas.data.defects import DatasetError, DataWarning, DefectReport, image_size, repair_boxes
from nas.data.mosaic import compose_mosaic, mosaic_batch
from nas.data.records import DetectionDataset, Sample, category_id, class_index
from nas.data.subset import subset, subset_indices
from nas.data.synthetic import SyntheticConfig, ensure_synthetic, generate_synthetic
from nas.data.voc import load_voc, voc_class_names
from nas.data.yolo import image_to_label_path, load_yolo, read_data_yaml

__all__ = [
    "FORMATS",
    "AugmentConfig",
    "Batch",
    "DataConfig",
    "DataWarning",
    "DatasetError",
    "DefectReport",
    "DetectionDataset",
    "ImageCache",
    "Letterbox",
    "PreparedData",
    "Sample",
    "SyntheticConfig",
    "augment_batch",
    "cache_images",
    "category_id",
    "class_index",
    "clip_boxes",
    "collate",
    "colour_jitter",
    "compose_mosaic",
    "ensure_synthetic",
    "generate_synthetic",
    "image_size",
    "image_to_label_path",
    "iterate_batches",
    "letterbox_image",
    "letterbox_params",
    "load_coco",
    "load_splits",
    "load_voc",
    "load_yolo",
    "mosaic_batch",
    "prepare_data",
    "random_affine",
    "read_data_yaml",
    "repair_boxes",
    "save_coco",
    "subset",
    "subset_indices",
    "unletterbox",
    "voc_class_names",
]
