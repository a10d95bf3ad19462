"""Fit plots as PNG files: pre-/post-fit distributions, pulls, correlations, impact ranking.

The figures are cabinetry's (``cabinetry.visualize``), drawn from the pyhf workspace and
a :class:`analysis.stats.fitting.FitResult`; this module only picks the data, names the files
predictably and writes PNGs (cabinetry itself writes PDFs under fixed names). Figures
are drawn with matplotlib's Agg backend and closed; global matplotlib settings are
restored afterwards (cabinetry changes the style).

Every function takes ``style``, the config's ``plots:`` section: ``title`` (drawn above
each figure), ``cms_label`` (e.g. "Simulation Preliminary", drawn as "CMS <label>" in
the top-left corner of the distributions), ``log_y`` (logarithmic y axis of the
distributions) and ``formats`` (file types, default ``[png]``).

File names: ``{channel}_prefit.png`` / ``{channel}_postfit.png`` (channel name with
characters other than letters, digits, ``_+-`` replaced by ``-``: "4j1b CR" ->
``4j1b-CR_prefit.png``), ``pulls.png``, ``correlation_matrix.png``, ``ranking.png``.

>>> plot_pulls(fit_result, outdir)                   # doctest: +ELLIPSIS
[PosixPath('/.../pulls.png')]
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator, Mapping

from analysis.stats.fitting import FitResult, Ranking, pulls
from analysis.stats.limits import LimitResult

DPI = 120
RANKING_MAX_PARS = 20               # parameters shown in the impact ranking plot


def plot_prefit_postfit(workspace: Mapping, fit_result: FitResult, outdir: str | Path, *,
                        config: Mapping | None = None, labels: Mapping[str, str] | None = None,
                        colors: Mapping[str, str] | None = None, style: Mapping | None = None) -> list[Path]:
    """Per channel: stacked pre-fit and post-fit prediction, data, ratio panel and band.

    The data is the one that was fitted (Asimov data if ``fit_result.asimov``). Optional:
    ``config`` (the cabinetry config of :func:`analysis.stats.statmodel.cabinetry_config`, for
    real bin edges and the axis title), ``labels``/``colors`` (sample name -> legend
    label / matplotlib colour; colours must cover every sample).

    >>> [p.name for p in plot_prefit_postfit(ws, fit_result, outdir)]
    ['4j1b-CR_prefit.png', '4j1b-CR_postfit.png', '4j2b-SR_prefit.png', '4j2b-SR_postfit.png']
    """
    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        model, data = cabinetry.model_utils.model_and_data(dict(workspace), asimov=fit_result.asimov)
        if list(fit_result.labels) != list(model.config.par_names):
            raise ValueError("the fit result's parameters do not match the workspace's model")
        predictions = [
            ("prefit", cabinetry.model_utils.prediction(model)),
            ("postfit", cabinetry.model_utils.prediction(model, fit_results=fit_result.to_cabinetry())),
        ]
        figures: dict[str, list] = {}
        for tag, prediction in predictions:
            for entry in cabinetry.visualize.data_mc(
                    prediction, data, config=dict(config) if config else None, colors=dict(colors) if colors else None,
                    log_scale=(style or {}).get("log_y"),
                    save_figure=False, close_figure=False) or []:
                figures.setdefault(entry["region"], []).append((tag, entry["figure"]))
        written = []
        for channel in model.config.channels:                 # pyhf order (sorted)
            for tag, figure in figures.get(channel, []):
                if labels:
                    _relabel(figure, labels)
                _experiment_label(figure, style)
                written += _save(figure, outdir / f"{_safe(channel)}_{tag}", style)
        return written


def plot_pulls(fit_result: FitResult, outdir: str | Path, *, style: Mapping | None = None) -> list[Path]:
    """Pull plot of the constrained nuisance parameters (those of :func:`fitting.pulls`).

    >>> [p.name for p in plot_pulls(fit_result, outdir, style={"formats": ["png", "pdf"]})]
    ['pulls.png', 'pulls.pdf']
    """
    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        shown = {name for name, _, _ in pulls(fit_result)}
        if not shown:
            return []
        exclude = [name for name in fit_result.labels if name not in shown]
        figure = cabinetry.visualize.pulls(fit_result.to_cabinetry(), exclude=exclude,
                                           save_figure=False, close_figure=False)
        return _save(figure, outdir / "pulls", style)


def plot_correlation(fit_result: FitResult, outdir: str | Path, *, pruning_threshold: float = 0.0,
                     style: Mapping | None = None) -> list[Path]:
    """Correlation matrix of the fitted parameters (fixed ones left out).

    ``pruning_threshold``: drop parameters whose correlations with all others are smaller.

    >>> [p.name for p in plot_correlation(fit_result, outdir, pruning_threshold=0.2)]
    ['correlation_matrix.png']
    """
    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        figure = cabinetry.visualize.correlation_matrix(
            fit_result.to_cabinetry(), pruning_threshold=pruning_threshold,
            save_figure=False, close_figure=False)
        return _save(figure, outdir / "correlation_matrix", style)


def plot_ranking(ranking: Ranking, outdir: str | Path, *, max_pars: int | None = RANKING_MAX_PARS,
                 style: Mapping | None = None) -> list[Path]:
    """Impact ranking: pre-/post-fit impacts on the POI (bars) and pulls (points) of the
    ``max_pars`` most important parameters (None: all), as the AGC shows it.

    >>> [p.name for p in plot_ranking(ranking, outdir)]        # a ranking of 3 parameters
    ['ranking.png']
    """
    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        if not ranking.labels:
            return []
        figure = cabinetry.visualize.ranking(ranking.to_cabinetry(), max_pars=max_pars,
                                             save_figure=False, close_figure=False)
        return _save(figure, outdir / "ranking", style)


def plot_limit(result: LimitResult, outdir: str | Path, *, style: Mapping | None = None) -> list[Path]:
    """CLs versus the signal strength: observed, expected with its 1 and 2 sigma bands, and
    the CLs = 1 - CL line (``cabinetry.visualize.limit``) of an :class:`analysis.stats.limits.LimitResult`.

    >>> [p.name for p in plot_limit(limit_result, outdir)]
    ['limit.png']
    """
    from analysis.stats.limits import to_cabinetry

    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        figure = cabinetry.visualize.limit(to_cabinetry(result), save_figure=False, close_figure=False)
        figure.axes[0].set_xlabel(result.poi)
        return _save(figure, outdir / "limit", style)


# ---- helpers ------------------------------------------------------------------------
@contextlib.contextmanager
def _agg() -> Iterator[None]:
    """Agg backend, and matplotlib's global settings restored afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context():
        yield


def _outdir(outdir: str | Path) -> Path:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]", "-", name)


def _relabel(figure, labels: Mapping[str, str]) -> None:
    for ax in figure.axes:
        legend = ax.get_legend()
        for text in legend.get_texts() if legend else []:
            text.set_text(labels.get(text.get_text(), text.get_text()))


def _experiment_label(figure, style: Mapping | None) -> None:
    label = (style or {}).get("cms_label")
    if label is not None:
        ax = figure.axes[0]
        ax.text(0.02, 0.97, "CMS", transform=ax.transAxes, va="top", fontweight="bold", fontsize="large")
        ax.text(0.13, 0.97, label, transform=ax.transAxes, va="top", style="italic")


def _save(figure, stem: Path, style: Mapping | None) -> list[Path]:
    """Write ``figure`` as ``stem.<format>`` for each of the style's formats, then close it."""
    import matplotlib.pyplot as plt

    style = style or {}
    written = []
    try:
        if style.get("title"):
            figure.suptitle(style["title"])
        for fmt in style.get("formats") or ["png"]:
            path = stem.with_name(f"{stem.name}.{fmt}")
            figure.savefig(path, dpi=DPI)
            written.append(path)
    finally:
        plt.close(figure)
    return written
