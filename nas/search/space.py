"""Search spaces: the data classes (``SearchSpace``, ``Decision``, ``Option``) and ``load_space``.

A search space names, for each decision point of the YOLOv8 template (``nas.search.template``),
the options a trial may pick. The template rows are data (``models/yolov8.yaml``), the wiring
substitutes the choices into them (``nas.search.wiring``), and the YAML file is validated by
``nas.search.space_yaml``; a user adds a block option or a whole space by writing YAML.

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

Valid stages are the slots of ``nas.search.template.SLOTS``. An option is a registered block
name (``C2f``: it takes the template row's args, as many as its constructor accepts), or a
mapping ``{name, module, args}`` whose args may use the placeholders ``$c`` (the row's unscaled
output channels) and ``$shortcut`` (the template row's shortcut flag).

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

from nas.errors import UserError
from nas.search.template import GATES

__all__ = [
    "Budgets",
    "Decision",
    "Option",
    "SearchSpace",
    "SpaceError",
    "load_space",
    "parse_space",
]

BUDGET_KEYS = ("max_params", "max_gflops", "max_latency_ms")


class SpaceError(UserError, ValueError):
    """An invalid search space; the message names the file, the key and the valid values."""


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` that sampling needs."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Option:
    """One choice of a decision: a label (stored in Optuna), a module name and its row args.

    ``args`` None: the block fills the template row's args (``nas.search.wiring.row_for``).
    """

    name: Any  # str for blocks, float for width/depth multipliers
    module: str
    args: tuple[Any, ...] | None = None

    def row_args(self, channels: int, shortcut: bool) -> tuple[Any, ...]:
        """The explicit args with ``$c`` and ``$shortcut`` filled in."""
        subst = {"$c": channels, "$shortcut": shortcut}
        return tuple(subst.get(a, a) if isinstance(a, str) else a for a in self.args or ())


@dataclass(frozen=True)
class Decision:
    """A decision point: its Optuna parameter name, options, and the YOLOv8n option."""

    key: str
    options: tuple[Option, ...]
    default: Any

    def option(self, name: Any) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    @property
    def names(self) -> list[Any]:
        return [o.name for o in self.options]


@dataclass(frozen=True)
class Budgets:
    """Hard budgets: a candidate over any of them is rejected before training (None = none)."""

    max_params: float | None = None
    max_gflops: float | None = None
    max_latency_ms: float | None = None

    def merged(self, overrides: Mapping[str, float | None]) -> Budgets:
        """These budgets with the non-None ``overrides`` applied."""
        values = {k: getattr(self, k) for k in BUDGET_KEYS}
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
        """Whether ``key`` matters given the choices made before it (conditional spaces).

        A slot exists only while its section is the template's own (``template.GATES``).
        """
        section = key.split(".")[0]
        if "." not in key or section not in GATES:
            return True
        gate, template_value = GATES[section]
        return choices.get(gate, template_value) == template_value

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
    """Validate a search space given as a mapping (the parsed YAML; ``nas.search.space_yaml``)."""
    from nas.search.space_yaml import parse

    return parse(data, source=source)
