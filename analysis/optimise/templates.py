"""Soft fit templates: the templates that Fit fills, as sums of per-row weights that
the relaxed cuts scale.

Every template Fit writes (:func:`analysis.stats.statmodel.templates`:
``{region}__{sample}__{template}``, rebinned, without flow bins) is a sum, over rows of the
loose tables, of ``w x scale`` in the row's bin. The rows, their bins and their weights
do not depend on the cut parameters; only each row's relaxed weight does. So the
structure is worked out once, in numpy (:func:`index`): *sources* (one dataset, region
and variation, with the weight column that fills it) are segment sums over rows, and
templates are sums of sources, as :func:`analysis.stats.statmodel.templates` sums
histograms (a dataset without a variation contributes its nominal; ``up_dataset``
replaces a dataset by another one's nominal). :func:`soft` then evaluates them for any
row weights, in jax. With hard row weights at the config's values they are Fit's
templates (tests/test_optimise_task.py checks it against the workspace).

>>> import pyarrow as pa
>>> table = pa.table({"variation": pa.array(["nominal"] * 3).dictionary_encode(),
...                   "region": pa.array(["SR"] * 3).dictionary_encode(),
...                   "obs_x": [0.5, 1.5, 1.5], "w_nominal": [1.0, 1.0, 1.0]})
>>> model = {"samples": {"signal": {"datasets": ["tt"]}}, "data": "data", "regions": {"SR": {}}}
>>> ix = index({"tt": table}, {"tt": 2.0}, model, {"SR": "x"}, {"x": {"bins": 2, "range": [0, 2]}})
>>> ix.names
('SR__signal__nominal',)
>>> import numpy as np
>>> values, variances = soft(ix, np.ones(ix.n_rows), np)
>>> values.tolist(), variances.tolist()          # rows at x = 0.5, 1.5, 1.5 with w = 1, scale 2
([2.0, 4.0], [4.0, 8.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from analysis.hist.histograms import _codes
from analysis.names import NOMINAL, sample_variation
from analysis.stats.statmodel import fit_regions, systematics


@dataclass(frozen=True)
class TemplateIndex:
    """Rows of every dataset laid end to end (``offsets``: first row of each dataset),
    ``entries``: (row, source bin, weight) of every filled row of every source, and
    ``links``: (template bin, source bin) pairs; ``names``/``bins``: templates in order
    and their bin counts (a template's bins follow the previous template's)."""

    datasets: tuple[str, ...]
    offsets: tuple[int, ...]
    n_rows: int
    entry_row: np.ndarray
    entry_bin: np.ndarray
    entry_weight: np.ndarray
    n_source_bins: int
    link_template: np.ndarray
    link_source: np.ndarray
    names: tuple[str, ...]
    bins: tuple[int, ...]

    def span(self, name: str) -> slice:
        """The bins of template ``name`` in :func:`soft`'s output."""
        i = self.names.index(name)
        start = int(sum(self.bins[:i]))
        return slice(start, start + self.bins[i])


def soft(ix: TemplateIndex, row_weight: Any, xp: Any) -> tuple[Any, Any]:
    """(values, variances) of every template, laid end to end, for per-row weights
    ``row_weight`` (``xp``: numpy or jax.numpy; with jax, differentiable in them)."""
    contribution = xp.asarray(ix.entry_weight) * row_weight[ix.entry_row]
    source_values = _segment_sum(contribution, ix.entry_bin, ix.n_source_bins, xp)
    source_variances = _segment_sum(contribution * contribution, ix.entry_bin, ix.n_source_bins, xp)
    n = int(sum(ix.bins))
    return (_segment_sum(source_values[ix.link_source], ix.link_template, n, xp),
            _segment_sum(source_variances[ix.link_source], ix.link_template, n, xp))


def _segment_sum(values: Any, segments: np.ndarray, n: int, xp: Any) -> Any:
    if xp is np:
        return np.bincount(segments, weights=values, minlength=n)
    import jax

    return jax.ops.segment_sum(values, segments, num_segments=n)


def index(tables: Mapping[str, Any], scales: Mapping[str, float], model: Mapping, observables: Mapping[str, str],
          binning: Mapping[str, Mapping]) -> TemplateIndex:
    """The :class:`TemplateIndex` of the fit templates of ``model`` (:func:`fit_model`'s
    form) from each dataset's loose table (pyarrow) and normalisation (``scales``);
    ``observables``: each region's fit observable; ``binning``: each observable's bins."""
    datasets = tuple(sorted(tables))
    offsets = tuple(int(x) for x in np.cumsum([0] + [tables[d].num_rows for d in datasets]))
    sources = _Sources(tables, scales, dict(zip(datasets, offsets)), observables, binning, model.get("rebin"))
    templates = _template_sources(model, sources)
    names, bins, link_t, link_s = [], [], [], []
    start = 0
    for name, parts in templates.items():
        n = sources.n_bins(name.split("__")[0])
        for part in parts:
            first = sources.first_bin(part)
            link_t.append(np.arange(start, start + n))
            link_s.append(np.arange(first, first + n))
        names.append(name)
        bins.append(n)
        start += n
    rows, source_bins, weights = sources.entries()
    return TemplateIndex(datasets, offsets, offsets[-1], rows, source_bins, weights, sources.n_total,
                         np.concatenate(link_t), np.concatenate(link_s), tuple(names), tuple(bins))


class _Sources:
    """Sources (dataset, region, variation) found in the loose tables, each given a run of
    source bins when first asked for."""

    def __init__(self, tables, scales, offsets, observables, binning, rebin):
        self.tables, self.scales, self.offsets = tables, scales, offsets
        self.observables, self.binning, self.rebin = observables, binning, rebin
        self.first: dict = {}
        self.n_total = 0
        self.parts: list = []
        self.columns: dict = {}

    def n_bins(self, region: str) -> int:
        return len(self._edges(region)[2])

    def exists(self, dataset: str, region: str, variation: str) -> bool:
        """Whether the dataset's histogram of ``region`` would hold ``variation``."""
        return bool(self._rows(dataset, region, variation)[0].size)

    def first_bin(self, key: tuple) -> int:
        if key not in self.first:
            rows, weights = self._rows(*key)
            bin_of_row = self._bins(key[0], key[1], rows)
            kept = bin_of_row >= 0
            self.first[key] = self.n_total
            self.parts.append((rows[kept] + self.offsets[key[0]], bin_of_row[kept] + self.n_total, weights[kept]))
            self.n_total += self.n_bins(key[1])
        return self.first[key]

    def entries(self) -> tuple:
        if not self.parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        return tuple(np.concatenate(column) for column in zip(*self.parts))

    def _column(self, dataset: str, name: str) -> np.ndarray:
        key = (dataset, name)
        if key not in self.columns:
            table = self.tables[dataset]
            if name in ("variation", "region"):
                codes, labels = _codes(table, name)
                self.columns[key] = np.asarray(labels + [None], dtype=object)[codes]
            else:
                self.columns[key] = table.column(name).to_numpy() if name in table.column_names else None
        return self.columns[key]

    def _rows(self, dataset: str, region: str, variation: str) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, weights x scale) of the rows that fill ``variation`` of ``region``,
        as :func:`analysis.hist.histograms.fill_from_table` fills it."""
        values = self._column(dataset, "obs_" + self.observables[region])
        if values is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        in_region = (self._column(dataset, "region") == region) & ~np.isnan(values)
        labels = self._column(dataset, "variation")
        weight = self._column(dataset, f"w_{variation}") if variation != NOMINAL else None
        if weight is not None:                                   # a weight variation: nominal rows, its weight
            rows = np.flatnonzero(in_region & (labels == NOMINAL))
            if np.all(np.isnan(weight[rows])):
                rows = rows[:0]
        else:                                                    # nominal or a shape variation: its own rows
            rows = np.flatnonzero(in_region & (labels == variation))
            weight = self._column(dataset, f"w_{NOMINAL}")
        return rows, weight[rows] * self.scales[dataset]

    def _edges(self, region: str) -> tuple:
        """(the observable's axis, its first fitted bin, the fitted bins' merge groups)."""
        import hist

        spec = self.binning[self.observables[region]]
        axis = hist.axis.Regular(spec["bins"], *spec["range"])
        edges = axis.edges
        rebin = self.rebin or {}
        low = int(np.argmin(abs(edges - float(rebin.get("low", edges[0])))))
        high = int(np.argmin(abs(edges - float(rebin.get("high", edges[-1])))))
        merge = int(rebin.get("merge", 1))
        return axis, low, range((high - low) // merge), merge

    def _bins(self, dataset: str, region: str, rows: np.ndarray) -> np.ndarray:
        """The fitted bin of each row (-1: outside the fitted range)."""
        axis, low, groups, merge = self._edges(region)
        raw = np.asarray(axis.index(self._column(dataset, "obs_" + self.observables[region])[rows]))
        fitted = (raw >= low) & (raw < low + len(groups) * merge)
        return np.where(fitted, (raw - low) // merge, -1)


def _template_sources(model: Mapping, sources: _Sources) -> dict[str, list]:
    """``{template name: [(dataset, region, variation), ...]}`` in the order and with the
    rules of :func:`analysis.stats.statmodel.templates` (data left out: the objective
    judges on Asimov data)."""
    samples = model["samples"]
    regions = fit_regions(model, {model["data"]: list(sources.observables)})
    out: dict = {}
    for region in regions:
        for sample, spec in samples.items():
            out[f"{region}__{sample}__{NOMINAL}"] = [(d, region, NOMINAL) for d in spec["datasets"]]
    for syst in (s for s in systematics(model) if s["kind"] == "shape"):
        for sample in syst["samples"]:
            datasets = samples[sample]["datasets"]
            for side in ("up", "down") if syst["down"] is not None else ("up",):
                how, name = syst[side]
                if how == "dataset":
                    replaced = datasets[0] if len(datasets) == 1 else sample_variation(name)[0]
                    parts = {r: [(name, r, NOMINAL)] + [(d, r, NOMINAL) for d in datasets if d != replaced]
                             for r in regions}
                elif any(sources.exists(d, r, name) for d in datasets for r in regions):
                    parts = {r: [(d, r, name if sources.exists(d, r, name) else NOMINAL) for d in datasets]
                             for r in regions}
                else:
                    continue
                out.update({f"{r}__{sample}__{syst['name']}_{side}": p for r, p in parts.items()})
    return out
