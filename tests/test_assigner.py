"""TaskAlignedAssigner on hand-built cases, and against ultralytics when installed."""

from __future__ import annotations

import os

import pytest
import torch

from nas.ops.anchors import make_anchors
from nas.train.assigner import TaskAlignedAssigner

STRIDES = [8.0, 16.0, 32.0]
IMGSZ = 64


def _anchors() -> tuple[torch.Tensor, torch.Tensor]:
    feats = [torch.zeros(1, 1, IMGSZ // int(s), IMGSZ // int(s)) for s in STRIDES]
    points, stride = make_anchors(feats, STRIDES)
    return points * stride, stride.squeeze(-1)


def _one_box(box: list[float], cls: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor([[[float(cls)]]]),
        torch.tensor([[box]]),
        torch.ones(1, 1, 1, dtype=torch.bool),
    )


def test_object_goes_to_anchors_inside_it_at_the_right_level() -> None:
    points, stride = _anchors()
    box = [16.0, 16.0, 48.0, 48.0]
    # Only the stride-16 anchors predict the box; the rest predict something far away.
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]]).repeat(len(points), 1)
    pred[stride == 16] = torch.tensor(box)
    labels, gt, mask = _one_box(box, cls=1)
    out = TaskAlignedAssigner(2, topk=4)(
        torch.full((1, len(points), 2), 0.5), pred[None], points, labels, gt, mask
    )
    fg = out.fg[0]
    assert fg.sum() == 4
    assert (stride[fg] == 16).all()
    inside = (points[fg] > 16).all(1) & (points[fg] < 48).all(1)
    assert inside.all()
    assert sorted(points[fg].tolist()) == [[24.0, 24.0], [24.0, 40.0], [40.0, 24.0], [40.0, 40.0]]
    assert (out.labels[0][fg] == 1).all()
    torch.testing.assert_close(out.boxes[0][fg], torch.tensor(box).expand(4, 4))
    # soft targets: perfect IoU -> score 1 on class 1, nothing on class 0 or on background
    torch.testing.assert_close(out.scores[0][fg][:, 1], torch.ones(4), atol=1e-5, rtol=0)
    assert out.scores[0][fg][:, 0].abs().sum() == 0
    assert out.scores[0][~fg].abs().sum() == 0


def test_only_anchors_inside_the_box_can_be_positive() -> None:
    points, _ = _anchors()
    box = [8.0, 8.0, 40.0, 24.0]
    labels, gt, mask = _one_box(box)
    pred = torch.tensor(box).repeat(len(points), 1)[None]  # every anchor predicts the box
    out = TaskAlignedAssigner(1, topk=10, min_side=0)(
        torch.full((1, len(points), 1), 0.9), pred, points, labels, gt, mask
    )
    inside = (points[:, 0] > 8) & (points[:, 0] < 40) & (points[:, 1] > 8) & (points[:, 1] < 24)
    # 9 anchor centres lie inside (8 at stride 8, 1 at stride 16): fewer than topk, all taken
    assert int(inside.sum()) == 9
    assert torch.equal(out.fg[0], inside)


def test_tiny_box_still_gets_an_anchor_with_min_side() -> None:
    points, _ = _anchors()
    box = [17.0, 17.0, 19.0, 19.0]  # 2x2 px: no anchor centre strictly inside
    labels, gt, mask = _one_box(box)
    pred = torch.tensor(box).repeat(len(points), 1)[None]
    scores = torch.full((1, len(points), 1), 0.5)
    none = TaskAlignedAssigner(1, min_side=0)(scores, pred, points, labels, gt, mask)
    assert not none.fg.any()
    some = TaskAlignedAssigner(1, min_side=16)(scores, pred, points, labels, gt, mask)
    assert some.fg.any()


def test_conflicting_anchor_keeps_the_box_it_overlaps_most() -> None:
    points = torch.tensor([[20.0, 20.0]])
    gt = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 30.0, 30.0]]])
    labels = torch.tensor([[[0.0], [1.0]]])
    mask = torch.ones(1, 2, 1, dtype=torch.bool)
    pred = torch.tensor([[[11.0, 11.0, 29.0, 29.0]]])  # much closer to the second box
    out = TaskAlignedAssigner(2, topk=1)(
        torch.full((1, 1, 2), 0.5), pred, points, labels, gt, mask
    )
    assert out.fg.tolist() == [[True]]
    assert out.gt_index.tolist() == [[1]]
    assert out.labels.tolist() == [[1]]


def test_padding_and_empty_targets_assign_nothing() -> None:
    points, _ = _anchors()
    pred = torch.rand(2, len(points), 4) * 32
    pred[..., 2:] += pred[..., :2]
    scores = torch.rand(2, len(points), 3)
    gt = torch.tensor([[[8.0, 8.0, 40.0, 40.0]], [[8.0, 8.0, 40.0, 40.0]]])
    labels = torch.zeros(2, 1, 1)
    mask = torch.tensor([[[True]], [[False]]])  # image 1 has only a padding row
    out = TaskAlignedAssigner(3)(scores, pred, points, labels, gt, mask)
    assert out.fg[0].any() and not out.fg[1].any()
    assert out.scores[1].abs().sum() == 0
    empty = TaskAlignedAssigner(3)(
        scores,
        pred,
        points,
        torch.zeros(2, 0, 1),
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0, 1, dtype=torch.bool),
    )
    assert not empty.fg.any() and empty.scores.abs().sum() == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        TaskAlignedAssigner(0)
    with pytest.raises(ValueError, match="topk"):
        TaskAlignedAssigner(2, topk=0)


def test_matches_ultralytics(tmp_path: pytest.TempPathFactory) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    tal = pytest.importorskip("ultralytics.utils.tal", reason="ultralytics (optional) missing")
    g = torch.Generator().manual_seed(0)
    points, _ = _anchors()
    b, n, nc = 3, 4, 5
    xy = torch.rand(b, n, 2, generator=g) * 48
    gt = torch.cat((xy, xy + 4 + torch.rand(b, n, 2, generator=g) * 40), -1)
    labels = torch.randint(0, nc, (b, n, 1), generator=g).float()
    mask = torch.rand(b, n, 1, generator=g) > 0.2
    gt = gt * mask  # ultralytics pads with zeros
    pxy = torch.rand(b, len(points), 2, generator=g) * 56
    pred = torch.cat((pxy, pxy + 2 + torch.rand(b, len(points), 2, generator=g) * 30), -1)
    scores = torch.rand(b, len(points), nc, generator=g)
    ref = tal.TaskAlignedAssigner(topk=10, num_classes=nc, alpha=0.5, beta=6.0, stride=STRIDES)
    _, r_boxes, r_scores, r_fg, _ = ref(scores, pred, points, labels, gt, mask.float())
    ours = TaskAlignedAssigner(nc, topk=10, alpha=0.5, beta=6.0, min_side=16)(
        scores, pred, points, labels, gt, mask
    )
    assert torch.equal(ours.fg, r_fg)
    torch.testing.assert_close(ours.scores, r_scores.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.boxes[ours.fg], r_boxes[r_fg])
