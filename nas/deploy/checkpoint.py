"""Save and load detectors whose layer widths were changed by pruning.

A pruned detector no longer matches its model YAML's widths, and the per-layer widths Torch-
Pruning leaves are not a YOLO width multiple, so no YAML alone describes it. The checkpoint
keeps the YAML (the wiring: rows, blocks, ``from``), the state dict, and the shape of every
convolution, norm and linear layer; loading builds the model from the YAML and re-shapes those
layers before loading the state dict. The file holds only strings, numbers and tensors, so it
loads with ``torch.load(..., weights_only=True)`` (no pickled classes).

Example:
    >>> save_checkpoint(pruned, "pruned.pt")  # doctest: +SKIP
    >>> load_detector("pruned.pt").arch == pruned.arch  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from nas.deploy.errors import DeployError
from nas.model import Detector, build_model
from nas.model.arch import dump_arch, load_arch

__all__ = ["FORMAT", "is_checkpoint", "load_checkpoint", "load_detector", "save_checkpoint"]

FORMAT = "liteyolo-pruned-v1"
_CONV_ATTRS = ("in_channels", "out_channels", "groups")


def _shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            out[name] = {k: int(getattr(m, k)) for k in _CONV_ATTRS}
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            out[name] = {"num_features": int(m.num_features)}
        elif isinstance(m, nn.Linear):
            out[name] = {"in_features": m.in_features, "out_features": m.out_features}
    return out


def save_checkpoint(model: Detector, path: str | Path) -> Path:
    """Write ``{format, arch_yaml, shapes, state_dict}`` for ``model`` (pruned or not)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "arch_yaml": dump_arch(model.arch),
                "shapes": _shapes(model), "state_dict": state}, path)  # fmt: skip
    return path


def is_checkpoint(content: Any) -> bool:
    """Whether a loaded file is a ``save_checkpoint`` checkpoint (else: a plain state dict)."""
    return isinstance(content, dict) and content.get("format") == FORMAT


def _reshape(model: nn.Module, shapes: dict[str, dict[str, int]], state: dict[str, Any]) -> None:
    """Give each recorded layer its recorded attributes and parameters of the saved shapes."""
    modules = dict(model.named_modules())
    for name, attrs in shapes.items():
        module = modules.get(name)
        if module is None:
            raise DeployError(f"checkpoint layer {name!r} is not in the model built from its YAML")
        for key, value in attrs.items():
            setattr(module, key, value)
        if isinstance(module, nn.modules.batchnorm._NormBase):
            module.num_features = attrs["num_features"]
        for pname, param in list(module.named_parameters(recurse=False)):
            saved = state[f"{name}.{pname}" if name else pname]
            setattr(module, pname, nn.Parameter(torch.empty_like(saved),
                                                requires_grad=param.requires_grad))  # fmt: skip
        for bname, buf in list(module.named_buffers(recurse=False)):
            key = f"{name}.{bname}" if name else bname
            if buf is not None and key in state:
                setattr(module, bname, torch.empty_like(state[key]))


def load_checkpoint(content: dict[str, Any]) -> Detector:
    """Rebuild the detector of a loaded ``save_checkpoint`` file."""
    arch = load_arch(_yaml_dict(content["arch_yaml"]))
    model = build_model(arch)
    _reshape(model, content["shapes"], content["state_dict"])
    model.load_state_dict(content["state_dict"])
    return model


def _yaml_dict(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def load_detector(
    model_yaml: str | Path | None, weights: str | Path | None, *, nc: int | None = None
) -> Detector:
    """A detector from a model YAML and weights: a plain state dict (``nas.train``'s
    ``weights.pt``) or a ``save_checkpoint`` file (then the YAML may be None).

    Raises:
        ValueError: neither gives a model, or ``nc`` differs from the checkpoint's.
    """
    content = torch.load(Path(weights), map_location="cpu", weights_only=True) if weights else None
    if content is not None and is_checkpoint(content):
        model = load_checkpoint(content)
    elif model_yaml is None:
        raise DeployError(f"{weights}: a plain state dict needs its model YAML (--model)")
    else:
        model = build_model(str(model_yaml), nc=nc)
        if content is not None:
            model.load_state_dict(content)
    if nc is not None and model.nc != nc:
        raise DeployError(f"{weights}: the model has nc={model.nc}, the data has {nc} classes")
    return model
