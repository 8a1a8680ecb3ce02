"""The base of the errors a command reports as one line (exit code 2) instead of a traceback.

A ``UserError`` is bad input, not a bug: a file, a key or a value the user gave. Its message
names that file, key or value and what would be valid. ``nas.cli.run_cli`` prints it as one
line; every other exception keeps its traceback.

Example:
    >>> raise ConfigError("train.epochs: 'abc' is not an integer")
    Traceback (most recent call last):
    ...
    nas.errors.ConfigError: train.epochs: 'abc' is not an integer
"""

from __future__ import annotations

__all__ = ["ConfigError", "ResourceError", "UserError"]


class UserError(Exception):
    """Bad input (file, key or value); the message names it and what is valid."""


class ConfigError(UserError, ValueError):
    """A configuration key or value is wrong: unknown key, wrong type, out of range."""


class ResourceError(UserError, FileNotFoundError):
    """A shipped folder (``conf``, ``models``, ``search_spaces``) or a file in it is missing."""
