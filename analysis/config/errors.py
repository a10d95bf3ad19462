"""The config error (defined with Heirloom's other exceptions in :mod:`analysis.errors`)."""

from __future__ import annotations

from analysis.errors import ConfigError

__all__ = ["ConfigError"]
