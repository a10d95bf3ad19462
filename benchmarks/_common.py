"""Small helpers shared by the benchmark scripts: paths, timing, Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent          # the repository
VENV_BIN = Path(sys.executable).parent                  # run the scripts with .venv/bin/python
DEMO = ROOT / "configs" / "demo.yaml"

if str(ROOT) not in sys.path:                           # `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def law_env(store: Path) -> dict:
    """The environment of a ``law run`` subprocess that writes into ``store``."""
    return dict(os.environ, HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")


def law_run(task: str, config: Path, store: Path, *args: str) -> float:
    """Run ``law run <task> --config <config>`` (fresh interpreter); return its wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(VENV_BIN / "law"), "run", task, "--config", str(config), *args],
                          cwd=ROOT, env=law_env(store), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"law run {task} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def timed(function, repeat: int) -> list:
    """Wall times (s) of ``repeat`` calls of ``function()``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return times


def stats(times: list) -> tuple:
    """(median, min, max) of a list of times."""
    return statistics.median(times), min(times), max(times)


def markdown_table(header: list, rows: list) -> str:
    """A Markdown table; floats are printed with 3 significant decimals."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """A one-line description of where the numbers were taken."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load:.2f} at the end")
