"""The ``optimise:`` section: parameters that expressions name as ``opt.<name>``.

A config with this section is still an ordinary analysis: before its expressions are
compiled, every ``opt.<name>`` is replaced by the parameter's ``value``
(:func:`resolve_parameters`), so Skim, Select and the rest see plain numbers and their
keys change when a value does. The texts as written are kept in
``cfg.parametrised`` (key path -> text) for the Optimise task, which relaxes the cuts
on the parameters (:mod:`analysis.lang.relax`).

>>> cfg = load_config("configs/optimise_demo.yaml")
>>> cfg.expression("regions", "4j2b", "cut").text, cfg.parametrised[("regions", "4j2b", "cut")]
('(ak.num(bjets) >= 2) & (ak.sum(jets.pt, axis=1) > 150.0)', '(ak.num(bjets) >= 2) & (ak.sum(jets.pt, axis=1) > opt.ht_min)')
"""

from __future__ import annotations

from typing import Any

from analysis.errors import ExpressionError
from analysis.lang.parameters import ROOT, references, substitute
from analysis.lang.relax import relax

DEFAULT_METHOD = {"name": "L-BFGS-B", "steps": 50}
ADAM_LEARNING_RATE = 0.1


def parameters(cfg: Any) -> dict[str, dict]:
    """``{name: {value, bounds, slope, round}}`` of the optimise section ({} without one)."""
    return dict(cfg.data.get("optimise", {}).get("parameters", {}))


def method(cfg: Any) -> dict:
    """The optimiser and its settings, with defaults (L-BFGS-B, 50 evaluations; adam:
    100 steps of learning rate 0.1).

    >>> method(load_config("configs/optimise_demo.yaml"))
    {'name': 'L-BFGS-B', 'steps': 40}
    """
    spec = dict(cfg.data.get("optimise", {}).get("method") or DEFAULT_METHOD)
    if spec["name"] == "adam":
        spec.setdefault("steps", 100)
        spec.setdefault("learning_rate", ADAM_LEARNING_RATE)
    else:
        spec.setdefault("steps", DEFAULT_METHOD["steps"])
    return spec


def resolve_parameters(cfg: Any, paths) -> None:
    """Check the section, then write each parameter's value into the expressions at
    ``paths`` that name it (their texts as written go to ``cfg.parametrised``); every
    error names the key and line."""
    declared = parameters(cfg)
    for name, spec in declared.items():
        low, high = spec["bounds"]
        if not low < high:
            raise cfg.error(f"bounds [{low:g}, {high:g}] must have low < high", "optimise", "parameters", name, "bounds")
        if not low <= spec["value"] <= high:
            raise cfg.error(f"value {spec['value']:g} is outside its bounds [{low:g}, {high:g}]",
                            "optimise", "parameters", name, "value")
    method_spec = cfg.data.get("optimise", {}).get("method") or {}
    if "learning_rate" in method_spec and method_spec["name"] != "adam":
        raise cfg.error("learning_rate is a setting of adam only", "optimise", "method", "learning_rate")
    values = {name: float(spec["value"]) for name, spec in declared.items()}
    used: set = set()
    for path in paths:
        text = _text_at(cfg.data, path)
        if not isinstance(text, str) or not references(text):
            continue
        if not declared:
            raise cfg.error(f"'{ROOT}.{references(text)[0][0]}' names an optimisation parameter, but the config "
                            "has no 'optimise' section", *path)
        try:
            resolved = substitute(text, values)
            relax(text, {name: float(spec["slope"]) for name, spec in declared.items()})   # relaxable?
        except ExpressionError as err:
            raise cfg.error(str(err), *path) from None
        used.update(name for name, _, _ in references(text))
        cfg.parametrised[tuple(path)] = text
        _set_text(cfg.data, path, resolved)
    unused = sorted(set(declared) - used)
    if unused:
        raise cfg.error(f"parameter '{unused[0]}' is named by no expression (write {ROOT}.{unused[0]} in a cut)",
                        "optimise", "parameters", unused[0])


def _text_at(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def _set_text(data: Any, path: tuple, text: str) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = text
