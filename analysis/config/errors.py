"""The one error type for bad analysis configs: it names the file, the key and the line."""

from __future__ import annotations


class ConfigError(ValueError):
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
