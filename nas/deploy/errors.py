"""The deployment commands' known errors, reported by ``nas.cli.run_cli`` as one line (exit 2).

``DeployError``: a value the user gave (a file, a flag, a checkpoint, a model that does not fit
the data) is wrong; the message names it and what would be valid. ``MissingExtraError``: a
package of the optional ``[deploy]`` extra is not installed; the message names the extra.
"""

from __future__ import annotations

from nas.errors import UserError

__all__ = ["DeployError", "MissingExtraError"]


class DeployError(UserError, ValueError):
    """Bad input to export, quantization, pruning, latency or compression."""


class MissingExtraError(UserError, ImportError):
    """A package of the ``[deploy]`` extra is not installed (the message says how to install)."""
