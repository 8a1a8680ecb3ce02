"""What every command does with an error: one line and exit code 2 for bad input, else a traceback.

``run_cli(main)`` runs a command's main function. A known error (``nas.errors.UserError`` and
its subclasses: search spaces, data, model YAML, config values; Hydra's composition errors:
an unknown key, a missing group option, a bad override) prints ``error: <one line>`` on stderr
and returns 2. Any other exception is a bug and propagates with its traceback. With
``LITEYOLO_DEBUG=1`` (or Hydra's own ``HYDRA_FULL_ERROR=1``) known errors show their traceback
too.

Hydra's ``@hydra.main`` catches exceptions itself, prints them and exits with code 1; while
``run_cli`` runs, ``HYDRA_FULL_ERROR`` is set so that they reach it instead. A known error
raised inside the task function would still make Hydra print "Error executing job ..." first,
so ``hydra_task`` (under ``@hydra.main``) carries it out of Hydra untouched.

Example::

    @hydra.main(config_path=..., config_name="search", version_base="1.3")
    @hydra_task()
    def _hydra_main(cfg: DictConfig) -> None: ...

    def main() -> int:
        return run_cli(_hydra_main)

    if __name__ == "__main__":
        raise SystemExit(main())
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from nas.errors import UserError

__all__ = ["DEBUG_ENV", "hydra_task", "one_line", "run_cli", "user_error_message"]

DEBUG_ENV = "LITEYOLO_DEBUG"
_HYDRA_ENV = "HYDRA_FULL_ERROR"


def run_cli(main: Callable[[], Any], *, known: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``main``; a known error -> ``error: ...`` on stderr and 2, else ``main``'s code.

    Args:
        main: The command (an ``@hydra.main`` function or an argparse main). Its return value
            is the exit code when it is an int, else 0.
        known: Further exception types to report as one line (e.g. an error class of an
            optional module that does not derive from ``UserError``).
    """
    debug = _env_set(DEBUG_ENV) or _env_set(_HYDRA_ENV)
    saved = os.environ.get(_HYDRA_ENV)
    os.environ[_HYDRA_ENV] = "1"
    try:
        code = main()
    except BaseException as e:  # noqa: B036 - re-raised unless it is a known error
        error = e.error if isinstance(e, _Carried) else e
        message = e.message if isinstance(e, _Carried) else user_error_message(e, known)
        if message is None or debug:
            if error is e:
                raise
            raise error from error.__cause__  # the task's own exception, out of Hydra
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        if saved is None:
            os.environ.pop(_HYDRA_ENV, None)
        else:
            os.environ[_HYDRA_ENV] = saved
    return code if isinstance(code, int) else 0


class _Carried(BaseException):
    """A known error on its way out of Hydra's job runner (which catches ``Exception``)."""

    def __init__(self, error: BaseException, message: str) -> None:
        super().__init__(message)
        self.error, self.message = error, message


def hydra_task(
    known: tuple[type[BaseException], ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for an ``@hydra.main`` task function run by ``run_cli``: known errors (as
    ``user_error_message`` decides, with ``known`` added) leave Hydra without its "Error
    executing job" line; ``run_cli`` then reports them."""

    def decorate(task: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(task)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except Exception as e:
                message = user_error_message(e, known)
                if message is None:
                    raise
                raise _Carried(e, message) from e

        return wrapper

    return decorate


def user_error_message(
    error: BaseException, known: tuple[type[BaseException], ...] = ()
) -> str | None:
    """The one-line message of a known error, None for anything else (a bug)."""
    if isinstance(error, (UserError, *known)):
        return one_line(str(error)) or type(error).__name__
    return _hydra_message(error)


def _hydra_message(error: BaseException) -> str | None:
    try:
        from hydra.errors import CompactHydraException, InstantiationException
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if isinstance(error, InstantiationException):
        return one_line(str(error))
    if not isinstance(error, CompactHydraException | OmegaConfBaseException):
        return None
    cause = error.__cause__
    key = getattr(cause, "full_key", None)
    parent = getattr(cause, "parent_node", None)
    if isinstance(cause, OmegaConfBaseException) and key and parent is not None:
        valid = sorted(str(k) for k in parent.keys() if k != "hydra")  # noqa: SIM118
        head, _, hint = one_line(str(error)).partition(". ")
        where = key.rpartition(".")[0]
        scope = f" of {where!r}" if where else ""
        return (f"{head.rstrip('.')}: {key.rpartition('.')[2]!r} is not a key{scope}; "
                f"valid: {valid}" + (f" ({hint.rstrip('.')})" if hint else ""))  # fmt: skip
    text = one_line(str(error))
    if isinstance(cause, OmegaConfBaseException):
        text += f" ({one_line(str(cause))})"
    return text


def one_line(text: str) -> str:
    """A multi-line message as one line: indented list items joined with commas, Hydra's
    "Config search path" section dropped."""
    parts: list[str] = []
    items: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Config search path"):
            break
        if raw[:1] in ("\t", " ") and parts and parts[-1].endswith(":"):
            items.append(line)
            continue
        if items:
            parts[-1] += " " + ", ".join(items)
            items = []
        parts.append(line)
    if items:
        parts[-1] += " " + ", ".join(items)
    joined = ""
    for part in parts:
        if joined:
            joined += " " if joined.endswith((".", ":", ";")) else ". "
        joined += part
    return joined


def _env_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
