"""Packaging step that ``pyproject.toml`` cannot express: ship ``conf/``, ``models/`` and
``search_spaces/`` (top-level folders of the repository) inside the wheel as package data.

Each folder (and each of its subfolders) becomes a data-only package under ``nas._resources``
mapped from the repository folder with ``package_dir``, next to the ``nas`` packages found as
usual; ``nas.resources.path(name)`` finds the installed copy. Everything else is in
``pyproject.toml``.
"""

from __future__ import annotations

from setuptools import find_namespace_packages, find_packages, setup

RESOURCE_DIRS = ("conf", "models", "search_spaces")


def resource_packages() -> dict[str, str]:
    """``nas._resources.<folder>[.<subfolder>]`` -> repository folder, for every folder."""
    packages = {}
    for folder in RESOURCE_DIRS:
        packages[f"nas._resources.{folder}"] = folder
        for sub in find_namespace_packages(where=folder):
            packages[f"nas._resources.{folder}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages


RESOURCES = resource_packages()

setup(
    packages=find_packages(include=["nas", "nas.*"]) + list(RESOURCES),
    package_dir=RESOURCES,
    package_data={"nas": ["py.typed"], **{package: ["*.yaml"] for package in RESOURCES}},
)
