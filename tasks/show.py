"""``heirloom show``: where the results of an analysis are, with the fit result, the
significance, the ranking, the limit or the CLs scan. For a remote store the objects it
shows are fetched into the local cache first."""

from __future__ import annotations

import json

from analysis.errors import StoreError
from analysis.store import integrity


def show(config: str) -> list[str]:
    """Where the final outputs of an analysis are, with the fit result."""
    from tasks.plots import Plot
    from tasks.results import Fit

    from analysis.load import load_config

    lines = []
    cfg = load_config(config)
    if "likelihood" in cfg.data:
        return show_likelihood(config)
    if cfg.data.get("limit"):
        lines += show_limit(config)
    if not cfg.data.get("model"):
        plot = _readable(Plot(config=config))
        if not _intact(plot):
            return lines + [f"no results yet: run `law run Plot --config {config}`"]
        return lines + [f"plots      : {plot.path}"] + [f"             {p.name}" for p in sorted(plot.path.glob("*.png"))] \
            + [f"yields     : {plot.path / 'yields.md'}", (plot.path / "yields.md").read_text().rstrip()]
    fit, plot = Fit(config=config), Plot(config=config)
    if _intact(_readable(fit)):
        from analysis.stats.fitting import FitResult

        path = _readable(fit).path / "fit_result.json"
        result = FitResult.from_json(path.read_text())
        lines.append(f"fit result : {path}")
        lines.append(f"             {result.poi} = {result.bestfit:.4f} +- {result.uncertainty:.4f}")
    lines += _show_statistics(config)
    if _intact(_readable(plot)):
        path = _readable(plot).path
        lines.append(f"plots      : {path}")
        lines += [f"             {p.name}" for p in sorted(path.glob("*.png"))]
        lines.append(f"cutflow    : {path / 'cutflow.md'}")
        lines.append((path / "cutflow.md").read_text().rstrip())
    if not cfg.data.get("external_histograms"):
        from tasks.agc_layout import AGCHistograms

        layout = _readable(AGCHistograms(config=config))
        if _intact(layout):
            lines.append(f"AGC layout : {layout.path / 'histograms.root'}")
    return lines or ["no results yet: run `law run Plot --config " + config + "`"]


def _show_statistics(config: str) -> list[str]:
    """The significance and the impact ranking, where they were computed."""
    from analysis.stats.discovery import describe
    from tasks.statistics import Ranking, Significance

    lines = []
    significance = _readable(Significance(config=config))
    if _intact(significance):
        path = significance.path / "significance.json"
        if path.exists():
            record = json.loads(path.read_text())
            lines.append(f"significance: {describe(record['observed_significance'], record.get('observed_log10_p_value'))}"
                         f" observed, {describe(record['expected_significance'], record.get('expected_log10_p_value'))}"
                         " expected")
        else:
            lines.append(f"significance: not defined ({significance.path / 'failed.json'})")
    ranking = _readable(Ranking(config=config))
    if _intact(ranking):
        record = json.loads((ranking.path / "ranking.json").read_text())
        lines.append(f"ranking    : {ranking.path / 'ranking.png'}")
        lines.append(f"             top impacts: {', '.join(record['labels'][:3])}")
    return lines


def _readable(task):
    """Where ``show`` reads a task's object: for a remote store, fetched into the local
    cache when it is committed there."""
    return task.read_entry() if task.complete() else task.store_entry()


def _intact(entry) -> bool:
    """Show an object only when it is intact (a damaged one is named, not read)."""
    problems = integrity.damage(entry) if entry.path.exists() else ["absent"]
    if problems and entry.path.exists():
        raise StoreError(f"{entry.family} object {entry.key[:12]} is damaged ({'; '.join(problems)}): "
                         f"`law run` recomputes it; `heirloom verify --all` checks the whole store")
    return not problems


def show_likelihood(config: str) -> list[str]:
    """Where the CLs scan and the exclusion plot of a published likelihood are."""
    from tasks.likelihood import CLsScan, ExclusionPlot

    lines = []
    scan, plot = _readable(CLsScan(config=config)), _readable(ExclusionPlot(config=config))
    if _intact(scan):
        summary = scan.provenance().get("scan", {})
        lines.append(f"CLs scan   : {scan.path / 'cls.json'}")
        if summary:
            lines.append(f"             {summary['points']} points, {summary['excluded']} excluded (observed CLs < 0.05)")
    if _intact(plot):
        lines.append(f"exclusion  : {plot.path}")
        lines += [f"             {p.name}" for p in sorted(plot.path.iterdir()) if p.name != "provenance.json"]
    return lines or [f"no results yet: run `law run ExclusionPlot --config {config}`"]


def show_limit(config: str) -> list[str]:
    """Where the limit on a new signal is, with its values."""
    from tasks.reinterpret import Limit

    entry = _readable(Limit(config=config))
    if not _intact(entry):
        return [f"limit      : not computed yet (law run Limit --config {config})"]
    limit = json.loads((entry.path / "limit.json").read_text())
    lines = [f"limit      : {entry.path / 'limit.json'}"]
    if limit:
        expected = ", ".join(f"{x:.3f}" for x in limit["expected"])
        lines.append(f"             {limit['poi']} < {limit['observed']:.3f} observed ({round(100 * limit['cl'])}% CL); "
                     f"expected -2..+2 sigma: {expected}")
    return lines
