"""The YOLOv8 loss on hand-built predictions, its guard rails, and against ultralytics."""

from __future__ import annotations

import math
import os
import types

import pytest
import torch

from nas.ops.anchors import bbox2dist, make_anchors
from nas.ops.boxes import xyxy2xywh
from nas.train.loss import DetectionLoss, NonFiniteLossError, dfl_loss

STRIDES = [8.0, 16.0, 32.0]
IMGSZ = 64
NC = 2


def _feats(batch: int = 1, fill: float = 0.0) -> list[torch.Tensor]:
    return [torch.full((batch, 64 + NC, IMGSZ // int(s), IMGSZ // int(s)), fill) for s in STRIDES]


def _encode(dist: torch.Tensor) -> torch.Tensor:
    """(A, 4) distances in bins -> (A, 4, 16) logits whose DFL optimum decodes to them."""
    left = dist.floor().long().clamp(max=14)
    w_left = left + 1 - dist
    logits = torch.full((*dist.shape, 16), -50.0)
    logits.scatter_(-1, left[..., None], w_left.clamp(min=1e-12).log()[..., None])
    logits.scatter_(-1, left[..., None] + 1, (1 - w_left).clamp(min=1e-12).log()[..., None])
    return logits


def test_dfl_minimum_is_the_binary_entropy_of_the_target_weights() -> None:
    target = torch.tensor([[0.0, 3.25, 7.5, 14.9]])
    best = dfl_loss(_encode(target), target)
    w = target - target.floor()
    entropy = -(w * w.clamp(min=1e-12).log() + (1 - w) * (1 - w).clamp(min=1e-12).log())
    torch.testing.assert_close(best, entropy.mean(-1), atol=1e-5, rtol=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        noisy = _encode(target) + torch.randn(1, 4, 16, generator=g) * 0.5
        assert dfl_loss(noisy, target).item() > best.item()


def test_perfect_prediction_has_near_zero_box_and_dfl_loss() -> None:
    box = torch.tensor([12.0, 12.0, 52.0, 52.0])  # stride-8 anchors inside sit at whole bins
    feats = _feats()
    points, stride = make_anchors(feats, STRIDES)
    dist = bbox2dist(points, (box / stride).expand(len(points), 4), 15)
    logits = _encode(dist).reshape(len(points), 64)
    cls = torch.full((len(points), NC), -8.0)
    cls[stride.squeeze(-1) == 8, 0] = 8.0  # confident, and only at stride 8
    flat = torch.cat((logits, cls), 1).T[None]  # (1, 66, A)
    start = 0
    for f in feats:
        n = f.shape[2] * f.shape[3]
        f.copy_(flat[:, :, start : start + n].reshape(f.shape))
        start += n
    out = DetectionLoss(NC, STRIDES)(feats, torch.tensor([[0.0, 0.0, *box.tolist()]]))
    assert out.box.item() < 1e-4  # CIoU = 1
    assert out.dfl.item() < 1e-4  # every positive's target is a whole bin: minimum is 0
    assert out.cls.item() > 0
    shifted = DetectionLoss(NC, STRIDES)(feats, torch.tensor([[0.0, 0.0, 14.0, 12.0, 54.0, 50.0]]))
    assert shifted.box.item() > 0.05 and shifted.dfl.item() > 0.05


def test_no_object_gives_only_class_loss_and_class_gradients() -> None:
    feats = [f.requires_grad_(True) for f in _feats(batch=2, fill=0.1)]
    out = DetectionLoss(NC, STRIDES)(feats, torch.zeros(0, 6))
    assert out.box.item() == 0.0 and out.dfl.item() == 0.0
    # all-zero targets: BCE(logit 0.1, target 0) summed over images, anchors, classes, / 1,
    # gain 0.5
    anchors = sum(f.shape[2] * f.shape[3] for f in feats)
    expected = 0.5 * 2 * anchors * NC * math.log1p(math.exp(0.1))
    assert out.cls.item() == pytest.approx(expected, rel=1e-5)
    assert out.total.item() == pytest.approx(2 * expected, rel=1e-5)  # times the batch size
    out.total.backward()
    for f in feats:
        assert f.grad[:, :64].abs().sum() == 0
        assert f.grad[:, 64:].abs().sum() > 0


def test_loss_backward_reaches_every_channel_and_ignores_target_order() -> None:
    g = torch.Generator().manual_seed(3)
    feats = [
        torch.randn(2, 64 + NC, IMGSZ // int(s), IMGSZ // int(s), generator=g) for s in STRIDES
    ]
    targets = torch.tensor(
        [[1.0, 1.0, 30, 30, 60, 50], [0.0, 1.0, 8, 8, 40, 40], [1.0, 0.0, 2, 2, 20, 30]]
    )
    loss = DetectionLoss(NC, STRIDES)
    a = loss(feats, targets)
    b = loss(feats, targets[[2, 0, 1]])
    torch.testing.assert_close(a.total, b.total)
    leaves = [f.clone().requires_grad_(True) for f in feats]
    loss(leaves, targets).total.backward()
    assert all(leaf.grad is not None and leaf.grad.abs().sum() > 0 for leaf in leaves)


def test_bad_inputs_are_named() -> None:
    loss = DetectionLoss(NC, STRIDES)
    with pytest.raises(ValueError, match=r"\(M, 6\)"):
        loss(_feats(), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="batch indices"):
        loss(_feats(), torch.tensor([[1.0, 0, 1, 1, 5, 5]]))
    with pytest.raises(ValueError, match="channels"):
        DetectionLoss(3, STRIDES)(_feats(), torch.zeros(0, 6))


def test_nan_predictions_give_a_non_finite_loss_and_the_error_names_epoch_and_step() -> None:
    out = DetectionLoss(NC, STRIDES)(
        _feats(fill=float("nan")), torch.tensor([[0.0, 0, 8, 8, 40, 40]])
    )
    assert not torch.isfinite(out.total)
    err = NonFiniteLossError(epoch=3, step=7, value=float("nan"))
    assert "epoch 3" in str(err) and "step 7" in str(err)
    assert (err.epoch, err.step) == (3, 7)


def test_matches_ultralytics_v8_detection_loss(tmp_path: pytest.TempPathFactory) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    ul = pytest.importorskip("ultralytics.utils.loss", reason="ultralytics (optional) missing")
    nc, size, batch = 3, 128, 2

    class _Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            head = types.SimpleNamespace(stride=torch.tensor(STRIDES), nc=nc, reg_max=16)
            self.model = [head]
            self.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)

    g = torch.Generator().manual_seed(0)
    feats = [
        torch.randn(batch, 64 + nc, size // int(s), size // int(s), generator=g) for s in STRIDES
    ]
    targets = torch.tensor(
        [
            [0, 1, 8, 8, 40, 40],
            [0, 0, 50, 60, 52, 70],
            [1, 0, 2, 2, 20, 30],
            [1, 2, 30, 30, 60, 50],
            [1, 1, 64, 10, 120, 100],
        ],
        dtype=torch.float32,
    )
    flat = torch.cat([f.flatten(2) for f in feats], 2)
    preds = {"boxes": flat[:, :64], "scores": flat[:, 64:], "feats": feats}
    gt = {
        "batch_idx": targets[:, 0],
        "cls": targets[:, 1],
        "bboxes": xyxy2xywh(targets[:, 2:]) / size,
    }
    ref, _ = ul.v8DetectionLoss(_Model())(preds, gt)
    ours = DetectionLoss(nc, STRIDES)(feats, targets)
    torch.testing.assert_close(
        torch.stack((ours.box, ours.cls, ours.dfl)) * batch, ref, atol=1e-4, rtol=1e-4
    )
