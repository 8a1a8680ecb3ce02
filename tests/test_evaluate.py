"""Evaluation: NMS, the COCO evaluator against pycocotools, and the full evaluate() wiring."""

from __future__ import annotations

import contextlib
import io
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from nas.data.cache import cache_images
from nas.data.records import DetectionDataset, Sample
from nas.ops.boxes import xyxy2xywh
from nas.train.evaluate import CocoEvaluator, evaluate
from nas.train.nms import non_max_suppression

NAMES = ["cat", "dog", "bird"]


def _dataset(root: Path | None = None, n: int = 6, seed: int = 0) -> DetectionDataset:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        w, h = int(rng.integers(60, 140)), int(rng.integers(60, 140))
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 0.6, (k, 2)) * [w, h]
        wh = rng.uniform(0.15, 0.4, (k, 2)) * [w, h]
        boxes = np.concatenate([xy, xy + wh], 1)
        path = Path(f"img{i}.png")
        if root is not None:
            path = root / path
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        samples.append(Sample(100 + i, path, w, h, boxes, rng.integers(0, 3, k)))
    return DetectionDataset(NAMES, samples, root)


def _gt_detections(ds: DetectionDataset) -> list[torch.Tensor]:
    return [
        torch.cat(
            (torch.from_numpy(s.boxes), torch.ones(s.num_boxes, 1),
             torch.from_numpy(s.classes)[:, None].float()), 1,
        )
        for s in ds.samples
    ]  # fmt: skip


def test_nms_is_class_aware_and_honours_conf_and_max_det() -> None:
    boxes = torch.tensor(
        [[10.0, 10, 50, 50], [12.0, 10, 52, 50], [10.0, 10, 50, 50], [80, 80, 90, 90]]
    )
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.0005, 0.0]])
    preds = torch.cat((xyxy2xywh(boxes), scores), 1).T[None]  # (1, 6, 4)
    (out,) = non_max_suppression(preds, conf=0.001, iou=0.5)
    # box 1 is suppressed by box 0 (same class); box 2 (other class) survives; box 3 below conf
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.7])
    assert out[:, 5].tolist() == [0.0, 1.0]
    torch.testing.assert_close(out[:, :4], boxes[[0, 2]])
    assert len(non_max_suppression(preds, max_det=1)[0]) == 1
    multi = torch.cat((xyxy2xywh(boxes[:1]), torch.tensor([[0.6, 0.5]])), 1).T[None]
    assert len(non_max_suppression(multi, multi_label=True)[0]) == 2
    assert len(non_max_suppression(multi, multi_label=False)[0]) == 1
    with pytest.raises(ValueError, match="4 \\+ C"):
        non_max_suppression(torch.zeros(1, 4, 3))


def test_ground_truth_as_predictions_scores_one() -> None:
    ds = _dataset()
    ev = CocoEvaluator(ds.to_coco(), ds.names)
    ev.update([s.image_id for s in ds.samples], _gt_detections(ds))
    result = ev.summarize()
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(1.0)
    present = {NAMES[c] for s in ds.samples for c in s.classes}
    assert set(result.per_class_ap) == present
    assert all(v == pytest.approx(1.0) for v in result.per_class_ap.values())


def test_evaluator_matches_a_direct_pycocotools_call() -> None:
    ds = _dataset(n=8, seed=1)
    g = torch.Generator().manual_seed(0)
    dets = []
    for det in _gt_detections(ds):
        noisy = det.clone()
        noisy[:, :4] += torch.randn(len(det), 4, generator=g) * 2
        noisy[:, 4] = torch.rand(len(det), generator=g)
        noisy[:, 5] = torch.where(
            torch.rand(len(det), generator=g) < 0.2, (noisy[:, 5] + 1) % 3, noisy[:, 5]
        )  # some wrong classes
        extra = torch.rand(3, 6, generator=g) * 60
        extra[:, 2:4] += extra[:, :2]
        extra[:, 4] = extra[:, 4] / 60
        extra[:, 5] = torch.randint(0, 3, (3,), generator=g).float()
        dets.append(torch.cat((noisy, extra)))
    ids = [s.image_id for s in ds.samples]
    ev = CocoEvaluator(ds.to_coco(), ds.names)
    ev.update(ids, dets)
    ours = ev.summarize()

    results = [
        {"image_id": i, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
        for i, d in zip(ids, dets, strict=True)
        for x1, y1, x2, y2, s, c in d.double().tolist()
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {**ds.to_coco(), "info": {}}
        gt.createIndex()
        cocoeval = COCOeval(gt, gt.loadRes(results), "bbox")
        cocoeval.evaluate()
        cocoeval.accumulate()
        cocoeval.summarize()
    assert 0.05 < ours.map50_95 < 0.95  # a non-trivial score
    assert ours.map50 == pytest.approx(cocoeval.stats[1], abs=1e-9)
    assert ours.map50_95 == pytest.approx(cocoeval.stats[0], abs=1e-9)
    per_class = cocoeval.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(NAMES):
        p = per_class[:, :, k]
        assert ours.per_class_ap[name] == pytest.approx(p[p > -1].mean(), abs=1e-9)


def test_no_detections_and_bad_input() -> None:
    ds = _dataset(n=2)
    ev = CocoEvaluator(ds.to_coco(), ds.names)
    assert ev.summarize().map50 == 0.0
    with pytest.raises(KeyError, match="image id 999"):
        ev.update([999], [torch.zeros(0, 6)])
    with pytest.raises(ValueError, match="class index 7"):
        ev.update([100], [torch.tensor([[0.0, 0, 5, 5, 0.5, 7]])])


class _Oracle(torch.nn.Module):
    """Eval-mode detector that 'predicts' each cached image's letterboxed ground truth."""

    def __init__(self, targets: list[torch.Tensor], nc: int) -> None:
        super().__init__()
        self.targets, self.nc, self.seen = targets, nc, 0
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert not self.training
        rows = self.targets[self.seen : self.seen + len(images)]
        self.seen += len(images)
        most = max(len(t) for t in rows)
        out = torch.zeros(len(images), 4 + self.nc, most + 2)
        for i, t in enumerate(rows):
            out[i, :4, : len(t)] = xyxy2xywh(t[:, 1:]).T
            out[i, 4 + t[:, 0].long(), torch.arange(len(t))] = 1.0
        return out


def test_evaluate_maps_letterboxed_predictions_back_to_original_pixels(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, n=5, seed=2)
    cache = cache_images(ds, 64, "cpu", workers=1, progress=False)
    data = types.SimpleNamespace(val=cache, names=NAMES, val_dataset=ds)
    model = _Oracle(cache.targets, 3).train()
    result = evaluate(model, data, batch_size=2)
    assert model.training  # mode restored
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 > 0.95  # exact up to the rounding of letterboxed pixels
