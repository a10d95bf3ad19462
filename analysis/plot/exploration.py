"""Every region x observable as a plot: stacked MC, data on top, a data/MC ratio panel.

The input is the merged histograms of the Histograms task (``<dataset>/<region>/<observable>``
with a ``variation`` axis; only ``nominal`` is drawn) and the layout of
:func:`analysis.plot.layout.plot_layout` (processes, data, labels, colours, style). Each
plot is ``<region>_<observable>.png`` (and the style's other formats): the processes
stacked, the smallest at the bottom, with their MC statistical uncertainty hatched; the
data as points with their uncertainty; below, data/MC with the MC uncertainty band and,
for a ratio off the panel's scale (``plots.ratio_range``), an arrow at its edge pointing
the way the point lies. Without data there is no ratio panel. The figures are mplhep's
(``mplhep.comp.data_model``) in the experiment's mplhep style.

>>> from analysis.plot.layout import plot_layout
>>> [p.name for p in plot_distributions(merged, plot_layout(cfg), outdir)]
['4j1b_ht.png', '4j2b_m_bjj.png']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from analysis.names import NOMINAL, histogram_key
from analysis.plot.style import agg, experiment_label, mplhep_style, output_folder, save, unit_of, y_label
from analysis.plot.layout import exploration_stem

#: an arrow's length, as a fraction of the ratio panel's height
ARROW_LENGTH = 0.3


def nominal(h: Any) -> Any:
    """The 1D nominal histogram of a merged histogram (itself when it has no variation axis).

    >>> nominal(merged["ttbar/4j1b/ht"]).axes.name
    ('ht',)
    """
    if "variation" not in h.axes.name:
        return h
    return h[{"variation": NOMINAL}]


def distributions(merged: Mapping[str, Any], layout: Mapping) -> Iterator[dict]:
    """Per region and observable (config order): ``region``, ``observable``, ``stack``
    (``[(process, Hist)]``, processes with a histogram there) and ``data`` (a Hist or None).

    >>> from analysis.plot.layout import plot_layout
    >>> [(d["region"], d["observable"], len(d["stack"])) for d in distributions(merged, plot_layout(cfg))]
    [('4j1b', 'ht', 3), ('4j2b', 'm_bjj', 3)]
    """
    data = layout.get("data")
    for region, spec in layout["regions"].items():
        for observable in spec["observables"]:
            stack = []
            for process in layout["processes"]:
                parts = [nominal(merged[key]) for key in (histogram_key(d, region, observable)
                                                          for d in process["datasets"]) if key in merged]
                if parts:
                    stack.append((process, sum(parts[1:], start=parts[0])))
            key = histogram_key(data["dataset"], region, observable) if data else ""
            yield {"region": region, "observable": observable, "stack": stack,
                   "data": nominal(merged[key]) if key in merged else None}


def plot_distributions(merged: Mapping[str, Any], layout: Mapping, outdir: str | Path) -> list[Path]:
    """One figure per region and observable (:func:`distributions`); the files written."""
    outdir = output_folder(outdir)
    style = layout.get("style") or {}
    written: list[Path] = []
    with agg():
        import matplotlib.pyplot as plt

        plt.style.use(mplhep_style(style))             # undone by agg() on the way out
        for entry in distributions(merged, layout):
            if not entry["stack"] and entry["data"] is None:
                continue
            first = (entry["stack"][0][1] if entry["stack"] else entry["data"]).axes[0]
            described = layout.get("observables", {}).get(entry["observable"], {})
            xlabel = described.get("label") or first.label or entry["observable"]
            data = (layout["data"]["label"], entry["data"]) if entry["data"] is not None else None
            figure = data_mc_figure([(p["label"], p["color"], h) for p, h in entry["stack"]], data,
                                    xlabel=xlabel, ylabel=y_label(first.edges, described.get("unit") if described
                                                                  else unit_of(first.label)),
                                    region_label=layout["regions"][entry["region"]]["label"], style=style)
            written += save(figure, outdir / exploration_stem(entry["region"], entry["observable"]), style,
                            title=False)
    return written


def data_mc_figure(stack: Sequence[tuple[str, str, Any]], data: tuple[str, Any] | None, *, xlabel: str = "",
                   ylabel: str = "Events", region_label: str = "", style: Mapping | None = None) -> Any:
    """A stacked-MC figure: ``stack`` is ``[(label, colour, Hist)]``, ``data`` ``(label, Hist)``
    or None (no ratio panel). The ratio panel's range is the style's ``ratio_range``;
    ratios beyond it get an arrow (:func:`ratio_arrows`).

    >>> import hist
    >>> mc = hist.Hist.new.Reg(2, 0, 2).Weight().fill([0.5, 1.5], weight=[10, 10])
    >>> data = hist.Hist.new.Reg(2, 0, 2).Weight().fill([0.5, 1.5], weight=[10, 100])
    >>> figure = data_mc_figure([("ttbar", "red", mc)], ("Data", data), style={"ratio_range": [0.5, 1.5]})
    >>> len(figure.axes[1].texts)            # 100 / 10 is off the scale: one arrow
    1
    >>> import matplotlib.pyplot as plt; plt.close(figure)
    """
    import matplotlib.pyplot as plt
    import mplhep

    style = dict(style or {})
    ordered = sorted(stack, key=lambda entry: float(entry[2].values().sum()))      # the largest on top
    hists, labels, colors = [h for *_, h in ordered], [s[0] for s in ordered], [s[1] for s in ordered]
    with plt.style.context(mplhep_style(style)):
        if data is not None and hists:
            figure, ax, ratio_ax = mplhep.comp.data_model(
                data[1], stacked_components=hists, stacked_labels=labels, stacked_colors=colors,
                xlabel=xlabel, ylabel=ylabel, data_label=data[0], data_w2method=_w2method(data[1]), flow="none",
                comparison="split_ratio", comparison_ylim=tuple(style.get("ratio_range", (0.5, 1.5))),
                comparison_ylabel="Data / MC", h1_label=data[0], h2_label="MC")
            mc_total = sum(hists[1:], start=hists[0]).values()
            ratio_arrows(ratio_ax, data[1].axes[0].centers, data_mc_ratio(data[1].values(), mc_total))
        else:                                   # nothing to compare: no ratio panel
            figure, ax = plt.subplots()
            if hists:
                mplhep.histplot(hists, ax=ax, stack=True, histtype="fill", label=labels, color=colors, flow="none")
            if data is not None:
                mplhep.histplot(data[1], ax=ax, histtype="errorbar", color="black", label=data[0], flow="none",
                                w2method=_w2method(data[1]))
            ax.set_xlabel(xlabel)
        ax.legend(loc="upper right")
        ax.set_ylabel(ylabel)
        _headroom(ax, hists, data[1] if data else None, bool(style.get("log_y")))
        if region_label:
            ax.text(0.04, 0.95, region_label, transform=ax.transAxes, va="top", ha="left")
        experiment_label(ax, style)
    return figure


def ratio_arrows(ax: Any, centers: Sequence[float], ratios: Sequence[float]) -> list:
    """For each ratio outside ``ax``'s y range, an arrow at that edge pointing out of the
    panel (up for a ratio above, down for one below); NaN ratios (no MC) get none.

    >>> import matplotlib.pyplot as plt
    >>> figure, ax = plt.subplots(); ax.set_ylim(0.5, 1.5)
    (0.5, 1.5)
    >>> [a.xy for a in ratio_arrows(ax, [1.0, 2.0, 3.0], [10.0, 1.0, 0.1])]
    [(1.0, 1.47), (3.0, 0.53)]
    >>> plt.close(figure)
    """
    import math

    low, high = (float(y) for y in ax.get_ylim())
    span = high - low
    arrows = []
    for x, ratio in zip(centers, ratios):
        if math.isnan(ratio) or low <= ratio <= high:
            continue
        tip = high - 0.03 * span if ratio > high else low + 0.03 * span
        tail = tip - ARROW_LENGTH * span if ratio > high else tip + ARROW_LENGTH * span
        arrows.append(ax.annotate("", xy=(float(x), round(tip, 10)), xytext=(float(x), round(tail, 10)),
                                  arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5}))
    return arrows


def data_mc_ratio(data: Any, mc: Any) -> list[float]:
    """Data / MC per bin; NaN where the MC is not positive.

    >>> data_mc_ratio([2.0, 1.0], [1.0, 0.0])
    [2.0, nan]
    """
    import numpy as np

    data, mc = np.asarray(data, dtype=float), np.asarray(mc, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(x) for x in np.where(mc > 0, data / np.where(mc > 0, mc, 1), np.nan)]


def _w2method(h: Any) -> str:
    """Poisson intervals for counts, the stored variances for weighted (pseudo-)data."""
    import numpy as np

    values = h.values()
    return "poisson" if np.allclose(values, np.round(values)) and np.all(values >= 0) else "sqrt"


def _headroom(ax: Any, hists: list, data: Any, log_y: bool) -> None:
    """Room above the highest bin for the legend and the labels."""
    import numpy as np

    tops = [sum(h.values() for h in hists)] if hists else []
    tops += [data.values()] if data is not None else []
    top = max((float(np.max(t)) for t in tops if np.size(t)), default=1.0) or 1.0
    if log_y:
        positive = [float(np.min(t[t > 0])) for t in tops if np.any(t > 0)]
        ax.set_yscale("log")
        ax.set_ylim(min(positive, default=top) / 2, top * 100)
    else:
        ax.set_ylim(0, top * 1.6)
