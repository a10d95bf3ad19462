"""CLs upper limits (analysis/stats/limits.py, analysis/stats/cls_search.py): the CLs of a
tested point are pyhf's hypotest's, the secant search finds the limits that a tight
cabinetry root search finds, the grid gives pyhf's upper_limit, any number of workers
gives the same bytes, and a bracket without the crossing is named."""

from __future__ import annotations

import math

import pytest

WORKSPACE = {
    "channels": [{"name": "SR", "samples": [
        {"name": "signal", "data": [4.0, 9.0, 5.0], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}]},
        {"name": "background", "data": [40.0, 30.0, 20.0], "modifiers": [
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
            {"name": "jes", "type": "histosys", "data": {"hi_data": [42.0, 30.5, 19.0],
                                                         "lo_data": [38.0, 29.5, 21.0]}},
            {"name": "lumi", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}]}]}],
    "observations": [{"name": "SR", "data": [47.0, 41.0, 22.0]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[0, 10]]}]}}],
    "version": "1.0.0",
}


@pytest.fixture(scope="module")
def model_and_data():
    import cabinetry
    import pyhf

    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
    return cabinetry.model_utils.model_and_data(WORKSPACE)


@pytest.mark.parametrize("mu", [0.3, 1.0, 2.2, 4.0])
def test_a_tested_point_has_the_cls_of_pyhfs_hypotest(model_and_data, mu):
    import pyhf

    from analysis.stats.cls_search import cls_at, prepare

    model, data = model_and_data
    curve = prepare(model, data)
    observed, expected = cls_at(curve, mu)
    reference = pyhf.infer.hypotest(mu, data, model, par_bounds=list(curve.bounds), return_expected_set=True)
    assert observed == pytest.approx(float(reference[0]), rel=1e-9, abs=1e-12)
    assert expected == pytest.approx([float(x) for x in reference[1]], rel=1e-9, abs=1e-12)


def test_migrad_alone_gives_the_cls_of_migrad_and_hesse(model_and_data):
    """The limit's fits run without HESSE (analysis.stats.lean_minuit): the same curve and
    the same CLs, bit for bit, as with pyhf's optimizer; and two workers prepare the same
    curve as one."""
    import pyhf

    from analysis.stats import lean_minuit
    from analysis.stats.cls_search import cls_at, prepare

    model, data = model_and_data
    backend = pyhf.get_backend()
    try:
        pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
        full = prepare(model, data, probe=1.3)
        with_hesse = [cls_at(full, mu) for mu in (0.5, 2.0)]
        pyhf.set_backend("numpy", lean_minuit.optimizer(verbose=0))
        lean = prepare(model, data, probe=1.3, workers=2)
        assert [cls_at(lean, mu) for mu in (0.5, 2.0)] == with_hesse
    finally:
        pyhf.set_backend(*backend)
    assert (lean.asimov, lean.free_data, lean.free_asimov, lean.probes) == \
        (full.asimov, full.free_data, full.free_asimov, full.probes)


def test_the_secant_search_finds_what_a_tight_root_search_finds(model_and_data):
    import cabinetry

    from analysis.stats.limits import upper_limit

    model, data = model_and_data
    reference = cabinetry.fit.limit(model, data, bracket=[0.1, 5.0], poi_tolerance=1e-6)
    result = upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.1, 5.0]}, progress=None)
    assert result.observed == pytest.approx(float(reference.observed_limit), abs=1e-3)
    assert result.expected == pytest.approx([float(x) for x in reference.expected_limit], abs=1e-3)
    assert len(result.scan["poi_values"]) < len(reference.poi_values)          # fewer tests, two fits each
    assert result.scan["poi_values"] == sorted(result.scan["poi_values"])


def test_the_grid_gives_pyhfs_upper_limit(model_and_data):
    import numpy as np
    import pyhf

    from analysis.stats.limits import upper_limit

    model, data = model_and_data
    grid = np.linspace(0.0, 5.0, 11)
    observed, expected = pyhf.infer.intervals.upper_limits.upper_limit(data, model, scan=grid, level=0.05)
    result = upper_limit(WORKSPACE, {"cl": 0.95, "scan": {"low": 0, "high": 5, "points": 11}}, progress=None)
    assert result.observed == pytest.approx(float(observed), rel=1e-9)
    assert result.expected == pytest.approx([float(x) for x in expected], rel=1e-9)
    assert result.scan["poi_values"] == pytest.approx(list(grid))


@pytest.mark.parametrize("limit", [{"bracket": [0.1, 5.0]}, {"scan": {"low": 0, "high": 5, "points": 6}}])
def test_one_or_two_workers_give_the_same_bytes(limit):
    from analysis.stats.limits import upper_limit

    one = upper_limit(WORKSPACE, {"cl": 0.95, **limit}, progress=None, workers=1)
    two = upper_limit(WORKSPACE, {"cl": 0.95, **limit}, progress=None, workers=2)
    assert one.to_json() == two.to_json()


def test_progress_counts_the_limits_found():
    from analysis.stats.limits import upper_limit

    lines = []
    upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.1, 5.0]}, progress=lines.append)
    assert lines[-1].startswith("Limit: 6/6 limits (100 %)") and lines[-1].endswith("in all")


def test_a_bracket_from_zero_finds_the_same_limits():
    from analysis.stats.limits import upper_limit

    from_zero = upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.0, 5.0]}, progress=None)
    usual = upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.1, 5.0]}, progress=None)
    assert from_zero.observed == pytest.approx(usual.observed, abs=1e-3)
    assert from_zero.expected == pytest.approx(usual.expected, abs=1e-3)


def test_a_bracket_that_misses_the_crossing_is_named():
    from analysis.errors import FitError
    from analysis.stats.limits import upper_limit

    with pytest.raises(FitError, match=r"the observed limit lies above limit.bracket \[0.1, 1.0\]"):
        upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.1, 1.0]}, progress=None)


def test_wald_estimates_start_near_the_limits(model_and_data):
    from analysis.stats.cls_search import prepare, qtilde, wald_estimates
    from analysis.stats.limits import upper_limit

    model, data = model_and_data
    curve = prepare(model, data)
    found = upper_limit(WORKSPACE, {"cl": 0.95, "bracket": [0.1, 5.0]}, progress=None)
    estimates = wald_estimates(curve, 1.3, math.sqrt(qtilde(curve, 1.3, asimov=True)), 0.95)
    for estimate, limit in zip(estimates, [found.observed, *found.expected]):
        assert estimate == pytest.approx(limit, rel=0.1)
