"""One converter from plain config mappings (a resolved Hydra group) to typed dataclasses.

``from_mapping(cls, values, where)`` checks every key against the dataclass's fields (unknown
keys are named with the valid ones), converts each value to its field's type (nested
dataclasses, ``Optional``, unions, ``tuple``/``list``/``dict``, ``Literal``, ``Path``, and
int / float / bool / str coercion as Hydra's command line produces them), and reports a bad
value with its key path (``train.augment.mosaic: 'x' is not a number``). A ``ValueError`` the
dataclass raises while validating itself becomes a ``ConfigError`` prefixed with ``where``.

Example:
    >>> from nas.data.augment import AugmentConfig
    >>> from_mapping(AugmentConfig, {"mosaic": "1", "enabled": "true"}, "train.augment").mosaic
    1.0
    >>> from_mapping(AugmentConfig, {"mosaic": "often"}, "train.augment")
    Traceback (most recent call last):
    ...
    nas.errors.ConfigError: train.augment.mosaic: 'often' is not a number
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, TypeVar

from nas.errors import ConfigError, UserError

__all__ = ["convert", "from_mapping"]

T = TypeVar("T")
_NONE = type(None)


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``, checking keys and converting values.

    Args:
        cls: A dataclass type.
        values: Its fields by name (None: all defaults).
        where: Key path of ``values`` in the whole config (``"train"``, ``"data.synthetic"``;
            ``""`` for the top level), used in error messages.

    Raises:
        ConfigError: an unknown or missing key, a value of the wrong type, or a value the
            dataclass rejects (its ``__post_init__`` raised ``ValueError``).
    """
    label = where or "config"
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{label}: expected a mapping with keys {sorted(fields)}, "
                          f"got {values!r}")  # fmt: skip
    unknown = sorted(str(k) for k in values if k not in fields)
    if unknown:
        raise ConfigError(f"{label}: unknown keys {unknown}; valid: {sorted(fields)}")
    missing = [
        name for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise ConfigError(f"{label}: missing key(s) {missing}")
    hints = _hints(cls)
    kwargs = {
        name: convert(value, hints.get(name, Any), _join(where, name))
        for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except UserError as e:
        if not isinstance(e, ConfigError):  # e.g. a DatasetError: already names its key
            raise
        raise _prefixed(e, where) from e
    except ValueError as e:
        raise _prefixed(e, where) from e


def convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` converted to type ``tp``; ``key`` names it in the error.

    Raises:
        ConfigError: ``value`` cannot be read as ``tp``.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return value
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, args, tp, key)
    if value is None:
        raise ConfigError(f"{key}: null is not allowed; expected {_describe(tp)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: {value!r}; valid: {list(args)}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_mapping(tp, value, key)
    if origin is not None:
        return _container(value, origin, args, tp, key)
    return _scalar(value, tp, key)


def _union(value: Any, args: tuple[Any, ...], tp: Any, key: str) -> Any:
    options = [a for a in args if a is not _NONE]
    if value is None:
        if _NONE in args:
            return None
        raise ConfigError(f"{key}: null is not allowed; expected {_describe(tp)}")
    errors = []
    for option in options:
        try:
            return convert(value, option, key)
        except ConfigError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise ConfigError(f"{key}: {value!r} is not {_describe(tp)}")


def _container(value: Any, origin: Any, args: tuple[Any, ...], tp: Any, key: str) -> Any:
    if origin in (tuple, list, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: {value!r} is not a list; expected {_describe(tp)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: {list(value)!r} must have {len(args)} items")
            pairs = zip(value, args, strict=True)
            return tuple(convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(pairs))
        item = args[0] if args else Any
        items = [convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: {value!r} is not a mapping; expected {_describe(tp)}")
        k_tp, v_tp = args if len(args) == 2 else (Any, Any)
        return {convert(k, k_tp, key): convert(v, v_tp, _join(key, str(k)))
                for k, v in value.items()}  # fmt: skip
    return value


def _scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{key}: {value!r} is not a boolean (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: {value!r} is not a string")
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, str | PurePath):
            return tp(value)
        raise ConfigError(f"{key}: {value!r} is not a path")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: {value!r} is not {_describe(tp)}")
    return value


def _describe(tp: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not _NONE]
        return " or ".join(parts) + (" or null" if _NONE in args else "")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} keys"
    return getattr(tp, "__name__", None) or str(tp)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of ``cls``; a field whose annotation names something only
    imported for type checking is ``Any`` (its value is passed through)."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        hints: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            one = type("_", (), {"__annotations__": {f.name: f.type},
                                 "__module__": cls.__module__})  # fmt: skip
            try:
                hints[f.name] = typing.get_type_hints(one)[f.name]
            except NameError:
                hints[f.name] = Any
        return hints


def _prefixed(error: Exception, where: str) -> ConfigError:
    text = str(error)
    return ConfigError(text if not where or text.startswith(where) else f"{where}: {text}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
