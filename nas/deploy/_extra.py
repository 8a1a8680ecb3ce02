"""The optional ``[deploy]`` extra: import its packages with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from nas.deploy.errors import MissingExtraError

__all__ = ["EXTRA_HINT", "MissingExtraError", "require"]

EXTRA_HINT = "pip install -e '.[deploy]'"
# import name -> distribution name on PyPI
_DISTRIBUTIONS = {"onnx": "onnx", "onnxruntime": "onnxruntime", "torch_pruning": "torch-pruning"}


def require(module: str) -> ModuleType:
    """Import ``module`` (a package of the ``[deploy]`` extra) or raise ``MissingExtraError``.

    Example:
        >>> require("math").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        dist = _DISTRIBUTIONS.get(module.split(".")[0], module)
        raise MissingExtraError(
            f"nas.deploy needs {dist}, which is not installed: install the deploy extra with "
            f"`{EXTRA_HINT}` ({e})"
        ) from e
