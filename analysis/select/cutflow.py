"""Cutflow tables (Markdown and CSV) from the cutflows the Select task records."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence


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


def write_table(header: list, rows: list, outdir: Path, stem: str, footer: Sequence[str] = ()) -> list[Path]:
    """``<stem>.md`` (a Markdown table, then ``footer`` lines) and ``<stem>.csv``; their paths.

    >>> [p.name for p in write_table(["step", "n"], [["all", 3]], outdir, "t")]
    ['t.md', 't.csv']
    >>> (outdir / "t.md").read_text().splitlines()
    ['| step | n |', '|---|---|', '| all | 3 |']
    """
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    md += ["", *footer] if footer else []
    (outdir / f"{stem}.md").write_text("\n".join(md) + "\n")
    with open(outdir / f"{stem}.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return [outdir / f"{stem}.md", outdir / f"{stem}.csv"]


def write_cutflow_tables(cutflows: list, labels: dict, outdir: Path) -> list[Path]:
    """Write ``cutflow.md`` and ``cutflow.csv`` (unweighted event counts per step)."""
    header, rows = cutflow_rows(cutflows, labels)
    return write_table(header, rows, outdir, "cutflow")
