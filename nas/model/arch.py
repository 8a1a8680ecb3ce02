"""Model descriptions as data: Row, Architecture, and the ultralytics YAML format.

An ``Architecture`` is the typed, validated form of an ultralytics model YAML (``nc``,
``scales``, ``backbone`` and ``head`` rows ``[from, repeats, module, args]``). ``load_arch``
reads such a file (or text, or dict) and ``dump_arch`` writes one that ultralytics reads too.

Example:
    >>> arch = load_arch("yolov8n.yaml")  # models/yolov8.yaml at scale n, as ultralytics does
    >>> arch.scale, arch.nc, len(arch.rows)
    ('n', 80, 23)
    >>> load_arch(dump_arch(arch)) == arch
    True
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nas.blocks.registry import Scale, block_names
from nas.errors import UserError

__all__ = [
    "ArchError",
    "Architecture",
    "NC_HEADS",
    "ModelNotFoundError",
    "Row",
    "dump_arch",
    "guess_scale",
    "load_arch",
    "models_dir",
    "resolve_model_path",
    "save_arch",
]

_SCALE_RE = re.compile(r"yolo(e-)?v?\d+([nslmx])")
_UNIFY_RE = re.compile(r"(\d+)([nslmx])(.+)?$")  # yolov8n-foo -> yolov8-foo
_TOP_KEYS = ("nc", "scales", "scale", "backbone", "head")
NC_HEADS = ("Detect",)  # rows whose first argument is the class count


class ArchError(UserError, ValueError):
    """A model description is malformed; the message names the source, row, key and value."""


class ModelNotFoundError(UserError, FileNotFoundError):
    """No model description of that path or name; the message lists the shipped models."""


def _freeze(value: Any) -> Any:
    """Lists -> tuples, recursively, so rows are immutable and hashable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Tuples -> lists, recursively, for YAML output."""
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Row:
    """One ``[from, repeats, module, args]`` row.

    Attributes:
        frm: input row index, or a tuple of them; negative values are relative (-1 = previous).
        repeats: repeat count before depth scaling (>= 1).
        module: registered block name, e.g. ``"C2f"``.
        args: the block's YAML arguments (lists are stored as tuples).
    """

    frm: int | tuple[int, ...]
    repeats: int
    module: str
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        frm = _freeze(self.frm)
        object.__setattr__(self, "frm", frm)
        object.__setattr__(self, "args", _freeze(self.args))
        ok = all(_is_int(f) for f in frm) and bool(frm) if isinstance(frm, tuple) else _is_int(frm)
        if not ok:
            raise ArchError(f"key 'from' must be an int or a non-empty list of ints, got {frm!r}")
        if not _is_int(self.repeats) or self.repeats < 1:
            raise ArchError(f"key 'repeats' must be an int >= 1, got {self.repeats!r}")
        if not isinstance(self.module, str) or not self.module:
            raise ArchError(f"key 'module' must be a block name string, got {self.module!r}")

    @property
    def inputs(self) -> tuple[int, ...]:
        """``frm`` as a tuple."""
        return self.frm if isinstance(self.frm, tuple) else (self.frm,)

    def to_list(self) -> list[Any]:
        """The YAML form ``[from, repeats, module, [args]]``."""
        return [_thaw(self.frm), self.repeats, self.module, _thaw(self.args)]


def absolute_inputs(row: Row, index: int) -> tuple[int, ...]:
    """Absolute input indices of the row at ``index`` (-1 is the input image)."""
    return tuple(index + f if f < 0 else f for f in row.inputs)


@dataclass(frozen=True)
class Architecture:
    """A detector description: class count, scaling constants and rows (backbone then head).

    Attributes:
        nc: number of classes.
        backbone: backbone rows.
        head: head rows (neck and detection head).
        scales: scale name -> ``(depth, width, max_channels)``.
        scale: the chosen scale, or None for the first one (with a warning) when building.
        extra: other top-level YAML keys (e.g. ``depth_multiple``), kept for round trips.
    """

    nc: int
    backbone: tuple[Row, ...]
    head: tuple[Row, ...]
    scales: dict[str, tuple[float, float, int]] = field(default_factory=dict, hash=False)
    scale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _is_int(self.nc) or self.nc < 1:
            raise ArchError(f"key 'nc' must be an int >= 1, got {self.nc!r}")
        object.__setattr__(self, "backbone", tuple(self.backbone))
        object.__setattr__(self, "head", tuple(self.head))
        if not self.backbone:
            raise ArchError("key 'backbone' must be a non-empty list of rows")
        scales = {}
        for name, value in dict(self.scales).items():
            scales[str(name)] = _check_scale(name, value)
        object.__setattr__(self, "scales", scales)
        if self.scale is not None and self.scale not in scales:
            valid = ", ".join(scales) or "none: the description has no 'scales'"
            raise ArchError(f"key 'scale': unknown scale {self.scale!r}; valid scales: {valid}")
        object.__setattr__(self, "extra", dict(self.extra))
        clash = set(self.extra) & set(_TOP_KEYS)
        if clash:
            raise ArchError(f"extra keys {sorted(clash)} clash with the main keys {_TOP_KEYS}")
        known = set(block_names())
        for i, row in enumerate(self.rows):
            if not isinstance(row, Row):
                raise ArchError(f"row {i}: expected a Row, got {row!r}")
            where = f"row {i} ({_section(self, i)})"
            for f, a in zip(row.inputs, absolute_inputs(row, i), strict=True):
                if not (0 <= a < i or (i == 0 and f == -1)):
                    raise ArchError(
                        f"{where}: key 'from' value {f} does not refer to an earlier row "
                        f"(valid: -1 for the previous row or the image at row 0, -{i}..-1 "
                        f"or 0..{i - 1})"
                    )
            if row.module not in known:
                raise ArchError(
                    f"{where}: key 'module': unknown block {row.module!r}; "
                    f"registered blocks: {', '.join(sorted(known))}"
                )

    @property
    def rows(self) -> tuple[Row, ...]:
        """All rows, backbone first; row indices in ``from`` count over this tuple."""
        return self.backbone + self.head

    def resolved_scale(self) -> Scale:
        """The scaling constants used to build (first scale with a warning if none was chosen).

        Without ``scales``, ``depth_multiple`` and ``width_multiple`` from ``extra`` (default 1)
        and no channel cap, as ultralytics does.
        """
        if not self.scales:
            depth = float(self.extra.get("depth_multiple", 1.0))
            width = float(self.extra.get("width_multiple", 1.0))
            return Scale(depth, width, sys.maxsize)
        name = self.scale
        if name is None:
            name = next(iter(self.scales))
            warnings.warn(f"no model scale chosen; assuming scale {name!r}", stacklevel=2)
        depth, width, max_channels = self.scales[name]
        return Scale(depth, width, max_channels)

    def with_literal_nc(self) -> Architecture:
        """A copy whose row arguments ``"nc"`` (the symbolic class count, as in ``Detect, [nc]``)
        are replaced by ``self.nc``: the network these rows build, whichever way it was written."""

        def literal(rows: tuple[Row, ...]) -> tuple[Row, ...]:
            return tuple(replace(r, args=tuple(self.nc if a == "nc" else a for a in r.args))
                         for r in rows)  # fmt: skip

        return replace(self, backbone=literal(self.backbone), head=literal(self.head))

    def with_overrides(self, *, nc: int | None = None, scale: str | None = None) -> Architecture:
        """A copy with ``nc`` and/or ``scale`` replaced (None keeps the current value)."""
        changes: dict[str, Any] = {}
        if nc is not None:
            # a head row holding the class count as a number (``Detect, [4]``) follows it too
            changes.update(nc=nc, backbone=_symbolic_heads(self.backbone),
                           head=_symbolic_heads(self.head))  # fmt: skip
        if scale is not None:
            changes["scale"] = scale
        return replace(self, **changes) if changes else self


def _symbolic_heads(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """``rows`` with each ``NC_HEADS`` row's first argument, when a number, written ``"nc"``."""
    return tuple(
        replace(r, args=("nc", *r.args[1:]))
        if r.module in NC_HEADS and r.args and _is_int(r.args[0]) else r
        for r in rows
    )  # fmt: skip


def _section(arch: Architecture, index: int) -> str:
    n = len(arch.backbone)
    return f"backbone row {index}" if index < n else f"head row {index - n}"


def _check_scale(name: Any, value: Any) -> tuple[float, float, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not _is_int(value[2])
        or min(value) <= 0
    ):
        raise ArchError(
            f"key 'scales' entry {name!r} must be [depth > 0, width > 0, max_channels int > 0], "
            f"got {value!r}"
        )
    return (float(value[0]), float(value[1]), int(value[2]))


def models_dir() -> Path:
    """The shipped ``models/`` folder of reference architectures (``nas.resources``)."""
    from nas import resources

    return resources.path("models")


def guess_scale(path: str | Path) -> str | None:
    """Scale letter from a file name like ultralytics (``yolov8n-foo.yaml`` -> ``"n"``)."""
    match = _SCALE_RE.search(Path(path).stem)
    return match.group(2) if match else None


def resolve_model_path(name: str | Path) -> Path:
    """Find a model YAML: an existing path first, else ``models/<name>``.

    As ultralytics does, a scaled name falls back to the unscaled file (``yolov8n.yaml`` ->
    ``yolov8.yaml``), and a missing ``.yaml`` suffix is added.

    Raises:
        ModelNotFoundError: nothing matched (a ``FileNotFoundError``); the message lists the
            paths tried and the models available in ``models/``.
    """
    path = Path(name)
    candidates: list[Path] = []
    for base in (path, models_dir() / path.name):
        for p in (base, base.with_name(base.name + ".yaml")) if base.suffix == "" else (base,):
            candidates.append(p)
            unified = p.with_name(_UNIFY_RE.sub(r"\1\3", p.stem) + p.suffix)
            if unified != p:
                candidates.append(unified)
    for p in candidates:
        if p.is_file():
            return p
    available = sorted(p.name for p in models_dir().glob("*.yaml"))
    tried = ", ".join(dict.fromkeys(str(p) for p in candidates))
    raise ModelNotFoundError(
        f"model description {str(name)!r} not found (tried {tried}); "
        f"models available in {models_dir()}: {', '.join(available) or 'none'}"
    )


def _convert_arg(value: Any) -> Any:
    """A YAML arg as ultralytics reads it: strings such as 'None' or '1e-3' become literals.

    Names like ``nc`` or ``nearest`` stay strings (``nc`` is replaced when building).
    """
    if isinstance(value, list):
        return [_convert_arg(v) for v in value]
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
    return value


def _parse_rows(rows: Any, section: str, offset: int) -> tuple[Row, ...]:
    if not isinstance(rows, list) or not rows:
        raise ArchError(f"key {section!r} must be a non-empty list of rows, got {rows!r}")
    parsed = []
    for j, raw in enumerate(rows):
        where = f"{section} row {j} (row {offset + j})"
        if not isinstance(raw, list) or len(raw) != 4:
            raise ArchError(f"{where}: a row must be [from, repeats, module, args], got {raw!r}")
        frm, repeats, module, args = raw
        if not isinstance(args, list):
            raise ArchError(f"{where}: key 'args' must be a list, got {args!r}")
        try:
            parsed.append(Row(frm, repeats, module, tuple(_convert_arg(a) for a in args)))
        except ArchError as e:
            raise ArchError(f"{where}: {e}") from None
    return tuple(parsed)


def arch_from_dict(
    data: Mapping[str, Any], *, scale: str | None = None, nc: int | None = None,
    name_scale: str | None = None,
) -> Architecture:
    """Build an ``Architecture`` from a parsed YAML mapping (see ``load_arch``)."""
    if not isinstance(data, Mapping):
        raise ArchError(f"a model description must be a mapping, got {type(data).__name__}")
    for key in ("backbone", "head"):
        if key not in data:
            raise ArchError(f"missing key {key!r} (keys present: {sorted(map(str, data))})")
    backbone = _parse_rows(data["backbone"], "backbone", 0)
    head = _parse_rows(data["head"], "head", len(backbone))
    scales = data.get("scales") or {}
    if not isinstance(scales, Mapping):
        raise ArchError(f"key 'scales' must be a mapping of name -> [depth, width, max], got "
                        f"{scales!r}")
    chosen = scale or data.get("scale") or (name_scale if name_scale in scales else None)
    if name_scale and scales and name_scale not in scales and not (scale or data.get("scale")):
        raise ArchError(f"the file name asks for scale {name_scale!r}; valid: {', '.join(scales)}")
    extra = {k: v for k, v in data.items() if k not in _TOP_KEYS}
    arch = Architecture(
        nc=data.get("nc", 80),
        backbone=backbone,
        head=head,
        scales=dict(scales),
        scale=chosen,
        extra=extra,
    )
    return arch if nc is None else arch.with_overrides(nc=nc)


def load_arch(
    source: str | Path | Mapping[str, Any], *, scale: str | None = None, nc: int | None = None
) -> Architecture:
    """Read an ultralytics-format model description.

    Args:
        source: a path or model name (see ``resolve_model_path``), YAML text (a string with a
            newline or starting with ``{``), or an already parsed mapping.
        scale: scale to use; wins over a ``scale:`` key, which wins over the file name
            (``yolov8s.yaml`` -> ``s``).
        nc: number of classes, replacing the description's ``nc``.

    Raises:
        ArchError: the description is malformed (the message names the source, row, key and
            value). FileNotFoundError: no such file or model name.
    """
    label, name_scale = "<dict>", None
    if isinstance(source, Mapping):
        data: Any = source
    elif isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        label, data = "<yaml text>", _safe_load(source, "<yaml text>")
    else:
        path = resolve_model_path(source)
        label, name_scale = str(path), guess_scale(source)
        data = _safe_load(path.read_text(encoding="utf-8"), label)
    try:
        return arch_from_dict(data, scale=scale, nc=nc, name_scale=name_scale)
    except ArchError as e:
        raise ArchError(f"{label}: {e}") from None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: ~10x faster


def _safe_load(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        raise ArchError(f"{label}: invalid YAML: {e}") from None


def _flow(value: Any) -> str:
    """One value as a single-line YAML flow node."""
    text = yaml.safe_dump(_thaw(value), default_flow_style=True, width=1 << 30, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def dump_arch(arch: Architecture) -> str:
    """The ultralytics YAML text of ``arch`` (rows in flow style, ``- [-1, 1, Conv, [64, 3, 2]]``).

    ``load_arch(dump_arch(a)) == a``. ultralytics reads the text too; note that it takes the
    scale from the file *name* (``yolov8n-foo.yaml``), not from the ``scale:`` key.
    """
    lines = ["# LiteYOLO-NAS model description (ultralytics YAML format)", f"nc: {arch.nc}"]
    if arch.scales:
        lines.append("scales: # [depth, width, max_channels]")
        lines += [f"  {name}: {_flow(list(v))}" for name, v in arch.scales.items()]
    if arch.scale is not None:
        lines.append(f"scale: {arch.scale}")
    if arch.extra:
        lines.append(yaml.safe_dump(_thaw(arch.extra), sort_keys=False).rstrip("\n"))
    for section, rows, offset in (("backbone", arch.backbone, 0),
                                  ("head", arch.head, len(arch.backbone))):
        lines.append(f"{section}:")
        lines += [f"  - {_flow(row.to_list())} # {offset + j}" for j, row in enumerate(rows)]
    return "\n".join(lines) + "\n"


def save_arch(arch: Architecture, path: str | Path) -> Path:
    """Write ``dump_arch(arch)`` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_arch(arch), encoding="utf-8")
    return path
