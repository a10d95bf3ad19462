"""The exclusion of a CLs scan: contours and CLs map in a plane of two labels, and the table.

``plot_exclusion`` draws, for the points that pass ``fix`` (e.g. ``{m_neutralino1: 60}``),
the observed CLs of each point as a colour map, and the contours CLs = 0.05 of the
observed CLs (solid), of the expected median (dashed) and of the expected +-1 sigma
(dotted), interpolated in log(CLs) on a Delaunay triangulation of the points. With one
label (no ``y``), it draws CLs against ``x`` with the expected band instead.
``write_tables`` writes every point as Markdown and CSV.

>>> [p.name for p in plot_exclusion(points, outdir, x="m_sbottom", y="m_neutralino2")]   # a 3 x 3 grid
['exclusion.png']
>>> [p.name for p in plot_exclusion(points, outdir, x="m_sbottom", fix={"m_neutralino2": 100})]
['exclusion.png']
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from analysis.likelihood.cls_scan import CLS_LIMIT, PointCLs
from analysis.select.cutflow import write_table

DPI = 150
CLS_FLOOR = 1e-6                        # CLs below this is drawn (and interpolated) as this


def select(points: list[PointCLs], fix: Mapping | None) -> list:
    """The points whose values equal ``fix`` (label -> value).

    >>> p = [PointCLs("a", {"m1": 1, "m2": 60}, 0.1, (0,) * 5), PointCLs("b", {"m1": 1, "m2": 70}, 0.1, (0,) * 5)]
    >>> [q.name for q in select(p, {"m2": 60})]
    ['a']
    """
    return [p for p in points if all(p.values[k] == v for k, v in (fix or {}).items())]


def plot_exclusion(points: list[PointCLs], outdir: str | Path, *, x: str, y: str | None = None, fix: Mapping | None = None,
                   style: Mapping | None = None) -> list:
    """Write ``exclusion.<format>`` for each of ``style["formats"]`` (default png); return the paths.

    ``style``: ``x_label``, ``y_label``, ``title``, ``experiment_label`` (top-left text), ``formats``.
    """
    style = dict(style or {})
    chosen = select(points, fix)
    if not chosen:
        raise ValueError(f"no point has {dict(fix or {})}: nothing to draw")
    with _agg():
        import matplotlib.pyplot as plt
        import mplhep

        plt.style.use(mplhep.style.ROOT)
        figure, ax = plt.subplots(figsize=(9, 7))
        if y is None:
            _draw_1d(ax, chosen, x)
        else:
            _draw_2d(figure, ax, chosen, x, y)
        ax.set_xlabel(style.get("x_label", x))
        ax.set_ylabel(style.get("y_label", y or "CLs"))
        title = style.get("title") or ", ".join(f"{k} = {v}" for k, v in (fix or {}).items())
        if style.get("experiment_label"):
            ax.text(0.03, 0.97, style["experiment_label"], transform=ax.transAxes, va="top", ha="left",
                    fontweight="bold")
        if title:
            ax.set_title(title, fontsize=14)
        written = []
        for fmt in style.get("formats") or ["png"]:
            path = Path(outdir) / f"exclusion.{fmt}"
            figure.savefig(path, dpi=DPI, bbox_inches="tight")
            written.append(path)
        plt.close(figure)
    return written


def _draw_2d(figure, ax, points: list[PointCLs], x: str, y: str) -> None:
    import matplotlib.colors as colors
    import numpy as np

    xs = np.array([p.values[x] for p in points], dtype=float)
    ys = np.array([p.values[y] for p in points], dtype=float)
    observed = np.clip([p.cls_obs for p in points], CLS_FLOOR, 1)
    dots = ax.scatter(xs, ys, c=observed, cmap="viridis", norm=colors.LogNorm(vmin=max(observed.min(), 1e-4), vmax=1),
                      s=36, edgecolors="none", zorder=3)
    figure.colorbar(dots, ax=ax, label="observed CLs")
    excluded = np.array([p.excluded for p in points])
    ax.scatter(xs[excluded], ys[excluded], marker="X", facecolors="white", edgecolors="black", s=22,
               linewidths=0.5, zorder=4)
    triangulation = _triangulation(xs, ys)
    handles = []
    if triangulation is not None:
        lines = (("observed", [p.cls_obs for p in points], dict(colors="red", linewidths=2.5, linestyles="solid")),
                 ("expected", [p.cls_exp[2] for p in points], dict(colors="black", linewidths=2, linestyles="dashed")),
                 ("expected $\\pm 1\\sigma$", [p.cls_exp[1] for p in points],
                  dict(colors="orange", linewidths=1.5, linestyles="dotted")),
                 (None, [p.cls_exp[3] for p in points], dict(colors="orange", linewidths=1.5, linestyles="dotted")))
        for label, values, line_style in lines:
            logs = np.log10(np.clip(values, CLS_FLOOR, 1))
            if logs.min() < math.log10(CLS_LIMIT) < logs.max():
                ax.tricontour(triangulation, logs, levels=[math.log10(CLS_LIMIT)], zorder=5, **line_style)
                if label:
                    handles.append(_line(label, line_style))
    if excluded.any():
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="X", markerfacecolor="white", markeredgecolor="black", linestyle="none",
                              label="excluded (observed)"))
    ax.legend(handles=handles, loc="best", fontsize=12, title=f"CLs = {CLS_LIMIT}", title_fontsize=12)
    for axis, coords in (("x", xs), ("y", ys)):        # a margin: the points on the edge stay visible
        pad = 0.04 * ((coords.max() - coords.min()) or 1.0)
        getattr(ax, f"set_{axis}lim")(coords.min() - pad, coords.max() + pad)


def _triangulation(xs, ys):
    """A Delaunay triangulation of the points, or None where there is none (< 3 or collinear)."""
    import matplotlib.tri as mtri

    if len(xs) < 3:
        return None
    try:
        return mtri.Triangulation(xs, ys)
    except (ValueError, RuntimeError):      # qhull: all points on a line
        return None


def _line(label: str, line_style: dict):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=line_style["colors"], linewidth=line_style["linewidths"],
                  linestyle=line_style["linestyles"], label=label)


def _draw_1d(ax, points: list[PointCLs], x: str) -> None:
    import numpy as np

    ordered = sorted(points, key=lambda p: p.values[x])
    xs = np.array([p.values[x] for p in ordered], dtype=float)
    band = np.array([p.cls_exp for p in ordered])
    ax.fill_between(xs, band[:, 0], band[:, 4], color="yellow", label="expected $\\pm 2\\sigma$")
    ax.fill_between(xs, band[:, 1], band[:, 3], color="limegreen", label="expected $\\pm 1\\sigma$")
    ax.plot(xs, band[:, 2], "k--", label="expected")
    ax.plot(xs, [p.cls_obs for p in ordered], "ko-", label="observed")
    ax.axhline(CLS_LIMIT, color="red", label=f"CLs = {CLS_LIMIT}")
    ax.set_yscale("log")
    ax.legend(loc="lower right", fontsize=12)


@contextmanager
def _agg() -> Iterator[None]:
    """Agg backend, and matplotlib's global settings restored afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context():
        yield


# ---- the table --------------------------------------------------------------------------------
def table_rows(points: list[PointCLs], labels: Sequence[str]) -> tuple:
    """(header, rows) of the table: name, the labels, observed CLs, the expected band, flags.

    >>> table_rows([PointCLs("a_1", {"m": 1}, 0.01, (0.1, 0.2, 0.3, 0.4, 0.5))], ["m"])[1]
    [['a_1', 1, '0.01000', '0.1000', '0.2000', '0.3000', '0.4000', '0.5000', 'yes', 'no']]
    """
    header = ["point", *labels, "CLs observed", "expected -2σ", "expected -1σ", "expected", "expected +1σ",
              "expected +2σ", "excluded", "excluded (expected)"]
    rows = [[p.name, *(p.values[label] for label in labels), f"{p.cls_obs:.5f}", *(f"{v:.4f}" for v in p.cls_exp),
             "yes" if p.excluded else "no", "yes" if p.excluded_expected else "no"] for p in points]
    return header, rows


def write_tables(points: list[PointCLs], labels: Sequence[str], outdir: str | Path) -> list:
    """``cls_table.md`` and ``cls_table.csv`` of every point; returns their paths."""
    header, rows = table_rows(points, labels)
    excluded = sum(p.excluded for p in points)
    return write_table(header, rows, Path(outdir), "cls_table",
                       [f"{excluded} of {len(points)} points excluded at 95 % CL (observed CLs < {CLS_LIMIT})."])
