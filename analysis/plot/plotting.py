"""Fit plots as PNG files: pre-/post-fit distributions, pulls, correlations, impact ranking.

The figures are cabinetry's (``cabinetry.visualize``), drawn from the pyhf workspace and
a :class:`analysis.stats.fitting.FitResult`; this module only picks the data, names the files
predictably and writes PNGs (cabinetry itself writes PDFs under fixed names). Figures
are drawn with matplotlib's Agg backend and closed; global matplotlib settings are
restored afterwards (cabinetry changes the style).

Every function takes ``style``, the config's ``plots:`` section as
:func:`analysis.plot.style.plot_style` resolves it: ``title`` (drawn above each figure;
the limit plot shows the signal's name instead), the experiment label, luminosity and
energy (drawn above the distributions and the limit plot:
:func:`analysis.plot.style.experiment_label`), ``log_y`` (logarithmic y axis of the
distributions) and ``formats`` (file types, default ``[png]``). Samples keep the colours
of :func:`analysis.plot.style.process_colors`.

File names: ``{channel}_prefit.png`` / ``{channel}_postfit.png`` (channel name with
characters other than letters, digits, ``_+-`` replaced by ``-``: "4j1b CR" ->
``4j1b-CR_prefit.png``), ``pulls.png``, ``correlation_matrix.png``, ``ranking.png``.

>>> plot_pulls(fit_result, outdir)                   # doctest: +ELLIPSIS
[PosixPath('/.../pulls.png')]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from analysis.plot.style import agg as _agg, experiment_label, file_stem, output_folder as _outdir, \
    process_colors, save as _save, unit_of, y_label
from analysis.plot.exploration import data_mc_ratio, ratio_arrows
from analysis.stats.fitting import FitResult, Ranking, pulls
from analysis.stats.limits import LimitResult

RANKING_MAX_PARS = 20               # parameters shown in the impact ranking plot
TITLE_BAND = 0.5                    # inches added above the ranking's legend for the title


def plot_prefit_postfit(workspace: Mapping, fit_result: FitResult, outdir: str | Path, *,
                        config: Mapping | None = None, labels: Mapping[str, str] | None = None,
                        colors: Mapping[str, str] | None = None, data_label: str | None = None,
                        style: Mapping | None = None) -> list[Path]:
    """Per channel: stacked pre-fit and post-fit prediction, data, ratio panel and band.

    The data is the one that was fitted (Asimov data if ``fit_result.asimov``), in the
    legend as ``data_label`` (default "Data"). Optional: ``config`` (the cabinetry config of
    :func:`analysis.stats.statmodel.cabinetry_config`, for real bin edges, the axis title
    and the bin width in the y label), ``labels``/``colors`` (sample name -> legend label /
    matplotlib colour; default colours: :func:`analysis.plot.style.process_colors`).

    >>> [p.name for p in plot_prefit_postfit(ws, fit_result, outdir)]
    ['4j1b-CR_prefit.png', '4j1b-CR_postfit.png', '4j2b-SR_prefit.png', '4j2b-SR_postfit.png']
    """
    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        model, data = cabinetry.model_utils.model_and_data(dict(workspace), asimov=fit_result.asimov)
        if list(fit_result.labels) != list(model.config.par_names):
            raise ValueError("the fit result's parameters do not match the workspace's model")
        colors = {**process_colors(model.config.samples), **(colors or {})}
        predictions = [
            ("prefit", cabinetry.model_utils.prediction(model)),
            ("postfit", cabinetry.model_utils.prediction(model, fit_results=fit_result.to_cabinetry())),
        ]
        figures: dict[str, list] = {}
        for tag, prediction in predictions:
            for entry in cabinetry.visualize.data_mc(
                    prediction, data, config=dict(config) if config else None, colors=colors,
                    log_scale=(style or {}).get("log_y"),
                    save_figure=False, close_figure=False) or []:
                figures.setdefault(entry["region"], []).append((tag, entry["figure"], prediction))
        regions = {region["Name"]: region for region in (config or {}).get("Regions", [])}
        written = []
        for channel in model.config.channels:                 # pyhf order (sorted)
            for tag, figure, prediction in figures.get(channel, []):
                _relabel(figure, {**(labels or {}), "Data": data_label or "Data"})
                edges = regions[channel]["Binning"] if channel in regions else None
                if edges is not None:
                    figure.axes[0].set_ylabel(y_label(edges, unit_of(regions[channel].get("Variable"))))
                _ratio_arrows(figure, prediction, data, channel, edges)
                experiment_label(figure.axes[0], style)
                written += _save(figure, outdir / f"{file_stem(channel)}_{tag}", style)
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
    ``max_pars`` most important parameters (None: all), as the AGC shows it. The style's
    title goes above the legend (a band added to the figure's top), never over it.

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
        title = (style or {}).get("title")
        if title:
            title_above_legend(figure, str(title))
        return _save(figure, outdir / "ranking", style, title=False)


def title_above_legend(figure: Any, title: str, band: float = TITLE_BAND) -> None:
    """Make the figure ``band`` inches taller at the top and write ``title`` there, above
    the legend that cabinetry's ranking anchors to the figure's top edge.

    >>> import matplotlib.pyplot as plt
    >>> figure = plt.figure(figsize=(8, 4), layout="constrained")
    >>> _ = figure.legend([plt.Line2D([], [])], ["x"], loc="upper left")
    >>> title_above_legend(figure, "My analysis"); float(figure.get_figheight()), figure.texts[-1].get_text()
    (4.5, 'My analysis')
    >>> plt.close(figure)
    """
    height = figure.get_figheight()
    figure.set_figheight(height + band)
    shift = band / (height + band)
    for legend in figure.legends:
        legend.set_bbox_to_anchor((0, 1 - shift), transform=figure.transFigure)
    engine = figure.get_layout_engine()
    rect = (engine.get() if engine is not None else {}).get("rect")
    if rect is not None:                  # the axes stay where they were below the legend
        left, bottom, width, tall = rect
        engine.set(rect=(left, bottom * (1 - shift), width, tall * (1 - shift)))
    figure.text(0.5, 1 - shift / 2, title, ha="center", va="center", fontsize="x-large")


def plot_limit(result: LimitResult, outdir: str | Path, *, signal: str | None = None,
               poi_label: str = r"Signal strength $\mu$", style: Mapping | None = None) -> list[Path]:
    """CLs versus the signal strength: observed, expected with its 1 and 2 sigma bands, and
    the CLs = 1 - CL line (``cabinetry.visualize.limit``) of an :class:`analysis.stats.limits.LimitResult`.
    The title is ``signal`` (the signal's name; default: the style's title), the x axis
    ``poi_label``.

    >>> [p.name for p in plot_limit(limit_result, outdir, signal="Z' (750 GeV)")]
    ['limit.png']
    """
    from analysis.stats.limits import to_cabinetry

    with _agg():
        import cabinetry

        outdir = _outdir(outdir)
        figure = cabinetry.visualize.limit(to_cabinetry(result), save_figure=False, close_figure=False)
        figure.axes[0].set_xlabel(poi_label)
        experiment_label(figure.axes[0], style)
        style = dict(style or {})
        if signal:
            style["title"] = signal
        return _save(figure, outdir / "limit", style)


# ---- helpers ------------------------------------------------------------------------
def _relabel(figure, labels: Mapping[str, str]) -> None:
    for ax in figure.axes:
        legend = ax.get_legend()
        for text in legend.get_texts() if legend else []:
            text.set_text(labels.get(text.get_text(), text.get_text()))


def _ratio_arrows(figure, prediction, data, channel: str, edges) -> None:
    """Arrows for the data/model ratios beyond the ratio panel of cabinetry's figure."""
    import numpy as np

    config = prediction.model.config
    total = np.sum(np.asarray(prediction.model_yields[config.channels.index(channel)]), axis=0)
    observed = np.asarray(data[config.channel_slices[channel]], dtype=float)
    edges = np.asarray(edges, dtype=float) if edges is not None else np.arange(len(total) + 1, dtype=float)
    ratio_arrows(figure.axes[1], 0.5 * (edges[1:] + edges[:-1]), data_mc_ratio(observed, total))
