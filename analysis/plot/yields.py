"""Weighted yield tables per process and region, in Markdown, CSV and LaTeX.

- ``yields.md/.csv/.tex``, always: the pre-fit yields from the merged histograms, per
  region (its first observable's histogram, under- and overflow included) and process
  (:mod:`analysis.plot.layout`): the sum of weights +- sqrt(sum of squared weights), then
  the total MC and the data.
- ``yields_postfit.md/.csv/.tex``, with a fit: per channel of the fit model (its range
  and binning) and sample, the model's pre-fit and post-fit yields with their
  uncertainties, all parameters' included (post-fit: with their correlations), from
  cabinetry (``cabinetry.model_utils.prediction``), then the total and the data.

The CSV files are long tables of full-precision numbers (one row per region and
process); Markdown and LaTeX show ``value ± uncertainty`` rounded to two significant
digits of the uncertainty, processes as rows and regions as columns.

>>> from analysis.plot.layout import plot_layout
>>> [p.name for p in write_prefit_tables(prefit_yields(merged, plot_layout(cfg)), outdir)]
['yields.md', 'yields.csv', 'yields.tex']
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from analysis.names import histogram_key
from analysis.plot.exploration import nominal

TOTAL = "total"             # the process name of the total MC row
DATA = "data"               # the process name of the data row
PREFIT_FIELDS = ("region", "process", "label", "yield", "uncertainty")
POSTFIT_FIELDS = ("region", "process", "label", "prefit", "prefit_uncertainty", "postfit", "postfit_uncertainty")


def prefit_yields(merged: Mapping[str, Any], layout: Mapping) -> list[dict]:
    """Rows ``{region, process, label, yield, uncertainty}``: every process with histograms
    in a region, then ``total`` and ``data`` (when the layout has data; its uncertainty is
    sqrt of its sum of squared weights too).

    >>> from analysis.plot.layout import plot_layout
    >>> rows = prefit_yields(merged, plot_layout(cfg))
    >>> [(r["region"], r["process"]) for r in rows[:5]]
    [('4j1b', 'ttbar'), ('4j1b', 'wjets'), ('4j1b', 'single_top'), ('4j1b', 'total'), ('4j1b', 'data')]
    """
    rows = []
    data = layout.get("data")
    for region, spec in layout["regions"].items():
        if not spec["observables"]:
            continue
        observable = spec["observables"][0]
        total, total_variance, found = 0.0, 0.0, False
        for process in layout["processes"]:
            sums = [nominal(merged[key]).sum(flow=True) for key in (histogram_key(d, region, observable)
                                                                    for d in process["datasets"]) if key in merged]
            if not sums:
                continue
            value, variance = sum(s.value for s in sums), sum(s.variance for s in sums)
            rows.append(_row(region, process["name"], process["label"], value, variance))
            total, total_variance, found = total + value, total_variance + variance, True
        if found:
            rows.append(_row(region, TOTAL, "Total MC", total, total_variance))
        key = histogram_key(data["dataset"], region, observable) if data else ""
        if data and key in merged:
            s = nominal(merged[key]).sum(flow=True)
            rows.append(_row(region, DATA, data["label"], s.value, s.variance))
    return rows


def _row(region: str, process: str, label: str, value: float, variance: float) -> dict:
    return {"region": region, "process": process, "label": label, "yield": float(value),
            "uncertainty": math.sqrt(max(float(variance), 0.0))}


def fit_yields(workspace: Mapping, fit_result: Any, labels: Mapping[str, str] | None = None,
               data_label: str = "Data") -> list[dict]:
    """Rows ``{region, process, label, prefit, prefit_uncertainty, postfit, postfit_uncertainty}``
    per channel of the workspace and sample, then ``total`` and ``data`` (no uncertainties),
    from cabinetry's model predictions before and after the fit (``fit_result``: an
    :class:`analysis.stats.fitting.FitResult` of this workspace).

    >>> rows = fit_yields(ws, fit_result)
    >>> [r["process"] for r in rows if r["region"] == "4j1b CR"]
    ['single_top', 'ttbar', 'wjets', 'total', 'data']
    """
    import cabinetry

    labels = dict(labels or {})
    model, data = cabinetry.model_utils.model_and_data(dict(workspace), asimov=fit_result.asimov)
    pre = cabinetry.model_utils.prediction(model)
    post = cabinetry.model_utils.prediction(model, fit_results=fit_result.to_cabinetry())
    samples = list(model.config.samples)
    rows = []
    for c, channel in enumerate(model.config.channels):
        for s, sample in enumerate([*samples, TOTAL]):
            values = [sum(sum(p.model_yields[c][i]) for i in range(len(samples))) if sample == TOTAL
                      else sum(p.model_yields[c][s]) for p in (pre, post)]
            errors = [p.total_stdev_model_channels[c][s] for p in (pre, post)]
            rows.append({"region": channel, "process": sample,
                         "label": "Total" if sample == TOTAL else labels.get(sample, sample),
                         "prefit": float(values[0]), "prefit_uncertainty": float(errors[0]),
                         "postfit": float(values[1]), "postfit_uncertainty": float(errors[1])})
        observed = float(sum(data[model.config.channel_slices[channel]]))
        rows.append({"region": channel, "process": DATA, "label": data_label, "prefit": observed,
                     "prefit_uncertainty": None, "postfit": observed, "postfit_uncertainty": None})
    return rows


def write_prefit_tables(rows: Sequence[Mapping], outdir: str | Path, region_labels: Mapping[str, str] | None = None
                        ) -> list[Path]:
    """``yields.md``, ``yields.csv``, ``yields.tex`` of :func:`prefit_yields`' rows."""
    header, body = _wide(rows, [("yield", "uncertainty")], region_labels or {})
    return _write(Path(outdir), "yields", rows, PREFIT_FIELDS, header, body,
                  "Pre-fit yields (sum of weights ± sqrt of the sum of squared weights).")


def write_postfit_tables(rows: Sequence[Mapping], outdir: str | Path) -> list[Path]:
    """``yields_postfit.md``, ``.csv``, ``.tex`` of :func:`fit_yields`' rows."""
    header, body = _wide(rows, [("prefit", "prefit_uncertainty"), ("postfit", "postfit_uncertainty")], {})
    return _write(Path(outdir), "yields_postfit", rows, POSTFIT_FIELDS, header, body,
                  "Yields of the fit model before and after the fit (fit range and binning; "
                  "uncertainties of all parameters).")


def format_yield(value: float, uncertainty: float | None = None) -> str:
    """``value ± uncertainty``, rounded to two significant digits of the uncertainty.

    >>> format_yield(1234.5678, 12.345), format_yield(0.012345, 0.0011), format_yield(17.0)
    ('1235 ± 12', '0.0123 ± 0.0011', '17')
    """
    if uncertainty is None or not math.isfinite(uncertainty) or uncertainty <= 0:
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    decimals = min(max(0, 1 - math.floor(math.log10(uncertainty))), 8)
    return f"{value:.{decimals}f} ± {uncertainty:.{decimals}f}"


def _wide(rows: Sequence[Mapping], columns: list[tuple[str, str]], region_labels: Mapping[str, str]):
    """Processes as rows; per region one column per (value, uncertainty) pair."""
    regions = list(dict.fromkeys(r["region"] for r in rows))
    processes = list(dict.fromkeys((r["process"], r["label"]) for r in rows))
    cells = {(r["region"], r["process"]): r for r in rows}
    names = {"yield": "", "prefit": " pre-fit", "postfit": " post-fit"}
    header = ["Process"] + [f"{region_labels.get(region, region)}{names[value]}"
                            for region in regions for value, _ in columns]
    body = [[label] + [format_yield(cells[(region, process)][value], cells[(region, process)][error])
                       if (region, process) in cells else "" for region in regions for value, error in columns]
            for process, label in processes]
    return header, body


def _write(outdir: Path, stem: str, rows: Sequence[Mapping], fields: Sequence[str], header: list, body: list,
           caption: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    md = ["| " + " | ".join(_md(c) for c in header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    md += ["| " + " | ".join(_md(c) for c in line) + " |" for line in body]
    (outdir / f"{stem}.md").write_text("\n".join([*md, "", caption]) + "\n")
    with open(outdir / f"{stem}.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: ("" if row[k] is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                           for k in fields} for row in rows])
    tex = [r"% " + caption, r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(_tex(c) for c in header) + r" \\", r"\midrule"]
    tex += [" & ".join([_tex(line[0])] + [_tex_number(c) for c in line[1:]]) + r" \\" for line in body]
    tex += [r"\bottomrule", r"\end{tabular}"]
    (outdir / f"{stem}.tex").write_text("\n".join(tex) + "\n")
    return [outdir / f"{stem}.{suffix}" for suffix in ("md", "csv", "tex")]


def _md(text: str) -> str:
    return str(text).replace("|", r"\|")


def _tex(text: str) -> str:
    """Text for LaTeX: special characters escaped outside ``$...$`` (kept as math).

    >>> _tex("W+jets & 5% of $t\\\\bar{t}$")
    'W+jets \\\\& 5\\\\% of $t\\\\bar{t}$'
    """
    parts = str(text).split("$")
    escape = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
              "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    for i in range(0, len(parts), 2):           # even parts are outside math
        parts[i] = "".join(escape.get(ch, ch) for ch in parts[i])
    return "$".join(parts)


def _tex_number(cell: str) -> str:
    return "$" + cell.replace("±", r"\pm") + "$" if cell else ""
