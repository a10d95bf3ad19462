"""One optimisation, from the loose tables and Fit's workspace to the files Optimise
writes: ``<name>_optimised.yaml`` (the fork), ``trajectory.json`` (every evaluation),
``scan.json`` (the relaxed and the hard objective around the optimum) and
``optimise.json`` (the summary)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from analysis.config.optimise import method, parameters
from analysis.optimise import fork, objective, search
from analysis.optimise.loose import relaxation
from analysis.optimise.templates import index
from analysis.optimise.yields import Bridge


def problem(cfg: Any, loose: Mapping[str, Path], workspace: Mapping) -> objective.Problem:
    """The :class:`~analysis.optimise.objective.Problem` of ``cfg`` from the LooseSelect
    outputs (``{dataset: folder}``) and the workspace of Fit at the start values."""
    import pyarrow.parquet as pq

    from analysis.config.model import region_observables
    from analysis.hist.histograms import mc_scale
    from analysis.stats.modelspec import fit_model

    model = fit_model(cfg)
    tables, scales = {}, {}
    for name, folder in sorted(loose.items()):
        tables[name] = pq.read_table(folder / "selected.parquet")
        cutflow = json.loads((folder / "cutflow.json").read_text())
        spec = cfg.datasets[name]
        scales[name] = mc_scale(spec["kind"], spec.get("xsec"), cfg.lumi or 1.0, cutflow,
                                bool(cfg.data.get("event_weight")))
    observables = {region: region_observables(spec)[0] for region, spec in cfg.regions.items()
                   if region_observables(spec)}
    binning = {name: cfg.observables[name] for name in set(observables.values())}
    ix = index(tables, scales, model, observables, binning)
    bridge = Bridge.build(workspace, ix, model)
    return objective.build(cfg, relaxation(cfg), ix, bridge, tables)


def locate(prob: objective.Problem, settings: Mapping, start: np.ndarray, spec: Mapping,
           progress: Any = None) -> tuple:
    """The search from ``start`` (every evaluation), its best evaluation, that point
    rounded, the rounded point refined with the exact cuts, and the time the search ended.
    tests/test_optimise_task.py starts it from a second value, as::

        steps, found, rounded_, refined, _ = locate(prob, {"name": "L-BFGS-B", "steps": 40}, np.asarray([280.0]), spec)
    """
    steps = search.search(prob, settings, start, progress=progress)
    ended = time.time()
    found = search.best(steps, prob.objective)
    relaxed_values = search.rounded(found.theta, spec)
    return steps, found, relaxed_values, search.refine(prob, relaxed_values, spec), ended


def optimise(cfg: Any, loose: Mapping[str, Path], workspace_path: Path, outdir: Path, parent_file: str) -> dict:
    """Run the search of ``cfg``'s optimise section and write its files into ``outdir``;
    returns the summary (also ``optimise.json``) and ``timing`` (seconds of each part)."""
    spec = parameters(cfg)
    settings = method(cfg)
    prob = problem(cfg, loose, json.loads(Path(workspace_path).read_text()))
    start = np.asarray([float(spec[name]["value"]) for name in prob.names])
    t0 = time.time()
    prob.value_and_grad()(start)                                    # compile once, before the clock of the search
    compile_seconds = time.time() - t0
    print(f"Optimise: {prob.ix.n_rows} loose rows, {len(prob.ix.names)} templates, {len(prob.names)} parameter(s); "
          f"compiled in {compile_seconds:.1f} s; {settings['name']}, at most {settings['steps']} evaluations",
          flush=True)
    t1 = time.time()
    steps, found, relaxed_values, values, t2 = locate(prob, settings, start, spec, progress=_progress)
    t3 = time.time()
    hard = prob.hard_loss()
    figures = {"start": prob.figure(hard(start)),
               "relaxed_optimum": prob.figure(hard(np.asarray([relaxed_values[n] for n in prob.names]))),
               "optimum": prob.figure(hard(np.asarray([values[n] for n in prob.names])))}
    slopes = {name: float(spec[name]["slope"]) for name in prob.names}
    scan = search.scan(prob, values, slopes)
    timing = {"compile_seconds": round(compile_seconds, 3), "search_seconds": round(t2 - t1, 3),
              "seconds_per_evaluation": round((t2 - t1) / len(steps), 4), "refine_seconds": round(t3 - t2, 3),
              "scan_seconds": round(time.time() - t3, 3)}
    name = fork.fork_name(cfg.name)
    (outdir / f"{name}.yaml").write_text(fork.fork_text(parent_file, cfg.name, values, prob.objective, figures))
    _write_json(outdir / "trajectory.json", {"method": settings, "steps": search.as_records(steps)})
    _write_json(outdir / "scan.json", scan)
    summary = {"objective": prob.objective, "parameters": list(prob.names), "start": dict(zip(prob.names, start.tolist())),
               "relaxed_optimum": found.theta, "relaxed_rounded": relaxed_values, "optimum": values, "relaxed": {"start": steps[0].figure,
                                                                            "optimum": found.figure},
               "hard": figures, "evaluations": len(steps), "fork": f"{name}.yaml"}
    _write_json(outdir / "optimise.json", summary)
    return {**summary, "timing": timing}


def _progress(step: search.Step) -> None:
    theta = ", ".join(f"{k} = {v:.4g}" for k, v in step.theta.items())
    print(f"Optimise: evaluation {step.evaluation}: {theta}: relaxed objective {step.figure:.6g}", flush=True)


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=1, sort_keys=True, allow_nan=False) + "\n")

