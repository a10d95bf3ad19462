"""The differentiable model's cost (issue 16): what one optimisation step pays in the
statistics, per objective, on the workspaces Fit writes.

For each config (default the demo and the AGC analysis): ``law run Fit`` into a store
(``--store``, kept; a temporary one otherwise), then, on its workspace, for each objective
(``discovery_significance``, ``poi_uncertainty``) as a function of a scale of the largest
background's templates (what an optimisation's soft histograms change):

- the first value-and-gradient call: tracing and compiling (jax) plus one evaluation;
- the median (min, max) of ``--repeat`` further calls with other scales;
- the objective against pyhf's (the significance: sqrt(q0) of pyhf's SciPy fit on the same
  Asimov data; the uncertainty: not compared here, see tests/test_jax_model.py);
- peak memory (the process's high-water mark after the calls).

    .venv/bin/python benchmarks/optimise_model.py [--configs configs/demo.yaml configs/agc_ttbar.yaml]
                                                  [--repeat 20] [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, law_run, machine, markdown_table, stats


def workspace(config: Path, store: Path) -> dict:
    """Fit's workspace of ``config``, running ``law run Fit`` into ``store`` if needed."""
    law_run("Fit", config, store)
    return json.loads((store / "by-name" / _analysis_of(config) / "Fit" / "all" / "workspace.json").read_text())


def _analysis_of(config: Path) -> str:
    from analysis.load import load_config

    return load_config(config).name


def background_scaled(layout, yields, jnp):
    """objective(scale) inputs: the yields with the largest background's templates x scale."""
    totals = {sample: float(yields["nominal"][i].sum()) for i, (_, sample) in enumerate(layout.samples)
              if sample != layout.poi.replace("_norm", "")}
    largest = max(totals, key=totals.get)
    rows = jnp.asarray([1.0 if sample == largest else 0.0 for _, sample in layout.samples])

    def scaled(scale):
        factor = 1.0 + (scale - 1.0) * rows
        out = {k: jnp.asarray(v) * factor[:, None] for k, v in yields.items() if k in ("nominal", "stat_unc")}
        out.update({k: jnp.asarray(yields[k]) * factor[None, :, None] for k in ("histosys_hi", "histosys_lo")})
        return {**{k: jnp.asarray(v) for k, v in yields.items()}, **out}
    return scaled, largest


def pyhf_significance(ws: dict) -> float:
    import cabinetry
    import pyhf

    model, asimov = cabinetry.model_utils.model_and_data(ws, asimov=True)
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    config = model.config
    q0 = float(pyhf.infer.test_statistics.q0(0.0, asimov, model, config.suggested_init(),
                                             config.suggested_bounds(), config.suggested_fixed()))
    pyhf.set_backend("numpy")
    return q0 ** 0.5


def measure(name: str, ws: dict, repeat: int) -> list:
    """Rows of the table for one workspace."""
    import jax
    import jax.numpy as jnp

    from analysis.stats import jax_model, jax_objectives

    layout, yields = jax_model.from_workspace(ws)
    scaled, largest = background_scaled(layout, yields, jnp)
    rows = []
    for objective in (jax_objectives.discovery_significance, jax_objectives.poi_uncertainty):
        step = jax.jit(jax.value_and_grad(lambda s, f=objective: f(layout, scaled(s))))
        t0 = time.perf_counter()
        value, _ = step(1.0)
        first = time.perf_counter() - t0
        times = []
        for i in range(repeat):
            t0 = time.perf_counter()
            _, grad = step(0.8 + 0.4 * i / max(repeat - 1, 1))
            float(grad)
            times.append(time.perf_counter() - t0)
        reference = pyhf_significance(ws) if objective is jax_objectives.discovery_significance else None
        agreement = f"{abs(float(value) - reference) / reference:.1e}" if reference else "-"
        rows.append([name, objective.__name__, len(layout.parameters), f"{largest} x s", first, *stats(times),
                     float(value), agreement])
    return rows


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", type=Path,
                        default=[ROOT / "configs" / "demo.yaml", ROOT / "configs" / "agc_ttbar.yaml"])
    parser.add_argument("--repeat", type=int, default=20, help="value-and-gradient calls after the first (default 20)")
    parser.add_argument("--store", type=Path, help="run the fits into (and keep) this store")
    args = parser.parse_args(argv)
    store = args.store or Path(tempfile.mkdtemp(prefix="heirloom-optimise-"))
    try:
        rows = []
        for config in args.configs:
            print(f"law run Fit --config {config} ...", file=sys.stderr, flush=True)
            rows += measure(config.stem, workspace(config.resolve(), store), args.repeat)
    finally:
        if args.store is None:
            shutil.rmtree(store, ignore_errors=True)
    print(f"## The differentiable model: one value-and-gradient step ({machine()})\n")
    print(markdown_table(["config", "objective", "parameters", "varied", "first call [s]", "median [s]", "min [s]",
                          "max [s]", "value at s = 1", "vs pyhf (rel.)"], rows))
    print(f"\nPeak memory of the process: {peak_mb():.0f} MB. Each call after the first reuses the compiled "
          f"functions; a call of the significance includes its background-only fit (L-BFGS-B on the host, "
          f"then the polishing BFGS and its implicit adjoint).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
