"""Knowledge distillation: the loss is zero for equal heads, a step lowers it, ``fit`` with a
teacher runs through the engine's hook, and a mismatched teacher is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_synthetic

from nas.data import PreparedData
from nas.model import Detector, build_model
from nas.train import TrainConfig, fit
from nas.train.distill import Distiller, build_distiller, distillation_loss

REPO = Path(__file__).resolve().parents[1]


def tiny_arch(width: float = 0.0625) -> dict:
    arch = yaml.safe_load((REPO / "models" / "yolov8.yaml").read_text())
    arch["scales"] = {"t": [0.33, width, 1024]}
    arch["scale"] = "t"
    return arch


def tiny_model(nc: int, seed: int, width: float = 0.0625) -> Detector:
    torch.manual_seed(seed)
    return build_model(tiny_arch(width), nc=nc)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


def test_loss_is_zero_for_equal_heads_and_positive_otherwise() -> None:
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 67, s, s, generator=gen) for s in (8, 4, 2)]
    same = distillation_loss(maps, [m.clone() for m in maps], nc=3)
    assert abs(float(same.total)) < 1e-5
    other = [torch.randn(2, 67, s, s, generator=gen) for s in (8, 4, 2)]
    out = distillation_loss(maps, other, nc=3)
    assert float(out.cls) > 0 and float(out.dfl) > 0
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(maps, other[:2], nc=3)


def test_a_distillation_step_lowers_the_distillation_loss() -> None:
    student = tiny_model(3, seed=0)
    teacher = tiny_model(3, seed=1, width=0.125)  # another width: only the heads are compared
    distiller = Distiller(teacher, weight=1.0, temperature=2.0, device=torch.device("cpu"))
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3)
    student.train()
    losses = []
    for _ in range(3):
        loss = distiller(images, student(images))
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0], losses
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(m.training for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_fit_with_a_teacher(tiny_data: PreparedData, tmp_path: Path) -> None:
    teacher = tiny_model(3, seed=1, width=0.125)
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump(tiny_arch(0.125)))
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    base = {"epochs": 1, "imgsz": 64, "batch_size": 4, "optimizer": "adamw", "lr0": 0.002,
            "warmup_epochs": 0.0, "threads": 1, "eval_batch_size": 4}  # fmt: skip
    plain = TrainConfig.from_dict(base)
    taught = plain.replace(teacher=str(tmp_path / "teacher.yaml"),
                           teacher_weights=str(tmp_path / "teacher.pt"), distill_weight=5.0)
    assert build_distiller(plain, tiny_model(3, 0), torch.device("cpu")) is None
    weights = []
    for cfg in (plain, taught):
        model = tiny_model(3, seed=0)
        fit(model, tiny_data, cfg, progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(weights[0], weights[1])  # the teacher changed the gradients


def test_a_teacher_with_other_classes_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump(tiny_arch()))
    cfg = TrainConfig(teacher=str(tmp_path / "teacher.yaml"))
    teacher_state = tiny_model(5, seed=0).state_dict()
    torch.save(teacher_state, tmp_path / "t.pt")
    with pytest.raises(RuntimeError, match="size mismatch"):
        build_distiller(cfg.replace(teacher_weights=str(tmp_path / "t.pt")), tiny_model(3, 0),
                        torch.device("cpu"))  # fmt: skip
    with pytest.raises(ValueError, match="temperature"):
        TrainConfig(distill_temperature=0.0)
