"""Validation of a search-space mapping (the parsed YAML) into a ``SearchSpace``.

The valid sections, roles and stages come from ``nas.search.template.SLOTS``; every error
names the file, the key, the value and what would be valid (``SpaceError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.search.space import Budgets, Decision, Option, SearchSpace, SpaceError
from nas.search.template import GATES, ROLES, slots_of, template_arch

__all__ = ["parse"]

NECK_TYPES = ("PAN", "AFPN")
YOLOV8_BACKBONE = GATES["backbone"][1]
_TOP_KEYS = ("scale", "backbone", "neck", "width", "depth", "budgets", "seeds", "afpn")
_SECTION_KEYS = ("type", *ROLES)


def parse(data: Mapping[str, Any], *, source: str) -> SearchSpace:
    """A validated ``SearchSpace`` from a mapping; ``source`` names it in errors."""
    from nas.blocks.registry import block_names

    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise SpaceError(f"{source}: the search space must be a mapping, got {kind}")
    _check_keys(data, _TOP_KEYS, "", source)
    sections = {name: _section(data, name, source) for name in GATES}
    registered = block_names()
    decisions: dict[str, Decision] = {}

    def add(key: str, options: list[Option], default: Any) -> None:
        if default not in [o.name for o in options]:
            default = options[0].name  # the baseline option is not offered: the first is
        decisions[key] = Decision(key, tuple(options), default)

    raw_type = sections["backbone"].get("type", [YOLOV8_BACKBONE])
    add("backbone", [_backbone(v, source) for v in _list(raw_type, "backbone.type", source)],
        YOLOV8_BACKBONE)
    for role in ROLES:
        _add_slots(decisions, add, sections["backbone"], "backbone", role, source, registered)
    raw_neck = sections["neck"].get("type", [GATES["neck"][1]])
    add("neck", [_neck(v, source) for v in _list(raw_neck, "neck.type", source)],
        GATES["neck"][1])
    for role in ROLES:
        _add_slots(decisions, add, sections["neck"], "neck", role, source, registered)

    scale = data.get("scale", "n")
    scales = template_arch().scales
    if scale not in scales:
        raise SpaceError(f"{source}: scale: {scale!r}; valid: {list(scales)}")
    depth, width, _ = scales[scale]
    for key, default in (("width", width), ("depth", depth)):
        values = _numbers(data.get(key, [default]), key, source)
        add(key, [Option(v, "", ()) for v in values], default)
    _check_unique(decisions, source)
    space = SearchSpace(
        source=source,
        scale=scale,
        decisions=decisions,
        budgets=_budgets(data.get("budgets") or {}, source),
        afpn_args=tuple(_list(data.get("afpn", []), "afpn", source)),
    )
    return SearchSpace(**{**space.__dict__, "seeds": _seeds(data, space, source)})


def _add_slots(
    decisions: dict[str, Decision],
    add: Any,
    section: Mapping[str, Any],
    name: str,
    role: str,
    source: str,
    registered: list[str],
) -> None:
    slots = slots_of(name, role)
    stages = [s.stage for s in slots]
    raw = section.get(role) or {}
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{source}: {name}.{role}: must map a stage to a list of options; "
                         f"valid stages: {stages}")
    for stage in raw:
        if stage not in stages:
            raise SpaceError(f"{source}: {name}.{role}.{stage}: unknown stage; "
                             f"valid stages: {stages}")
    for slot in slots:
        values = _list(raw.get(slot.stage, [slot.default]), slot.key, source)
        if not values:
            raise SpaceError(f"{source}: {slot.key}: empty choice list; valid: {registered}")
        add(slot.key, [_block(v, slot.key, source, registered) for v in values], slot.default)


def _check_unique(decisions: Mapping[str, Decision], source: str) -> None:
    for key, decision in decisions.items():
        names = decision.names
        if len(set(names)) != len(names):
            raise SpaceError(f"{source}: {key}: duplicate options in {names}")


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], section: str,
                source: str) -> None:
    for key in data:
        if key not in valid:
            where = f"{section}.{key}" if section else str(key)
            raise SpaceError(f"{source}: {where}: unknown key; valid: {list(valid)}")


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise SpaceError(f"{source}: {name}: must be a mapping, got {value!r}")
    _check_keys(value, _SECTION_KEYS, name, source)
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


def _backbone(value: Any, source: str) -> Option:
    if value == YOLOV8_BACKBONE:
        return Option(YOLOV8_BACKBONE, "", ())
    timm = value.get("timm") if isinstance(value, Mapping) else None
    if isinstance(timm, str) and set(value) == {"timm"}:
        return Option(f"timm:{timm}", "TimmBackbone", (timm,))
    raise SpaceError(
        f"{source}: backbone.type: {value!r} is not a backbone; valid: 'yolov8' or "
        "{timm: <model>}"
    )


def _neck(value: Any, source: str) -> Option:
    if value not in NECK_TYPES:
        raise SpaceError(f"{source}: neck.type: unknown neck {value!r}; valid: {list(NECK_TYPES)}")
    return Option(value, value, ())


def _block(value: Any, key: str, source: str, registered: list[str]) -> Option:
    if isinstance(value, str):
        name, module, args = value, value, None
    elif isinstance(value, Mapping) and "module" in value:
        extra = set(value) - {"name", "module", "args"}
        if extra:
            raise SpaceError(f"{source}: {key}: unknown option keys {sorted(extra)}; "
                             "valid: ['name', 'module', 'args']")
        module = value["module"]
        name = str(value.get("name", module))
        args = tuple(value["args"]) if "args" in value else None
    else:
        raise SpaceError(
            f"{source}: {key}: option {value!r} must be a block name or {{name, module, args}}"
        )
    if module not in registered:
        raise SpaceError(f"{source}: {key}: unknown block {module!r}; valid: {registered}")
    return Option(name, module, args)


def _budgets(raw: Any, source: str) -> Budgets:
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{source}: budgets: must be a mapping, got {raw!r}")
    try:
        return Budgets().merged(raw)
    except SpaceError as e:
        raise SpaceError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise SpaceError(f"{source}: budgets: values must be numbers or null ({e})") from None


def _seeds(data: Mapping[str, Any], space: SearchSpace, source: str) -> dict[str, Any]:
    raw = data.get("seeds") or {}
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{source}: seeds: must map a name to choices, got {raw!r}")
    seeds = {}
    for name, partial in raw.items():
        if not isinstance(partial, Mapping):
            raise SpaceError(f"{source}: seeds.{name}: must be a mapping of decision: option")
        seeds[str(name)] = space.complete(partial, label=f"seeds.{name}")
    return seeds
