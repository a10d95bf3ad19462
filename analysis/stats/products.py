"""The fit and its products, each on its own, as the tasks write them: the fit of the POI
(:func:`fit_products`), the discovery significance (:func:`significance_products`) and
the impact ranking (:func:`ranking_products`).

>>> summary = fit_products(ws, {}, "ttbar_norm", outdir)
Fit: ttbar_norm = 1.0511 +- 0.0557 (strategy 1)
Fit: Hessian cross-check (finite differences): +- 0.0557
>>> round(summary["poi"]["value"], 4), sorted(p.name for p in outdir.iterdir())
(1.0511, ['fit_result.json'])
>>> figures = significance_products(ws, {}, outdir)            # doctest: +ELLIPSIS
Significance: ... sigma (p = 10^-...) observed, ... sigma (p = 10^-...) expected ...
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from analysis.stats.fitting import FitResult, fit_workspace


def fit_products(workspace: Mapping, fit_cfg: Mapping, poi: str, outdir: Path) -> dict[str, Any]:
    """Fit ``workspace``, write ``fit_result.json`` into ``outdir`` and return the figures
    for the provenance record; a fit that fails raises :class:`~analysis.errors.FitError`."""
    t0 = time.time()
    result = fit_workspace(workspace, fit_cfg)
    (outdir / "fit_result.json").write_text(result.to_json())
    print(f"Fit: {poi} = {result.bestfit:.4f} +- {result.uncertainty:.4f} (strategy {result.strategy})", flush=True)
    summary: dict[str, Any] = {"poi": {"name": poi, "value": result.bestfit, "uncertainty": result.uncertainty,
                                       "minos": result.minos.get(poi)}}
    check = result.extra.get("hessian_check")
    if check:
        summary["poi"]["hessian_check"] = check["poi_uncertainty"]
        print(f"Fit: Hessian cross-check (finite differences): +- {check['poi_uncertainty']:.4f}", flush=True)
    return {**summary, "seconds": {"fit": round(time.time() - t0, 3)}}


def write_workspace(workspace: Mapping, outdir: Path) -> None:
    """``workspace.json``, sorted keys (the same model gives the same bytes)."""
    (outdir / "workspace.json").write_text(json.dumps(workspace, indent=1, sort_keys=True))


def significance_products(workspace: Mapping, fit_cfg: Mapping, outdir: Path) -> dict[str, Any]:
    """Write ``significance.json`` (observed and expected discovery significance)."""
    from analysis.stats.discovery import describe, significance

    result = significance(workspace, fit_cfg)
    (outdir / "significance.json").write_text(result.to_json())
    how = " (Z = sqrt(q0): the p-values are below the smallest double)" if result.method == "q0" else ""
    print(f"Significance: {describe(result.observed_significance, result.observed_log10_p_value)} observed, "
          f"{describe(result.expected_significance, result.expected_log10_p_value)} expected{how}", flush=True)
    return {"significance": {"observed": result.observed_significance, "expected": result.expected_significance,
                             "observed_log10_p_value": result.observed_log10_p_value, "method": result.method},
            "seconds": {"significance": result.seconds}}


def ranking_products(workspace: Mapping, fit_result: FitResult, fit_cfg: Mapping, outdir: Path,
                     workers: int = 1) -> dict[str, Any]:
    """Write ``ranking.json`` (the impacts of every parameter on the POI), the parameters
    spread over ``workers`` processes."""
    from analysis.stats.ranking import rank

    result = rank(workspace, fit_result, fit_cfg, workers=workers)
    (outdir / "ranking.json").write_text(result.to_json())
    print(f"Ranking: impacts of {len(result.labels)} parameters in {result.seconds:.1f} s on {workers} "
          f"process(es) (top: {', '.join(result.labels[:3])})", flush=True)
    return {"ranking": {"parameters": len(result.labels), "top": list(result.labels[:3]), "workers": workers},
            "seconds": {"ranking": result.seconds}}
