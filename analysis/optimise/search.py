"""The search: an optimiser on the relaxed objective, the rounding of its optimum, and
a scan around it.

Parameters are searched in widths of their sigmoid (``u = (theta - low) x slope``), the
scale on which the relaxed objective changes, so that one step size suits a threshold in
GeV and a count of jets alike (L-BFGS-B's first step is then one width, not the range).
L-BFGS-B is SciPy's, with the bounds; Adam is optax's, each step projected back into the
bounds. Every evaluation is recorded (:class:`Step`), and the optimum is the best point
evaluated. It is then rounded to each parameter's ``round`` and judged with the exact
cuts; :func:`scan` shows how flat the relaxed objective is around it.

>>> rounded({"ht_min": 172.26}, {"ht_min": {"round": 5, "bounds": [0, 400]}})
{'ht_min': 170.0}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np

from analysis.errors import FitError

#: points of the scan of each parameter around the optimum
SCAN_POINTS = 21
#: half-width of the scan, in widths of the sigmoid (1 / slope)
SCAN_WIDTHS = 4.0
#: half-width of the box that each run of L-BFGS-B stays in, in sigmoid widths
TRUST_WIDTHS = 3.0
#: passes of the hard refinement over the parameters, and its most points per parameter and pass
REFINE_PASSES = 2
REFINE_POINTS = 81
#: half-width of the hard refinement, in widths of the sigmoid
REFINE_WIDTHS = 2.0


@dataclass(frozen=True)
class Step:
    """One evaluation: the parameter values, the relaxed figure of merit and its gradient."""

    evaluation: int
    theta: dict
    figure: float
    gradient: dict


def search(problem: Any, method: Mapping, start: np.ndarray, progress: Callable[[Step], None] | None = None) -> list[Step]:
    """Minimise ``problem``'s relaxed loss from ``start`` with ``method`` (``name``:
    ``L-BFGS-B`` or ``adam``, ``steps``, ``learning_rate``); returns every evaluation."""
    value_and_grad = problem.value_and_grad()
    low = problem.bounds[:, 0]
    width = 1.0 / np.asarray([float(problem.slopes[name]) for name in problem.names])   # theta per unit of u
    top = (problem.bounds[:, 1] - low) / width
    steps: list[Step] = []

    last: dict = {}

    def evaluate(u: np.ndarray) -> tuple[float, np.ndarray]:
        if "u" in last and np.array_equal(last["u"], u):           # a restart asks for the point it stands on
            return last["result"]
        x = low + width * np.clip(u, 0.0, top)
        loss, grad = value_and_grad(x)
        loss, grad = float(loss), np.asarray(grad, dtype=float)
        if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
            raise FitError(f"the relaxed objective is not finite at {dict(zip(problem.names, x.tolist()))}: "
                           "a region may have lost all its events (narrow the bounds)")
        step = Step(len(steps), _named(problem, x), problem.figure(loss),
                    _named(problem, -grad if problem.objective == "discovery_significance" else grad))
        steps.append(step)
        if progress is not None:
            progress(step)
        last["u"], last["result"] = np.array(u, dtype=float), (loss, grad * width)
        return last["result"]

    u0 = (np.asarray(start, dtype=float) - low) / width
    if method["name"] == "adam":
        _adam(evaluate, u0, top, int(method["steps"]), float(method["learning_rate"]))
    else:
        _lbfgsb(evaluate, u0, top, int(method["steps"]), lambda: len(steps))
    return steps


def _lbfgsb(evaluate: Callable, u0: np.ndarray, top: np.ndarray, steps: int, count: Callable[[], int]) -> None:
    """SciPy's L-BFGS-B within a box of :data:`TRUST_WIDTHS` sigmoid widths around the
    current point, moved while the optimum lands on the box's edge: a quasi-Newton step
    extrapolated from a nearly straight stretch cannot jump onto a distant plateau (where
    no events are left to cut, the gradient vanishes and the search would stop)."""
    from scipy.optimize import minimize

    u = np.asarray(u0, dtype=float)
    while count() < steps:
        low, high = np.maximum(u - TRUST_WIDTHS, 0.0), np.minimum(u + TRUST_WIDTHS, top)
        result = minimize(evaluate, u, jac=True, method="L-BFGS-B", bounds=list(zip(low, high)),
                          options={"maxfun": steps - count(), "maxiter": steps, "ftol": 1e-10, "gtol": 1e-8})
        edge = ((np.abs(result.x - low) < 1e-9) & (low > 0)) | ((np.abs(result.x - high) < 1e-9) & (high < top))
        if not edge.any() or np.allclose(result.x, u):
            return
        u = result.x


def _adam(evaluate: Callable, u0: np.ndarray, top: np.ndarray, steps: int, learning_rate: float) -> None:
    import jax.numpy as jnp
    import optax

    optimiser = optax.adam(learning_rate)
    u = jnp.asarray(u0)
    state = optimiser.init(u)
    for _ in range(steps):
        _, grad = evaluate(np.asarray(u))
        updates, state = optimiser.update(jnp.asarray(grad), state, u)
        u = jnp.clip(optax.apply_updates(u, updates), 0.0, jnp.asarray(top))


def _named(problem: Any, values: Any) -> dict:
    return {name: float(v) for name, v in zip(problem.names, np.asarray(values).tolist())}


def best(steps: list[Step], objective: str) -> Step:
    """The evaluation with the best relaxed figure of merit (the first of equals)."""
    if not steps:
        raise FitError("the optimiser made no evaluation")
    sign = -1.0 if objective == "discovery_significance" else 1.0
    return min(steps, key=lambda s: (sign * s.figure, s.evaluation))


def rounded(theta: Mapping[str, float], spec: Mapping[str, Mapping]) -> dict:
    """Each value rounded to a multiple of its parameter's ``round`` (kept as it is
    without one), then clipped into its bounds."""
    out = {}
    for name, value in theta.items():
        step = spec[name].get("round")
        value = float(np.round(value / step) * step) if step else float(value)
        low, high = spec[name]["bounds"]
        out[name] = float(min(max(value, low), high)) + 0.0
    return out


def refine(problem: Any, at: Mapping[str, float], spec: Mapping[str, Mapping]) -> dict:
    """The relaxed optimum ``at`` (rounded), moved to the best point of the exact cuts
    nearby: each parameter in turn is scanned with the others held, on multiples of its
    ``round`` within :data:`REFINE_WIDTHS` sigmoid widths, until a pass changes nothing
    (at most :data:`REFINE_PASSES`; one pass for one parameter). The
    relaxation locates the optimum; the exact cuts, cheap to evaluate on the loose tables,
    place it (the relaxed optimum is biased by the sigmoids' width, docs/optimise.md)."""
    hard = problem.hard_loss()
    best = dict(at)
    best_loss = float(hard(_vector(problem, best)))
    for _ in range(REFINE_PASSES if len(problem.names) > 1 else 1):
        before = dict(best)
        for name in problem.names:
            half = REFINE_WIDTHS / float(spec[name]["slope"])
            step = float(spec[name].get("round") or 2 * half / (REFINE_POINTS - 1))
            step *= max(1, int(np.ceil(2 * half / step / (REFINE_POINTS - 1))))
            for value in np.arange(best[name] - half, best[name] + half + step / 2, step):
                trial = rounded({**best, name: float(value)}, spec)
                loss = float(hard(_vector(problem, trial)))
                if loss < best_loss - 1e-12:
                    best, best_loss = trial, loss
        if best == before:
            break
    return best


def _vector(problem: Any, theta: Mapping[str, float]) -> np.ndarray:
    return np.asarray([theta[n] for n in problem.names], dtype=float)


def scan(problem: Any, at: Mapping[str, float], slopes: Mapping[str, float]) -> dict:
    """For each parameter, the relaxed and the hard figure of merit at
    :data:`SCAN_POINTS` values within :data:`SCAN_WIDTHS` sigmoid widths of ``at`` (the
    others held at ``at``)."""
    value_and_grad, hard = problem.value_and_grad(), problem.hard_loss()
    out = {}
    for i, name in enumerate(problem.names):
        low, high = problem.bounds[i]
        half = SCAN_WIDTHS / slopes[name]
        grid = np.linspace(max(low, at[name] - half), min(high, at[name] + half), SCAN_POINTS)
        rows = []
        for value in grid:
            x = np.asarray([at[n] for n in problem.names], dtype=float)
            x[i] = value
            rows.append({"value": float(value), "relaxed": problem.figure(value_and_grad(x)[0]),
                         "hard": problem.figure(hard(x))})
        out[name] = rows
    return out


def as_records(steps: list[Step]) -> list[dict]:
    return [asdict(step) for step in steps]
