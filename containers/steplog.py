"""packtivity log handlers that also show Heirloom's one-line messages on the terminal.

packtivity writes what a step's container prints to the step's log file only
(``<work>/<step>/_packtivity/<step>.run.log``); yadage's terminal shows that a step
failed, not why. With these handlers the lines of ``heirloom step`` that say what ran or
why it failed (``heirloom step: ...``, ``heirloom: Select failed: ...``) are also printed
on the terminal, one line each; everything else stays in the log files as before.

    PYTHONPATH=containers PACKTIVITY_LOGGING_HANDLER=steplog:handlers yadage-run ...

The workflow runner image (containers/runner.Dockerfile) sets both.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s | %(name)20.20s | %(levelname)6s | %(message)s"


class HeirloomLines(logging.Filter):
    """Pass the lines Heirloom prints for the user, with packtivity's ``b'...'`` removed.

    >>> record = logging.LogRecord("run", logging.INFO, "", 0, "%s", (b"heirloom: Fit failed: x",), None)
    >>> HeirloomLines().filter(record), record.getMessage()
    (True, 'heirloom: Fit failed: x')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
            text = text[2:-1]
        if not text.startswith(("heirloom:", "heirloom step:")):
            return False
        record.msg, record.args = text, ()
        return True


def handlers(log: logging.Logger, metadata: dict, state, topic: str) -> None:
    """packtivity's own handlers (the step topic on the terminal, every topic in its log
    file) plus Heirloom's lines of the run topic on the terminal."""
    if topic in ("step", "run"):
        stream = logging.StreamHandler()
        stream.setLevel(logging.INFO)
        stream.setFormatter(logging.Formatter(FORMAT))
        if topic == "run":
            stream.addFilter(HeirloomLines())
        log.addHandler(stream)
    if state and state.metadir:
        logfile = logging.FileHandler(f"{state.metadir}/{metadata['name']}.{topic}.log")
        logfile.setLevel(logging.DEBUG)
        logfile.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(logfile)
        log.info("starting file logging for topic: %s", topic)
