"""The fit and its products, in the order a physicist reads them: the fit of the POI,
then the discovery significance and the impact ranking (each optional, and each allowed
to fail without losing the fit).

>>> summary = fit_products(ws, {"ranking": False}, "ttbar_norm", outdir)
Fit: ttbar_norm = 1.0511 +- 0.0557 (strategy 1)
Fit: Hessian cross-check (finite differences): +- 0.0557
Fit: discovery significance infinite (p-value 0) observed, infinite (p-value 0) expected
>>> round(summary["poi"]["value"], 4), sorted(p.name for p in outdir.iterdir())
(1.0511, ['fit_result.json', 'significance.json'])
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from analysis.errors import FitError
from analysis.stats.fitting import fit_workspace, rank, significance


def fit_products(workspace: Mapping, fit_cfg: Mapping, poi: str, outdir: Path) -> dict[str, Any]:
    """Fit ``workspace`` and write ``fit_result.json``, ``significance.json`` and
    ``ranking.json`` into ``outdir``; return the figures for the provenance record.

    A fit that fails raises :class:`~analysis.errors.FitError`; a failed significance or
    ranking is reported (``failed``) and printed as a warning.
    """
    seconds: dict[str, float | None] = {}
    t0 = time.time()
    result = fit_workspace(workspace, fit_cfg)
    seconds["fit"] = round(time.time() - t0, 3)
    (outdir / "fit_result.json").write_text(result.to_json())
    print(f"Fit: {poi} = {result.bestfit:.4f} +- {result.uncertainty:.4f} (strategy {result.strategy})", flush=True)
    summary: dict[str, Any] = {"poi": {"name": poi, "value": result.bestfit, "uncertainty": result.uncertainty,
                                       "minos": result.minos.get(poi)}}
    check = result.extra.get("hessian_check")
    if check:
        summary["poi"]["hessian_check"] = check["poi_uncertainty"]
        print(f"Fit: Hessian cross-check (finite differences): +- {check['poi_uncertainty']:.4f}", flush=True)
    failed: dict[str, str] = {}
    if fit_cfg.get("significance", True):
        try:
            sig = significance(workspace, fit_cfg)
        except FitError as err:
            failed["significance"] = str(err)
        else:
            seconds["significance"] = sig.seconds
            (outdir / "significance.json").write_text(sig.to_json())
            summary["significance"] = {"observed": sig.observed_significance, "expected": sig.expected_significance}
            print(f"Fit: discovery significance {_z(sig.observed_significance)} observed, "
                  f"{_z(sig.expected_significance)} expected", flush=True)
    if fit_cfg.get("ranking", True):
        try:
            ranking = rank(workspace, result, fit_cfg)
        except FitError as err:
            failed["ranking"] = str(err)
        else:
            seconds["ranking"] = ranking.seconds
            (outdir / "ranking.json").write_text(ranking.to_json())
            print(f"Fit: impact ranking of {len(ranking.labels)} parameters in {ranking.seconds:.1f} s "
                  f"(top: {', '.join(ranking.labels[:3])})", flush=True)
    for product, message in failed.items():
        print(f"Fit: WARNING: no {product}: {message}", flush=True)
    if failed:
        summary["failed"] = failed
    return {**summary, "seconds": seconds}


def write_workspace(workspace: Mapping, outdir: Path) -> None:
    """``workspace.json``, sorted keys (the same model gives the same bytes)."""
    (outdir / "workspace.json").write_text(json.dumps(workspace, indent=1, sort_keys=True))


def _z(value: float | None) -> str:
    """A significance for a log line.

    >>> _z(float("inf")), _z(2.345)
    ('infinite (p-value 0)', '2.35 sigma')
    """
    return "infinite (p-value 0)" if value is None or value == float("inf") else f"{value:.2f} sigma"
