"""Box conversions and IoU: round trips and agreement with torchvision."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import complete_box_iou

from nas.ops.boxes import bbox_iou, box_area, box_iou, xywh2xyxy, xyxy2xywh


def _random_xyxy(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * 100
    wh = torch.rand(n, 2, generator=generator) * 50 + 1
    return torch.cat((xy, xy + wh), 1)


def test_round_trips() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = _random_xyxy(50, g)
    torch.testing.assert_close(xywh2xyxy(xyxy2xywh(boxes)), boxes)
    xywh = xyxy2xywh(boxes)
    torch.testing.assert_close(xyxy2xywh(xywh2xyxy(xywh)), xywh)


def test_known_conversion_and_batch_shapes() -> None:
    xyxy = torch.tensor([3.0, 4.0, 7.0, 6.0])
    assert xyxy2xywh(xyxy).tolist() == [5.0, 5.0, 4.0, 2.0]
    assert xyxy2xywh(torch.zeros(2, 3, 4)).shape == (2, 3, 4)
    assert box_area(torch.tensor([[0.0, 0, 2, 3], [5.0, 5, 4, 4]])).tolist() == [6.0, 0.0]


def test_box_iou_matches_torchvision() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = _random_xyxy(20, g), _random_xyxy(30, g)
    torch.testing.assert_close(box_iou(a, b), tv_box_iou(a, b), atol=1e-5, rtol=1e-5)
    assert box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]])).item() == (
        pytest.approx(1 / 3, abs=1e-6)
    )


def test_bbox_iou_and_ciou() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = _random_xyxy(40, g), _random_xyxy(40, g)
    iou = bbox_iou(a, b).squeeze(-1)
    torch.testing.assert_close(iou, tv_box_iou(a, b).diagonal(), atol=1e-4, rtol=1e-4)
    ciou = bbox_iou(a, b, ciou=True).squeeze(-1)
    torch.testing.assert_close(ciou, complete_box_iou(a, b).diagonal(), atol=1e-4, rtol=1e-4)
    assert (ciou <= iou + 1e-6).all()
    # xywh input gives the same numbers
    torch.testing.assert_close(
        bbox_iou(xyxy2xywh(a), xyxy2xywh(b), xywh=True, ciou=True), bbox_iou(a, b, ciou=True)
    )


def test_ciou_identity_disjoint_and_gradient() -> None:
    box = torch.tensor([[10.0, 10.0, 30.0, 50.0]])
    assert bbox_iou(box, box, ciou=True).item() == pytest.approx(1.0, abs=1e-5)
    far = torch.tensor([[100.0, 100.0, 110.0, 110.0]])
    assert bbox_iou(box, far).item() == 0.0
    assert bbox_iou(box, far, ciou=True).item() < 0  # distance penalty still separates them
    pred = far.clone().requires_grad_(True)
    (1 - bbox_iou(pred, box, ciou=True)).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0  # pulls even without overlap
