"""The errors of settings: bad settings, and settings that name code the sender may not import."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what was expected."""


class CodeImportRefused(Exception):
    """Settings name code to import (``"module:function"``) and their sender may not choose it.

    Not a ValueError, so pydantic does not turn it into a validation problem: it leaves
    validation as it is raised, before anything is imported.
    """
