"""The differentiable model's yields from soft templates, as cabinetry builds them.

Fit's workspace (:func:`analysis.stats.statmodel.build_workspace`) fixes the model's
layout: its channels, which samples each holds, its parameters. This module maps soft
templates (:mod:`.templates`) onto that layout's yields (:mod:`analysis.stats.jax_model`)
the way cabinetry builds the workspace from templates:

- a sample's nominal is its template; its ``staterror`` width the square root of the
  template's variances;
- a shape systematic is cabinetry's ``NormPlusShape``: ``normsys`` hi = sum(up)/sum(nominal)
  (lo likewise, or 2 - hi when symmetrised), ``histosys`` hi_data = up / hi, lo_data =
  down / lo (or 2 nominal - hi_data when symmetrised); a channel of one bin has no
  ``histosys``;
- a normalisation systematic's factors do not depend on the cuts: kept from the workspace.

The modifiers that act, and on which sample in which channel, are read off the workspace:
the layout stays fixed while the cuts move.

Used as (``ix`` from :func:`.templates.index`, ``model`` from :func:`fit_model`)::

    bridge = Bridge.build(workspace, ix, model)
    yields = model_yields(bridge, *soft(ix, row_weights, jnp), jnp)

tests/test_optimise_task.py checks that, with the exact cuts at the config's values, these
are the workspace's own yields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from analysis.errors import FitError
from analysis.names import NOMINAL
from analysis.optimise.templates import TemplateIndex
from analysis.stats.jax_model import Layout, from_workspace
from analysis.stats.statmodel import fit_regions, systematics


@dataclass(frozen=True)
class Bridge:
    """Gathers from the templates' bins into the yields' arrays (-1: zero):
    ``nominal`` (rows x bins); per shape pair (alpha, row) ``up``/``down`` (pairs x bins;
    ``down`` all -1 when symmetrised), ``symmetric``, ``one_bin``; ``static``: the
    workspace's yields (what the cuts do not change)."""

    layout: Layout
    static: Mapping[str, np.ndarray]
    nominal: np.ndarray
    pair_alpha: np.ndarray
    pair_row: np.ndarray
    up: np.ndarray
    down: np.ndarray
    symmetric: np.ndarray
    one_bin: np.ndarray

    @property
    def shape_pairs(self) -> int:
        return len(self.pair_alpha)

    @classmethod
    def build(cls, workspace: Mapping, ix: TemplateIndex, model: Mapping) -> "Bridge":
        """Match ``workspace`` (Fit's) with the templates of ``ix``; a channel or sample
        without its template is a FitError."""
        layout, static = from_workspace(workspace)
        region_of = {fit: region for region, fit in fit_regions(model).items()}
        shape = {s["name"]: s for s in systematics(model) if s["kind"] == "shape"}
        spans = np.cumsum([0, *layout.bins])
        nominal = np.full((len(layout.samples), layout.n_bins), -1)
        pairs: list = []
        row = 0
        for ci, channel in enumerate(workspace["channels"]):
            region = region_of.get(channel["name"])
            if region is None:
                raise FitError(f"channel '{channel['name']}' of the workspace is no region of the model")
            span = slice(int(spans[ci]), int(spans[ci + 1]))
            for sample in channel["samples"]:
                nominal[row, span] = _gather(ix, f"{region}__{sample['name']}__{NOMINAL}", layout.bins[ci])
                names = {m["name"] for m in sample["modifiers"] if m["type"] == "normsys"} & set(shape)
                for name in sorted(names):
                    up = _gather(ix, f"{region}__{sample['name']}__{name}_up", layout.bins[ci])
                    symmetric = shape[name]["down"] is None
                    down = (np.full(layout.bins[ci], -1) if symmetric
                            else _gather(ix, f"{region}__{sample['name']}__{name}_down", layout.bins[ci]))
                    pairs.append((layout.alphas.index(name), row, span, up, down, symmetric, layout.bins[ci] == 1))
                row += 1
        up_all = np.full((len(pairs), layout.n_bins), -1)
        down_all = np.full((len(pairs), layout.n_bins), -1)
        for k, (_, _, span, up, down, _, _) in enumerate(pairs):
            up_all[k, span], down_all[k, span] = up, down
        column = [[p[i] for p in pairs] for i in (0, 1, 5, 6)]
        return cls(layout, static, nominal, np.asarray(column[0], dtype=int), np.asarray(column[1], dtype=int),
                   up_all, down_all, np.asarray(column[2], dtype=bool), np.asarray(column[3], dtype=bool))


def _gather(ix: TemplateIndex, name: str, n_bins: int) -> np.ndarray:
    if name not in ix.names:
        raise FitError(f"template '{name}' of the workspace is not among the loose templates")
    span = ix.span(name)
    if span.stop - span.start != n_bins:
        raise FitError(f"template '{name}' has {span.stop - span.start} bins, its channel {n_bins}")
    return np.arange(span.start, span.stop)


def _take(values: Any, gather: np.ndarray, xp: Any) -> Any:
    padded = xp.concatenate([values, xp.zeros(1)])
    return padded[np.where(gather < 0, len(values), gather)]


def model_yields(bridge: Bridge, values: Any, variances: Any, xp: Any) -> dict:
    """The yields of :mod:`analysis.stats.jax_model` from soft template ``values`` and
    ``variances`` (:func:`.templates.soft`)."""
    nominal = _take(values, bridge.nominal, xp)
    variance = _take(variances, bridge.nominal, xp)
    stat_unc = xp.where(variance > 0, xp.sqrt(xp.where(variance > 0, variance, 1.0)), 0.0)   # no NaN gradient at 0
    static = bridge.static
    out = {"nominal": nominal, "stat_unc": stat_unc, "normsys_hi": xp.asarray(static["normsys_hi"]),
           "normsys_lo": xp.asarray(static["normsys_lo"])}
    n_alpha = static["normsys_hi"].shape[0]
    histosys_hi = xp.broadcast_to(nominal[None], (n_alpha,) + nominal.shape)
    histosys_lo = histosys_hi
    if bridge.shape_pairs:
        base = nominal[bridge.pair_row]
        up = _take(values, bridge.up, xp)
        hi = up.sum(axis=1) / base.sum(axis=1)
        down = _take(values, bridge.down, xp)
        lo_sum = down.sum(axis=1) / base.sum(axis=1)
        lo = xp.where(bridge.symmetric, 2.0 - hi, lo_sum)
        hi_data = up / hi[:, None]
        lo_data = xp.where(bridge.symmetric[:, None], 2.0 * base - hi_data, down / xp.where(bridge.symmetric, 1.0, lo_sum)[:, None])
        hi_data = xp.where(bridge.one_bin[:, None], base, hi_data)
        lo_data = xp.where(bridge.one_bin[:, None], base, lo_data)
        out["normsys_hi"] = _scatter(out["normsys_hi"], bridge, hi, xp)
        out["normsys_lo"] = _scatter(out["normsys_lo"], bridge, lo, xp)
        histosys_hi = _scatter(histosys_hi, bridge, hi_data, xp)
        histosys_lo = _scatter(histosys_lo, bridge, lo_data, xp)
    out["histosys_hi"], out["histosys_lo"] = histosys_hi, histosys_lo
    return out


def _scatter(array: Any, bridge: Bridge, values: Any, xp: Any) -> Any:
    if xp is np:
        array = np.array(array)
        array[bridge.pair_alpha, bridge.pair_row] = values
        return array
    return array.at[bridge.pair_alpha, bridge.pair_row].set(values)
