"""Let ultralytics build model YAMLs that use this project's extra blocks (optional extra).

ultralytics' ``parse_model`` looks module names up in the globals of ``ultralytics.nn.tasks``
and decides each row's channel arguments from block lists local to the function, so a block
cannot be taught to it by assigning a name. ``register()`` therefore wraps ``parse_model``:

1. a YAML made only of blocks ultralytics has is passed through unchanged;
2. otherwise this project's builder builds the whole description once (same scale, ``nc`` and
   input channels), and each row ultralytics does not know (``C2fGhost``, ``CSPPC``,
   ``C2fFaster``, ``Down_wt``, ``AFPN``, ``TimmBackbone`` and this project's one-argument
   ``Index``) is rewritten as an ``Index`` row ``[c_out, <prebuilt token>]`` (ultralytics'
   ``Index`` branch takes the output channels from the first argument and calls the class with
   the rest), or, for a row with several inputs (``AFPN``), a ``Concat`` row (the one branch that
   accepts a list ``from``). During the call ``tasks.Index`` and ``tasks.Concat`` are
   dispatchers that return the prebuilt module for a token and ultralytics' own class otherwise.
   Rows ultralytics knows are built by ultralytics itself, so its ``Detect`` head, loss and
   trainer are used unchanged.

Before either, a ``Detect`` row's class count is set to the dict's ``nc``: ultralytics
overrides ``nc`` in the dict when the data has another class count ("Overriding model.yaml
nc=4 with nc=7") and a plain YAML's ``Detect, [nc]`` follows it, but a row written with the
number (``Detect, [4]``, as YAMLs written by hand or by older versions of the search may be)
would keep 4 classes and fail in the assigner (``index 4 is out of bounds``).

Usage::

    import nas.ultralytics
    nas.ultralytics.register()
    from ultralytics import YOLO
    model = YOLO("results/liteyolo/export/yolov8n-liteyolo-trial7.yaml")

ultralytics is never imported by the rest of ``nas``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from nas.model.arch import NC_HEADS

__all__ = ["HEADS", "custom_rows", "is_registered", "register", "unregister", "with_model_nc"]

_TOKEN = "nas-prebuilt"
_ORIGINAL = "_nas_original_parse_model"


def _tasks() -> Any:
    try:
        import ultralytics.nn.tasks as tasks
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("nas.ultralytics needs ultralytics: pip install ultralytics") from e
    return tasks


def custom_rows(d: dict[str, Any]) -> list[int]:
    """Indices of the rows of an ultralytics model dict that ultralytics cannot build itself."""
    tasks = _tasks()
    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    out = []
    for i, (_, _, module, args) in enumerate(rows):
        if module.startswith(("nn.", "torchvision.ops.")):
            continue
        if module == "Index":
            if len(args) == 1:  # ours: [index]; ultralytics': [c2, index]
                out.append(i)
        elif not hasattr(tasks, module):
            out.append(i)
    return out


HEADS = NC_HEADS  # rows whose first argument is the class count


def with_model_nc(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with every head row's class count (``Detect, [4]``) equal to ``d["nc"]``.

    Returns ``d`` itself when nothing changes.
    """
    nc = d.get("nc")
    n_back = len(d.get("backbone") or [])
    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    stale = [
        i for i, (_, _, module, args) in enumerate(rows)
        if module in HEADS and args and isinstance(args[0], int) and args[0] != nc
    ]  # fmt: skip
    if nc is None or not stale:
        return d
    d = copy.deepcopy(d)
    for i in stale:
        section, j = ("backbone", i) if i < n_back else ("head", i - n_back)
        d[section][j][3][0] = nc
    return d


def _output_channels(model: nn.Module, in_channels: int) -> list[Any]:
    """Each row's output channels (an int, or a tuple for a multi-output row)."""
    outs: list[Any] = [None] * len(model.layers)

    def hook(index: int) -> Callable[..., None]:
        def record(_m: nn.Module, _i: Any, out: Any) -> None:
            outs[index] = (tuple(t.shape[1] for t in out) if isinstance(out, list | tuple)
                           else int(out.shape[1]))
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(model.layers)]
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, 64, 64))
    finally:
        for h in handles:
            h.remove()
    return outs


def _rewrite(d: dict[str, Any], ch: int, store: dict[int, nn.Module]) -> dict[str, Any]:
    """``d`` with its custom rows turned into prebuilt ``Index`` rows (modules in ``store``)."""
    from nas.model.detector import build_model

    rows_idx = custom_rows(d)
    if not rows_idx:
        return d
    plain = {k: v for k, v in d.items() if k not in ("yaml_file", "ch")}
    plain["channels"] = ch
    model = build_model(copy.deepcopy(plain))
    channels = _output_channels(model, ch)
    d = copy.deepcopy(d)
    n_back = len(d["backbone"])
    for i in rows_idx:
        section, j = ("backbone", i) if i < n_back else ("head", i - n_back)
        frm = d[section][j][0]
        c_out = channels[i]
        key = len(store)
        store[key] = model.layers[i]
        if isinstance(frm, list):  # several inputs: the Concat branch accepts a list 'from'
            d[section][j] = [frm, 1, "Concat", [[_TOKEN, key]]]
        else:
            c2 = c_out if isinstance(c_out, int) else sum(c_out)
            d[section][j] = [frm, 1, "Index", [c2, [_TOKEN, key]]]
    return d


def _dispatcher(original: type, store: dict[int, nn.Module]) -> type:
    """A stand-in for ultralytics' class ``original``: prebuilt module for a token, else real."""

    class Dispatcher(original):  # type: ignore[misc, valid-type]
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], list) and args[0][:1] == [_TOKEN]:
                return store[args[0][1]]
            return original(*args, **kwargs)

    Dispatcher.__name__ = Dispatcher.__qualname__ = original.__name__
    return Dispatcher


def register() -> None:
    """Wrap ``ultralytics.nn.tasks.parse_model`` (idempotent)."""
    tasks = _tasks()
    if is_registered():
        return
    original = tasks.parse_model

    @functools.wraps(original)
    def parse_model(d: dict[str, Any], ch: int, verbose: bool = True) -> Any:
        store: dict[int, nn.Module] = {}
        d = with_model_nc(d)
        rewritten = _rewrite(d, ch, store)
        if rewritten is d:
            return original(d, ch, verbose)
        saved = tasks.Index, tasks.Concat
        tasks.Index, tasks.Concat = (_dispatcher(c, store) for c in saved)
        try:
            return original(rewritten, ch, verbose)
        finally:
            tasks.Index, tasks.Concat = saved

    setattr(parse_model, _ORIGINAL, original)
    tasks.parse_model = parse_model


def is_registered() -> bool:
    """Whether ``register()`` is in effect."""
    return hasattr(_tasks().parse_model, _ORIGINAL)


def unregister() -> None:
    """Restore ultralytics' own ``parse_model``."""
    tasks = _tasks()
    if is_registered():
        tasks.parse_model = getattr(tasks.parse_model, _ORIGINAL)
