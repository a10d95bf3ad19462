"""The files a task made, as HTML: Markdown and CSV tables, and JSON results.

Results are recognised by their ``format`` (``heirloom.fit-result``, ``heirloom.ranking``;
any other ``heirloom.*`` record shows its plain fields), never by the task that wrote
them, so a new task's results appear without a change here.

>>> str(markdown("| step | n |\\n|---|---|\\n| all | 5 |"))
'<table class="data"><thead><tr><th>step</th><th>n</th></tr></thead><tbody><tr><td>all</td><td>5</td></tr></tbody></table>'
>>> "&lt;script&gt;" in result({"format": "heirloom.limit", "poi": "<script>", "observed": 0.8})
True
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Callable, Iterable, Mapping

from analysis.report.html import Html, fields, join, number, table, tag

#: rows of a parameter table shown at most (the rest is counted)
MAX_ROWS = 60
_SEPARATOR = re.compile(r"^:?-{3,}:?$")


def markdown(text: str) -> Html:
    """Markdown as the tasks write it: pipe tables, ``#`` headings and plain lines; anything
    else is shown as text (never as markup).

    >>> str(markdown("# Yields\\nprefit, <i>weighted</i>"))
    '<h4>Yields</h4><p>prefit, &lt;i&gt;weighted&lt;/i&gt;</p>'
    """
    blocks: list[Html] = []
    lines: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            blocks.append(_pipe_table(rows))
            rows.clear()
        if lines:
            blocks.append(tag("p", " ".join(lines)))
            lines.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            if lines:
                flush()
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif line.startswith("#"):
            flush()
            blocks.append(tag("h4", line.lstrip("#").strip()))
        elif line:
            if rows:
                flush()
            lines.append(line)
        else:
            flush()
    flush()
    return join(blocks)


def _pipe_table(rows: list[list[str]]) -> Html:
    """A Markdown pipe table: a header when the second row is a separator (``|---|``)."""
    header: list[str] = []
    if len(rows) > 1 and rows[1] and all(_SEPARATOR.match(cell) for cell in rows[1]):
        header, rows = rows[0], rows[2:]
    rows = [row for row in rows if not (row and all(_SEPARATOR.match(cell) for cell in row))]
    return table(header, rows, class_="data")


def csv_table(text: str) -> Html:
    """A CSV file (first row: the header) as a table.

    >>> str(csv_table("step,n\\nall,5\\n"))
    '<table class="data"><thead><tr><th>step</th><th>n</th></tr></thead><tbody><tr><td>all</td><td>5</td></tr></tbody></table>'
    """
    rows = list(csv.reader(io.StringIO(text)))
    return table(rows[0] if rows else [], rows[1:], class_="data")


def is_result(data: object) -> bool:
    """Whether parsed JSON is a Heirloom result record (``format: heirloom.*``).

    >>> is_result({"format": "heirloom.ranking"}), is_result({"channels": []}), is_result([1])
    (True, False, False)
    """
    return isinstance(data, dict) and str(data.get("format", "")).startswith("heirloom.")


def result(data: Mapping[str, Any]) -> Html:
    """A result record as HTML: the fit and the ranking in tables of their own, any other
    format as its plain fields (a record that does not hold what its format promises is
    shown as plain fields too).

    >>> "ttbar_norm = 1.083 ± 0.1234" in result({"format": "heirloom.fit-result", "poi": "ttbar_norm",
    ...     "bestfit": 1.0831, "uncertainty": 0.12341, "labels": [], "values": [], "errors": [], "kinds": []})
    True
    """
    special: dict[str, Callable[[Mapping[str, Any]], Html]] = {
        "heirloom.fit-result": fit_result, "heirloom.ranking": ranking}
    render = special.get(str(data.get("format")))
    if render is not None:
        try:
            return render(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            pass
    return fields(plain_fields(data))


def plain_fields(data: Mapping[str, Any], prefix: str = "", depth: int = 2) -> list[tuple[str, str]]:
    """(name, value) of the scalar fields of a record, nested mappings flattened (``a.b``),
    short numeric lists written out, longer ones counted.

    >>> plain_fields({"format": "heirloom.limit", "poi": "mu", "expected": [0.5, 1.0], "scan": {"points": 11}})
    [('poi', 'mu'), ('expected', '0.5, 1'), ('scan.points', '11')]
    """
    out: list[tuple[str, str]] = []
    for name, value in data.items():
        if not prefix and name in ("format", "version"):
            continue
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out += plain_fields(value, f"{full}.", depth - 1) if depth > 1 else [(full, f"({len(value)} entries)")]
        elif isinstance(value, (list, tuple)):
            flat = all(v is None or isinstance(v, (int, float, str)) for v in value)
            out.append((full, ", ".join(number(v) for v in value) if flat and len(value) <= 12
                        else f"(a list of {len(value)})"))
        else:
            out.append((full, number(value)))
    return out


def fit_result(data: Mapping[str, Any]) -> Html:
    """The fit: the POI with its Hessian and MINOS errors, the fit's quality, every parameter."""
    poi = str(data["poi"])
    minos = (data.get("minos") or {}).get(poi)
    headline: list[object] = [tag("strong", f"{poi} = {number(data['bestfit'])} ± {number(data['uncertainty'])}")]
    if minos:
        headline.append(f" (MINOS {number(minos[0])} / +{number(minos[1])})")
    extra = data.get("extra") or {}
    check = extra.get("hessian_check") if isinstance(extra, Mapping) else None
    quality = [("converged", number(data.get("converged"))),
               ("goodness of fit (saturated-model p-value)", number(data.get("goodness_of_fit"))),
               ("-2 log L at the minimum", number(data.get("best_twice_nll"))),
               ("MINUIT strategy", number(data.get("strategy"))),
               ("Asimov data", number(data.get("asimov")))]
    if isinstance(check, Mapping) and "poi_uncertainty" in check:
        quality.append(("POI error by finite differences", number(check["poi_uncertainty"])))
    minos_all = data.get("minos") or {}
    rows = [[label, kind, number(value), number(error),
             " / ".join(number(x) for x in minos_all[label]) if label in minos_all else ""]
            for label, kind, value, error in zip(data["labels"], data["kinds"], data["values"], data["errors"])]
    return join([tag("p", join(headline), class_="headline"), fields(quality),
                 _collapsed(f"{len(rows)} parameters",
                            table(["parameter", "kind", "best fit", "Hessian error", "MINOS down / up"],
                                  rows[:MAX_ROWS], class_="data"), _more(rows))])


def ranking(data: Mapping[str, Any]) -> Html:
    """The impact ranking, most important parameter first (as the record orders them)."""
    columns = [data[name] for name in ("labels", "postfit_up", "postfit_down", "prefit_up", "prefit_down",
                                       "bestfit", "uncertainty")]
    rows = [[label, number(pu), number(pd), number(qu), number(qd), f"{number(b)} ± {number(u)}"]
            for label, pu, pd, qu, qd, b, u in zip(*columns)]
    header = [f"parameter (impact on {data['poi']})", "post-fit +1σ", "post-fit −1σ", "pre-fit +1σ",
              "pre-fit −1σ", "best fit ± error"]
    return join([table(header, rows[:MAX_ROWS], class_="data"), _more(rows)])


def _more(rows: list) -> Html:
    return tag("p", f"... and {len(rows) - MAX_ROWS} more", class_="note") if len(rows) > MAX_ROWS else Html("")


def _collapsed(summary: str, *body: Html) -> Html:
    return tag("details", join([tag("summary", summary), *body]))


def files_by_stem(names: Iterable[str]) -> dict[str, list[str]]:
    """Table files grouped by name without suffix (``cutflow.md`` with ``cutflow.csv``).

    >>> files_by_stem(["cutflow.csv", "cutflow.md", "yields.tex", "a.png"])
    {'cutflow': ['cutflow.csv', 'cutflow.md'], 'yields': ['yields.tex']}
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        stem, _, suffix = name.rpartition(".")
        if suffix.lower() in ("md", "csv", "tex"):
            groups.setdefault(stem, []).append(name)
    return groups
