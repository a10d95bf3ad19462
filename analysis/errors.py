"""Heirloom's exceptions: one hierarchy, so a caller can catch them all and print one line.

::

    HeirloomError
     +-- ConfigError           a config is wrong: names the file, line and key
     +-- ExpressionError       an expression does not parse or uses what it may not
     +-- InputError            an input is unreadable or does not hold what the config says
     |    +-- InputFileError   a raw event file (missing, truncated, not ROOT/Parquet)
     +-- StoreError            the store does not hold what it should
     +-- FitError              a fit or limit found no valid minimum
     +-- LayoutError           histograms do not fit a requested output layout
     +-- MemoryBudgetError     a memory budget cannot hold the smallest chunk

>>> issubclass(InputFileError, HeirloomError), str(InputFileError("a.root", "truncated"))
(True, 'cannot read input file a.root: truncated')
"""

from __future__ import annotations


class HeirloomError(Exception):
    """Base of every error Heirloom raises on purpose; ``str()`` is one complete line."""


class ConfigError(HeirloomError, ValueError):
    """A problem in an analysis config, located as precisely as we can.

    >>> str(ConfigError("unknown key", file="configs/demo.yaml", key="selection.0.cutt", line=12))
    "configs/demo.yaml:12: key 'selection.0.cutt': unknown key"
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None):
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        what = f" key '{self.key}':" if self.key else ""
        return f"{where}:{what} {self.message}"


class ExpressionError(HeirloomError, ValueError):
    """A bad (or failing) expression: ``.message``, ``.expression``, ``.column``, ``.reason``.

    >>> str(ExpressionError("unknown name 'x'", expression="x + 1", column=0))
    "unknown name 'x' in expression 'x + 1' at column 0"
    """

    def __init__(self, message: str, *, expression: str | None = None,
                 column: int | None = None, reason: str | None = None):
        self.message, self.expression, self.column = message, expression, column
        self.reason = reason or message
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.expression or ""
        text = text if len(text) <= 160 else text[:157] + "..."
        where = f" in expression {text!r}" if self.expression is not None else ""
        at = f" at column {self.column}" if self.column is not None else ""
        return f"{self.message}{where}{at}"


class InputError(HeirloomError, ValueError):
    """An input (event file, histogram file, likelihood archive) that cannot be used."""


class InputFileError(InputError, OSError):
    """A raw input file that is missing, truncated or not readable; names the file."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read input file {path}: {reason}")


class PluginError(HeirloomError):
    """A plugin that may not or cannot run: not a file, not trusted, not Python (docs/security.md)."""


class StoreError(HeirloomError, RuntimeError):
    """The store does not hold what it should (a missing or damaged object)."""


class FitError(HeirloomError, RuntimeError):
    """A fit that did not converge to a valid minimum, or a model that cannot be fitted."""


class LayoutError(HeirloomError, ValueError):
    """Histograms that do not fit a requested output layout (e.g. the AGC's)."""


class MemoryBudgetError(HeirloomError, ValueError):
    """A memory budget (``select.memory_mb``) that cannot hold the smallest chunk."""
