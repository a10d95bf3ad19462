"""The task graph: task families as boxes (how many of their tasks are complete) with
arrows to the families that need them, then one table per family.

>>> from analysis.report.model import COMPLETE, NOT_RUN, Report, TaskEntry
>>> report = Report("demo", "c.yaml", "store", "now", (TaskEntry("Skim", "ttbar__0", COMPLETE),
...     TaskEntry("Select", "ttbar", NOT_RUN, requires=(("Skim", "ttbar__0"),))))
>>> depths(report)
{'Skim': 0, 'Select': 1}
>>> svg = family_graph(report, {"Skim": "family-Skim", "Select": "family-Select"})
>>> svg.count("<rect"), 'href="#family-Select"' in svg
(2, True)
"""

from __future__ import annotations

from analysis.report.html import Html, join, table, tag, void
from analysis.report.model import COMPLETE, DAMAGED, NOT_RUN, Report, TaskEntry

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 52, 50, 18, 8
COLOURS = {"all": "#d4edda", "some": "#fff3cd", "none": "#e9ecef", "damaged": "#f8d7da"}


def family_needs(report: Report) -> dict[str, list[str]]:
    """For each family, the families its tasks need (in family order)."""
    order = report.family_order()
    needs: dict[str, set[str]] = {family: set() for family in order}
    for task in report.tasks:
        needs[task.family].update(f for f, _ in task.requires if f != task.family and f in needs)
    return {family: sorted(found, key=order.index) for family, found in needs.items()}


def depths(report: Report) -> dict[str, int]:
    """The column of each family: one more than the deepest family it needs (a cycle,
    which a DAG cannot have, is cut where it closes)."""
    needs = family_needs(report)
    found: dict[str, int] = {}

    def depth(family: str, path: tuple[str, ...]) -> int:
        if family not in found:
            below = [depth(f, path + (family,)) for f in needs[family] if f not in path]
            found[family] = 1 + max(below) if below else 0
        return found[family]

    for family in report.family_order():
        depth(family, ())
    return found


def state(report: Report, family: str) -> str:
    """``all`` complete, ``some``, ``none``, or ``damaged`` (any damaged task)."""
    counts = report.counts(family)
    if counts[DAMAGED]:
        return "damaged"
    if counts[COMPLETE] == sum(counts.values()):
        return "all"
    return "some" if counts[COMPLETE] else "none"


def family_graph(report: Report, family_ids: dict[str, str]) -> Html:
    """An inline SVG of the families; each box links to its family's table."""
    columns: dict[int, list[str]] = {}
    for family, column in depths(report).items():
        columns.setdefault(column, []).append(family)
    place = {family: (PAD + column * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
             for column, members in columns.items() for row, family in enumerate(members)}
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (BOX_H + GAP_Y) - GAP_Y
    arrow = tag("defs", tag("marker", tag("path", d="M0,0 L8,4 L0,8 z", fill="#555"), id="arrow",
                            markerWidth=8, markerHeight=8, refX=8, refY=4, orient="auto"))
    edges = [void("line", x1=place[dep][0] + BOX_W, y1=place[dep][1] + BOX_H // 2, x2=place[family][0],
                  y2=place[family][1] + BOX_H // 2, stroke="#555", marker_end="url(#arrow)")
             for family, deps in family_needs(report).items() for dep in deps]
    boxes = [_box(report, family, place[family], family_ids[family]) for family in report.family_order()]
    return tag("svg", join([arrow, *edges, *boxes]), xmlns="http://www.w3.org/2000/svg", width=width,
               height=height, viewBox=f"0 0 {width} {height}", role="img", aria_label="task families")


def _box(report: Report, family: str, at: tuple[int, int], anchor: str) -> Html:
    x, y = at
    counts = report.counts(family)
    total = sum(counts.values())
    line = f"{counts[COMPLETE]}/{total} complete" + (f", {counts[DAMAGED]} damaged" if counts[DAMAGED] else "")
    shape = void("rect", x=x, y=y, width=BOX_W, height=BOX_H, rx=6, fill=COLOURS[state(report, family)],
                 stroke="#444")
    title = tag("text", family, x=x + BOX_W // 2, y=y + 21, text_anchor="middle", font_weight="bold")
    sub = tag("text", line, x=x + BOX_W // 2, y=y + 40, text_anchor="middle", font_size=12)
    return tag("a", join([tag("title", f"{family}: {line}"), shape, title, sub]), href=f"#{anchor}")


def family_tables(report: Report, ids: dict[tuple[str, str], str], family_ids: dict[str, str]) -> Html:
    """Per family: its counts, then each task with its status, key and what is wrong."""
    parts = []
    for family in report.family_order():
        members = [t for t in report.tasks if t.family == family]
        counts = report.counts(family)
        summary = f"{len(members)} task{'s' if len(members) != 1 else ''}: " + ", ".join(
            f"{n} {status}" for status, n in counts.items())
        rows = [[tag("a", t.label, href=f"#{ids[t.ident]}"), status_badge(t), (t.key or "unknown")[:12],
                 _finished(t), t.problem or t.note or ""] for t in members]
        grid = table(["task", "status", "key", "finished", "problem"], rows, class_="data")
        parts.append(tag("section", join([tag("h3", family), tag("p", summary), grid]),
                         id=family_ids[family], class_="family"))
    return join(parts)


def status_badge(task: TaskEntry) -> Html:
    """The status as a coloured label.

    >>> str(status_badge(TaskEntry("Fit", "all", "not run")))
    '<span class="status not-run">not run</span>'
    """
    return tag("span", task.status, class_=f"status {task.status.replace(' ', '-')}")


def _finished(task: TaskEntry) -> str:
    record = task.provenance or {}
    return str(record.get("finished", ""))[:19].replace("T", " ") if task.status != NOT_RUN else ""
