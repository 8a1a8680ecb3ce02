"""Search spaces: a YAML file -> a validated ``SearchSpace``; choices -> ``Architecture`` rows.

A search space names, for each decision point of the YOLOv8 wiring, the options a trial may
pick. The wiring itself (which row feeds which) is explicit code (``nas.search.wiring``); the
space file holds only data, so a user adds a block option or a whole space by writing YAML.

File layout (every section optional; a decision left out keeps the YOLOv8n choice)::

    scale: n                      # template scale letter (exports are named yolov8<scale>-...)
    backbone:
      type: [yolov8, {timm: ghostnet_100}]   # the YOLOv8 CSP backbone or a whole timm model
      block: {P2: [C2f, CSPPC], P3: [...], P4: [...], P5: [...]}
      downsample: {P1: [Conv], P2: [...], P3: [...], P4: [...], P5: [...]}
    neck:
      type: [PAN, AFPN]
      block: {top_down_P4: [...], out_P3: [...], out_P4: [...], out_P5: [...]}
      downsample: {P4: [...], P5: [...]}
    width: [0.25]                 # width multipliers (the n scale is 0.25)
    afpn: [4, 4]                  # AFPN row args after the widths: blocks_per_stage, compression
    depth: [0.33]                 # depth multipliers (the n scale is 0.33)
    budgets: {max_params: 3.0e6, max_gflops: null, max_latency_ms: null}
    seeds: {name: {decision key: option name, ...}}   # enqueued after the baseline

An option is a registered block name (``C2f``), or a mapping ``{name, module, args}`` whose args
may use the placeholders ``$c`` (the row's unscaled output channels) and ``$shortcut``.

Example:
    >>> from nas.search.space import parse_space
    >>> space = parse_space({"neck": {"type": ["PAN"]}}, source="<inline>")
    >>> space.baseline_choices()["neck"]
    'PAN'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = [
    "BACKBONE_BLOCK_STAGES",
    "BACKBONE_DOWN_STAGES",
    "NECK_BLOCK_STAGES",
    "NECK_DOWN_STAGES",
    "Budgets",
    "Decision",
    "Option",
    "SearchSpace",
    "SpaceError",
    "load_space",
    "parse_space",
]

# Decision points of the YOLOv8 wiring (see nas.search.wiring for the rows they fill).
BACKBONE_BLOCK_STAGES = ("P2", "P3", "P4", "P5")
BACKBONE_DOWN_STAGES = ("P1", "P2", "P3", "P4", "P5")
NECK_BLOCK_STAGES = ("top_down_P4", "out_P3", "out_P4", "out_P5")
NECK_DOWN_STAGES = ("P4", "P5")
NECK_TYPES = ("PAN", "AFPN")
YOLOV8_BACKBONE = "yolov8"
TEMPLATE_BLOCK = "C2f"
TEMPLATE_DOWN = "Conv"

# Row args of the shipped options; any other registered block gets the role's default.
_DOWN_ARGS: dict[str, tuple[Any, ...]] = {
    "Conv": ("$c", 3, 2),
    "GhostConv": ("$c", 3, 2),
    "ADown": ("$c",),
    "Down_wt": ("$c",),
}
_DEFAULT_ARGS = {"block": ("$c", "$shortcut"), "downsample": ("$c", 3, 2)}
_SECTIONS = {
    "": ("scale", "backbone", "neck", "width", "depth", "budgets", "seeds", "afpn"),
    "backbone": ("type", "block", "downsample"),
    "neck": ("type", "block", "downsample"),
}


class SpaceError(ValueError):
    """An invalid search space; the message names the file, the key and the valid values."""


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` that sampling needs."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Option:
    """One choice of a decision: a label (stored in Optuna), a module name and its row args."""

    name: Any  # str for blocks, float for width/depth multipliers
    module: str
    args: tuple[Any, ...] = ()

    def row_args(self, channels: int, shortcut: bool) -> tuple[Any, ...]:
        """The args with ``$c`` and ``$shortcut`` filled in."""
        subst = {"$c": channels, "$shortcut": shortcut}
        return tuple(subst.get(a, a) if isinstance(a, str) else a for a in self.args)


@dataclass(frozen=True)
class Decision:
    """A decision point: its Optuna parameter name, options, and the YOLOv8n option."""

    key: str
    options: tuple[Option, ...]
    default: str

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.options]


@dataclass(frozen=True)
class Budgets:
    """Hard budgets: a candidate over any of them is rejected before training (None = none)."""

    max_params: float | None = None
    max_gflops: float | None = None
    max_latency_ms: float | None = None

    def merged(self, overrides: Mapping[str, float | None]) -> Budgets:
        """These budgets with the non-None ``overrides`` applied."""
        values = {k: getattr(self, k) for k in ("max_params", "max_gflops", "max_latency_ms")}
        for key, value in overrides.items():
            if key not in values:
                raise SpaceError(f"budgets: unknown key {key!r}; valid: {sorted(values)}")
            if value is not None:
                values[key] = float(value)
        return Budgets(**values)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see the module docstring for the file format).

    Attributes:
        source: the file it came from (for error messages).
        scale: the template scale letter.
        decisions: every decision, keyed by its Optuna parameter name, in sampling order.
        budgets: hard budgets.
        seeds: named designs (complete, active choices), enqueued after the baseline.
        afpn_args: args of the AFPN row after its output widths (blocks_per_stage,
            compression; empty = the block's defaults).
    """

    source: str
    scale: str
    decisions: dict[str, Decision]
    budgets: Budgets = field(default_factory=Budgets)
    seeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    afpn_args: tuple[Any, ...] = ()

    def is_active(self, key: str, choices: Mapping[str, Any]) -> bool:
        """Whether ``key`` matters given the choices made before it (conditional spaces)."""
        if key.startswith("backbone."):
            return choices.get("backbone", YOLOV8_BACKBONE) == YOLOV8_BACKBONE
        if key.startswith("neck."):
            return choices.get("neck", "PAN") == "PAN"
        return True

    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """Draw one candidate: ``{decision key: option name}`` for every active decision.

        Decisions with a single option are fixed and not suggested to Optuna.
        """
        choices: dict[str, Any] = {}
        for key, decision in self.decisions.items():
            if not self.is_active(key, choices):
                continue
            if len(decision.options) == 1:
                choices[key] = decision.options[0].name
            else:
                choices[key] = trial.suggest_categorical(key, decision.names)
        return choices

    def complete(self, partial: Mapping[str, Any], *, label: str = "choices") -> dict[str, Any]:
        """Active choices from a partial mapping, defaults filled in, every value checked."""
        unknown = sorted(set(partial) - set(self.decisions))
        if unknown:
            raise SpaceError(
                f"{self.source}: {label}: unknown decision {unknown[0]!r}; "
                f"valid: {list(self.decisions)}"
            )
        choices: dict[str, Any] = {}
        for key, decision in self.decisions.items():
            if not self.is_active(key, choices):
                continue
            value = partial.get(key, decision.default)
            if value not in decision.names:
                raise SpaceError(
                    f"{self.source}: {label}.{key}: {value!r} is not an option of this space; "
                    f"valid: {decision.names}"
                )
            choices[key] = value
        return choices

    def baseline_choices(self) -> dict[str, Any]:
        """The YOLOv8 baseline at this scale (every decision at its default)."""
        return self.complete({}, label="baseline")

    def suggested(self, choices: Mapping[str, Any]) -> dict[str, Any]:
        """The subset of ``choices`` that ``sample`` suggests to Optuna (for enqueue_trial)."""
        return {
            k: v for k, v in choices.items() if k in self.decisions
            and len(self.decisions[k].options) > 1
        }


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file.

    Raises:
        SpaceError: missing file, bad YAML, or an invalid space (message names file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"search space file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpaceError(f"{path}: invalid YAML: {e}") from e
    return parse_space(data or {}, source=str(path))


def parse_space(data: Mapping[str, Any], *, source: str) -> SearchSpace:
    """Validate a search space given as a mapping (the parsed YAML)."""
    from nas.blocks.registry import block_names

    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise SpaceError(f"{source}: the search space must be a mapping, got {kind}")
    registered = block_names()
    _check_keys(data, "", source)
    backbone = _section(data, "backbone", source)
    neck = _section(data, "neck", source)

    decisions: dict[str, Decision] = {}

    def add(key: str, raw: Any, default: str, role: str, allowed: tuple[str, ...] = ()) -> None:
        options = _options(raw, key, source, role, registered, allowed)
        if default not in [o.name for o in options] and key not in ("width", "depth"):
            # The baseline option is not offered: the first option becomes the default.
            default = options[0].name
        decisions[key] = Decision(key, tuple(options), default)

    add("backbone", backbone.get("type", [YOLOV8_BACKBONE]), YOLOV8_BACKBONE, "backbone")
    blocks = _stages(backbone, "block", BACKBONE_BLOCK_STAGES, "backbone", source)
    for stage in BACKBONE_BLOCK_STAGES:
        add(f"backbone.block.{stage}", blocks.get(stage, [TEMPLATE_BLOCK]), TEMPLATE_BLOCK,
            "block")
    downs = _stages(backbone, "downsample", BACKBONE_DOWN_STAGES, "backbone", source)
    for stage in BACKBONE_DOWN_STAGES:
        add(f"backbone.downsample.{stage}", downs.get(stage, [TEMPLATE_DOWN]), TEMPLATE_DOWN,
            "downsample")
    add("neck", neck.get("type", ["PAN"]), "PAN", "neck", NECK_TYPES)
    blocks = _stages(neck, "block", NECK_BLOCK_STAGES, "neck", source)
    for stage in NECK_BLOCK_STAGES:
        add(f"neck.block.{stage}", blocks.get(stage, [TEMPLATE_BLOCK]), TEMPLATE_BLOCK, "block")
    downs = _stages(neck, "downsample", NECK_DOWN_STAGES, "neck", source)
    for stage in NECK_DOWN_STAGES:
        add(f"neck.downsample.{stage}", downs.get(stage, [TEMPLATE_DOWN]), TEMPLATE_DOWN,
            "downsample")
    for key, default in (("width", 0.25), ("depth", 0.33)):
        values = _numbers(data.get(key, [default]), key, source)
        opts = tuple(Option(v, "", ()) for v in values)  # type: ignore[arg-type]
        decisions[key] = Decision(key, opts, default if default in values else values[0])

    scale = data.get("scale", "n")
    if scale not in ("n", "s", "m", "l", "x"):
        raise SpaceError(f"{source}: scale: {scale!r}; valid: ['n', 's', 'm', 'l', 'x']")
    space = SearchSpace(
        source=source,
        scale=scale,
        decisions=decisions,
        budgets=_budgets(data.get("budgets") or {}, source),
        afpn_args=tuple(_list(data.get("afpn", []), "afpn", source)),
    )
    seeds_raw = data.get("seeds") or {}
    if not isinstance(seeds_raw, Mapping):
        raise SpaceError(f"{source}: seeds: must map a name to choices, got {seeds_raw!r}")
    seeds = {}
    for name, partial in seeds_raw.items():
        if not isinstance(partial, Mapping):
            raise SpaceError(f"{source}: seeds.{name}: must be a mapping of decision: option")
        seeds[str(name)] = space.complete(partial, label=f"seeds.{name}")
    return SearchSpace(**{**space.__dict__, "seeds": seeds})


def _check_keys(data: Mapping[str, Any], section: str, source: str) -> None:
    valid = _SECTIONS[section]
    for key in data:
        if key not in valid:
            where = f"{section}.{key}" if section else str(key)
            raise SpaceError(f"{source}: {where}: unknown key; valid: {list(valid)}")


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise SpaceError(f"{source}: {name}: must be a mapping, got {value!r}")
    _check_keys(value, name, source)
    return value


def _stages(
    section: Mapping[str, Any], key: str, stages: tuple[str, ...], name: str, source: str
) -> Mapping[str, Any]:
    value = section.get(key) or {}
    if not isinstance(value, Mapping):
        raise SpaceError(
            f"{source}: {name}.{key}: must map a stage to a list of options; "
            f"valid stages: {list(stages)}"
        )
    for stage in value:
        if stage not in stages:
            raise SpaceError(
                f"{source}: {name}.{key}.{stage}: unknown stage; valid stages: {list(stages)}"
            )
    return value


def _list(raw: Any, key: str, source: str) -> list[Any]:
    if not isinstance(raw, list):
        raise SpaceError(f"{source}: {key}: must be a list, got {raw!r}")
    return raw


def _numbers(raw: Any, key: str, source: str) -> list[float]:
    values = _list(raw, key, source)
    if not values:
        raise SpaceError(f"{source}: {key}: empty choice list; give at least one number")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 4:
            raise SpaceError(f"{source}: {key}: {v!r} is not a multiplier in (0, 4]")
    return [float(v) for v in values]


def _options(
    raw: Any, key: str, source: str, role: str, registered: list[str], allowed: tuple[str, ...]
) -> list[Option]:
    values = _list(raw, key, source)
    if not values:
        raise SpaceError(f"{source}: {key}: empty choice list; valid: {allowed or registered}")
    options: list[Option] = []
    for value in values:
        options.append(_option(value, key, source, role, registered, allowed))
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise SpaceError(f"{source}: {key}: duplicate options in {names}")
    return options


def _option(
    value: Any, key: str, source: str, role: str, registered: list[str], allowed: tuple[str, ...]
) -> Option:
    if role == "backbone":
        if value == YOLOV8_BACKBONE:
            return Option(YOLOV8_BACKBONE, "", ())
        timm = value.get("timm") if isinstance(value, Mapping) else None
        if isinstance(timm, str) and set(value) == {"timm"}:
            return Option(f"timm:{timm}", "TimmBackbone", (timm,))
        raise SpaceError(
            f"{source}: {key}: {value!r} is not a backbone; valid: 'yolov8' or {{timm: <model>}}"
        )
    if role == "neck":
        if value not in allowed:
            raise SpaceError(f"{source}: {key}: unknown neck {value!r}; valid: {list(allowed)}")
        return Option(value, value, ())
    if isinstance(value, str):
        name, module, args = value, value, _DOWN_ARGS.get(value, _DEFAULT_ARGS[role])
        if role == "block":
            args = _DEFAULT_ARGS["block"]
    elif isinstance(value, Mapping) and "module" in value:
        module = value["module"]
        name = str(value.get("name", module))
        args = tuple(value.get("args", _DEFAULT_ARGS[role]))
        extra = set(value) - {"name", "module", "args"}
        if extra:
            raise SpaceError(f"{source}: {key}: unknown option keys {sorted(extra)}; "
                             "valid: ['name', 'module', 'args']")
    else:
        raise SpaceError(
            f"{source}: {key}: option {value!r} must be a block name or "
            "{name, module, args}"
        )
    if module not in registered:
        raise SpaceError(f"{source}: {key}: unknown block {module!r}; valid: {registered}")
    return Option(name, module, tuple(args))


def _budgets(raw: Any, source: str) -> Budgets:
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{source}: budgets: must be a mapping, got {raw!r}")
    try:
        return Budgets().merged(raw)
    except SpaceError as e:
        raise SpaceError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise SpaceError(f"{source}: budgets: values must be numbers or null ({e})") from None
