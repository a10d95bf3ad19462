"""The config fork that an optimisation writes: the analysis with the optimal values.

The fork ``extends:`` the optimised config by its file name, so it belongs next to it
(the Optimise task says where to copy it), and sets each parameter's ``value``: every
ordinary task of the fork then runs the optimised cuts. Its text depends only on its
arguments, so the same optimisation writes the same bytes.

>>> print(fork_text("optimise_demo.yaml", "agc_demo_optimise", {"ht_min": 170.0}, "discovery_significance",
...                 {"start": 2.1, "optimum": 2.3}), end="")
# The optimised cuts of agc_demo_optimise (written by the Optimise task).
# Expected discovery_significance with the exact cuts: 2.1 at the start values,
# 2.3 at these. Judge them with the ordinary chain:
#   law run Fit --config <this file, next to optimise_demo.yaml>
extends: optimise_demo.yaml
name: agc_demo_optimise_optimised
optimise:
  parameters:
    ht_min: {value: 170.0}
"""

from __future__ import annotations

from typing import Mapping


def fork_name(name: str) -> str:
    """The fork's analysis name (and file stem)."""
    return f"{name}_optimised"


def fork_text(parent_file: str, name: str, values: Mapping[str, float], objective: str,
              hard: Mapping[str, float]) -> str:
    """The YAML text of the fork of config ``parent_file`` (its file name) named after
    ``name``, with parameter ``values``; ``hard``: the hard figure of merit at the
    ``start`` values and at the ``optimum``."""
    lines = [
        f"# The optimised cuts of {name} (written by the Optimise task).",
        f"# Expected {objective} with the exact cuts: {hard['start']:.6g} at the start values,",
        f"# {hard['optimum']:.6g} at these. Judge them with the ordinary chain:",
        f"#   law run Fit --config <this file, next to {parent_file}>",
        f"extends: {parent_file}",
        f"name: {fork_name(name)}",
        "optimise:",
        "  parameters:",
    ]
    lines += [f"    {key}: {{value: {float(value)!r}}}" for key, value in sorted(values.items())]
    return "\n".join(lines) + "\n"
