"""The one error of bad settings."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what was expected."""
