"""The differentiable HistFactory model (issue 16, item 4) against pyhf, on the workspaces
that Fit writes: the demo-like round-trip analysis and the AGC analysis.

- the log-likelihood equals pyhf's at parameter points inside and outside |alpha| < 1;
- the expected discovery significance equals pyhf's sqrt(q0) on the same Asimov data
  (pyhf's SciPy fit), and Heirloom's own ``significance`` with ``fit: {asimov: true,
  tolerance: 1e-4}``, to 1e-6 (relative);
- the expected POI uncertainty equals the one from the Hessian of pyhf's own model
  (pyhf's JAX backend);
- gradients with respect to the yields equal central finite differences at three points.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, compiled, law_run

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from analysis.errors import FitError  # noqa: E402
from analysis.stats import jax_model as jm  # noqa: E402
from analysis.stats import jax_objectives as jo  # noqa: E402

TINY = {
    "channels": [{"name": "SR", "samples": [
        {"name": "signal", "data": [4.0, 9.0, 5.0], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}]},
        {"name": "background", "data": [40.0, 30.0, 20.0], "modifiers": [
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
            {"name": "jes", "type": "histosys", "data": {"hi_data": [42.0, 30.5, 19.0], "lo_data": [38.0, 29.5, 21.0]}},
            {"name": "stat_SR", "type": "staterror", "data": [3.0, 2.5, 2.0]}]}]}],
    "observations": [{"name": "SR", "data": [47.0, 41.0, 22.0]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
    "version": "1.0.0",
}


def fit_workspace(config, store) -> dict:
    """The workspace Fit writes for ``config`` (the store may hold other analyses' too)."""
    from analysis.load import load_config

    law_run("Fit", config, store)
    return json.loads((store / "by-name" / load_config(config).name / "Fit" / "all" / "workspace.json").read_text())


@pytest.fixture(scope="module")
def workspaces(agc_store, tmp_path_factory) -> dict:
    """{name: workspace}: a hand-written one, and the ones Fit writes for configs/demo.yaml
    and for the AGC analysis, both in the suite's shared store (the README's commands run
    both analyses there: whichever test comes first computes them)."""
    folder = tmp_path_factory.mktemp("fits")
    agc = folder / "agc_ttbar.yaml"
    agc.write_text(f"extends: {ROOT / 'configs' / 'agc_ttbar.yaml'}\n")
    return {"tiny": TINY, "demo": fit_workspace(ROOT / "configs" / "demo.yaml", agc_store),
            "agc": fit_workspace(agc, agc_store)}


def pyhf_model(ws, backend="numpy", asimov=False):
    import cabinetry
    import pyhf

    pyhf.set_backend(backend)
    return cabinetry.model_utils.model_and_data(ws, asimov=asimov)


def to_pyhf(model, layout, pars) -> np.ndarray:
    """Our parameter vector in pyhf's order (staterror_<channel> slices by channel)."""
    out = np.asarray(model.config.suggested_init(), dtype=float)
    n_head = len(layout.norm_factors) + len(layout.alphas)
    offsets = np.cumsum([0, *layout.bins])
    for name in model.config.par_order:
        where = model.config.par_slice(name)
        if name in layout.parameters:
            out[where] = pars[layout.index(name)]
            continue
        [channel] = [i for i, c in enumerate(layout.channels) if name in ("staterror_" + c.replace(" ", "-"), "stat_" + c)]
        out[where] = pars[n_head + offsets[channel]:n_head + offsets[channel + 1]]
    return out


@pytest.mark.parametrize("name", ["tiny", "demo", "agc"])
def test_log_likelihood_equals_pyhfs(workspaces, name):
    ws = workspaces[name]
    model, data = pyhf_model(ws)
    layout, yields = jm.from_workspace(ws)
    main = jm.main_data(ws, layout)
    rng = np.random.default_rng(5)
    nominal = np.asarray(jm.init_pars(layout))
    n_f, n_a = len(layout.norm_factors), len(layout.alphas)
    for spread in (0.0, 0.3, 0.8, None):
        pars = nominal + rng.normal(0, spread or 0.1, nominal.shape) * np.r_[np.ones(n_f + n_a), np.full(layout.n_bins, 0.1)]
        if spread is None:                                # every alpha past +-1: the extrapolations
            pars[n_f:n_f + n_a] = 1.6 * (-1.0) ** np.arange(n_a)
        pars[:n_f], pars[n_f + n_a:] = np.abs(pars[:n_f]), np.abs(pars[n_f + n_a:])
        ours = float(jm.logpdf(layout, yields, jnp.asarray(pars), main))
        theirs = float(model.logpdf(to_pyhf(model, layout, pars), data)[0])
        assert np.isfinite(theirs) and ours == pytest.approx(theirs, rel=1e-10), (spread, ours, theirs)


@pytest.mark.parametrize("name", ["tiny", "demo", "agc"])
def test_discovery_significance_equals_pyhf_and_fit(workspaces, name):
    import pyhf

    from analysis.stats.discovery import significance

    ws = workspaces[name]
    model, asimov = pyhf_model(ws, asimov=True)
    ours = compiled(jo.discovery_significance, *jm.from_workspace(ws))
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        config = model.config
        q0 = float(pyhf.infer.test_statistics.q0(0.0, asimov, model, config.suggested_init(),
                                                 config.suggested_bounds(), config.suggested_fixed()))
    finally:
        pyhf.set_backend("numpy")
    assert ours > 0.5
    assert ours == pytest.approx(np.sqrt(q0), rel=1e-6)
    fit = significance(ws, {"asimov": True, "tolerance": 1e-4})      # MIGRAD's default tolerance: 3e-6
    assert ours == pytest.approx(fit.expected_significance, rel=1e-6)


def test_poi_uncertainty_equals_the_hessian_of_pyhfs_model(workspaces):
    """The AGC's: its measurement is the POI (tracing pyhf's JAX model costs ~20 s a model)."""
    ws = workspaces["agc"]
    layout, yields = jm.from_workspace(ws)
    model, asimov = pyhf_model(ws, backend="jax", asimov=True)
    try:
        init = jnp.asarray(model.config.suggested_init(), dtype=float)
        free = [i for i, fixed in enumerate(model.config.suggested_fixed()) if not fixed]
        hessian = jax.jit(jax.hessian(lambda p: -model.logpdf(p, asimov)[0]))(init)[np.ix_(free, free)]
        poi = free.index(model.config.poi_index)
        theirs = float(np.sqrt(np.linalg.inv(np.asarray(hessian))[poi, poi]))
    finally:
        pyhf_model(ws)                                  # back to numpy
    assert compiled(jo.poi_uncertainty, layout, yields) == pytest.approx(theirs, rel=1e-8)


@pytest.mark.parametrize("objective", [jo.discovery_significance, jo.poi_uncertainty])
def test_gradients_equal_central_finite_differences(workspaces, objective):
    """d objective / d (scale of the largest background) at three scales."""
    layout, yields = jm.from_workspace(workspaces["agc"])
    yields = {k: jnp.asarray(v) for k, v in yields.items()}
    rows = jnp.asarray([1.0 if sample == "wjets" else 0.0 for _, sample in layout.samples])

    def scaled(scale):
        factor = 1.0 + (scale - 1.0) * rows
        out = {k: v * factor[:, None] for k, v in yields.items() if k in ("nominal", "stat_unc")}
        out.update({k: yields[k] * factor[None, :, None] for k in ("histosys_hi", "histosys_lo")})
        return objective(layout, {**yields, **out})

    gradient, value = jax.jit(jax.grad(scaled)), jax.jit(scaled)     # compiled: seconds, not op by op
    for scale in (0.6, 1.0, 1.7):
        step = 1e-4 * scale
        central = (float(value(scale + step)) - float(value(scale - step))) / (2 * step)
        assert abs(central) > 1e-6
        assert float(gradient(scale)) == pytest.approx(central, rel=1e-4), scale


def test_modifiers_outside_the_model_are_refused_by_name():
    ws = json.loads(json.dumps(TINY))
    ws["channels"][0]["samples"][1]["modifiers"].append({"name": "bkg_shape", "type": "shapesys", "data": [1, 1, 1]})
    with pytest.raises(FitError, match="modifier 'bkg_shape' of sample 'background' has type 'shapesys'"):
        jm.from_workspace(ws)
