"""Where the shipped folders are: ``conf/``, ``models/`` and ``search_spaces/``.

They are top-level folders of the repository and ship inside the wheel as package data under
``nas/_resources/`` (``setup.py`` maps them there). ``path(name)`` returns the repository's
folder when ``nas`` is imported from a checkout (an editable install or the source tree), and
the installed copy otherwise, so every command works from any folder after ``pip install .``.

Example:
    >>> path("models").joinpath("yolov8.yaml").is_file()
    True
    >>> locate("tiny.yaml", "search_spaces") == path("search_spaces") / "tiny.yaml"
    True
"""

from __future__ import annotations

from pathlib import Path

from nas.errors import ResourceError

__all__ = ["RESOURCES", "locate", "path"]

RESOURCES = ("conf", "models", "search_spaces")
_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent  # the repository root when nas/ is imported from a checkout
_INSTALLED = _PACKAGE / "_resources"


def path(name: str) -> Path:
    """The shipped folder ``name``: the checkout's, else the installed package data.

    Raises:
        ValueError: ``name`` is not one of ``RESOURCES``.
        ResourceError: neither copy exists (a broken installation).
    """
    if name not in RESOURCES:
        raise ValueError(f"resources.path: {name!r} is not one of {list(RESOURCES)}")
    checkout = _CHECKOUT / name
    if (_CHECKOUT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    installed = _INSTALLED / name
    if installed.is_dir():
        return installed
    raise ResourceError(f"the {name}/ folder of liteyolo-nas is missing (looked in {checkout} "
                        f"and {installed}); reinstall the package")  # fmt: skip


def locate(value: str | Path, name: str) -> Path:
    """A user's path as given when it exists, else the same file in the shipped folder ``name``.

    A leading ``name/`` part is dropped before looking in the shipped folder, so
    ``search_spaces/tiny.yaml`` and ``tiny.yaml`` both find the shipped ``tiny.yaml`` from any
    working directory. When neither exists the path is returned as given (the caller's error
    then names it).
    """
    given = Path(value)
    if given.is_absolute() or given.exists():
        return given
    parts = given.parts
    relative = Path(*parts[1:]) if len(parts) > 1 and parts[0] == name else given
    shipped = path(name) / relative
    return shipped if shipped.exists() else given
