"""Cutflow tables (Markdown and CSV) from the cutflows the Select task records."""

from __future__ import annotations

import csv
from pathlib import Path


def cutflow_rows(cutflows: list, labels: dict) -> tuple[list, list]:
    """Header and rows: one row per step, per dataset the events (and weighted sum for MC).

    >>> cutflow_rows([{"dataset": "tt", "steps": ["all"], "events": {"all": 5}, "weighted": {"all": 5.0}}], {})
    (['step', 'tt'], [['all', '5']])
    """
    steps: list = []
    for cutflow in cutflows:
        for step in cutflow["steps"]:
            if step not in steps:
                steps.append(step)
    header = ["step"] + [labels.get(c["dataset"], c["dataset"]) for c in cutflows]
    rows = []
    for step in steps:
        row = [step]
        for cutflow in cutflows:
            count = cutflow["events"].get(step)
            row.append("" if count is None else str(count))
        rows.append(row)
    return header, rows


def write_cutflow_tables(cutflows: list, labels: dict, outdir: Path) -> list:
    """Write ``cutflow.md`` and ``cutflow.csv`` (unweighted event counts per step)."""
    header, rows = cutflow_rows(cutflows, labels)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    (outdir / "cutflow.md").write_text("\n".join(md) + "\n")
    with open(outdir / "cutflow.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return [outdir / "cutflow.md", outdir / "cutflow.csv"]
