"""Names against the input files: every name and field an expression reads must be a
branch of the dataset's files (or an object defined before it). A misspelt one is a
located config error with the closest branch as a hint; the types of what they read are
checked afterwards, on type-only arrays (:mod:`analysis.select.typecheck`).
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

#: properties coffea's vector behaviours add to collections (not branches)
DERIVED_FIELDS = frozenset({"energy", "px", "py", "pz", "p", "p2", "rho", "rho2", "r", "r2", "t", "t2", "x", "y",
                            "z", "theta", "mt", "mt2", "mass2", "tau", "pvec", "boostvec", "absolute"})


def closest(word: str, choices: Iterable[str]) -> str:
    """`` (hint: did you mean 'X'?)`` for the choice closest to ``word``, or ``""``.

    >>> closest("ptt", ["pt", "eta", "phi"])
    " (hint: did you mean 'pt'?)"
    >>> closest("zzz", ["pt"])
    ''
    """
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (hint: did you mean '{found[0]}'?)" if found else ""


def check_names(cfg: Any, branches: Iterable[str]) -> None:
    """Every name and field an expression of ``cfg`` (an AnalysisConfig) reads must exist
    in the input files (or be an object defined before it); errors name the config key
    and line, with the closest name as a hint.

    ``branches``: the branch names of the dataset's input files.

    >>> from analysis.io.demo_streams import BRANCHES
    >>> check_names(cfg, BRANCHES)
    """
    from analysis.names import raw_roots

    branches = set(branches)
    roots = raw_roots(branches)
    objects = list(cfg.data.get("objects", {}))
    source_of: dict = {}
    for name, obj in cfg.data.get("objects", {}).items():
        source_of[name] = source_of.get(obj["from"], obj["from"])
    outputs = {c for spec in cfg.data.get("models", {}).values() for c in spec["outputs"].values()}
    for path, compiled in cfg._compiled.items():
        known = set(roots)
        if path[0] != "skim":
            known |= set(objects)
        if path[0] not in ("skim", "models"):        # models' output columns (analysis.ml)
            known |= outputs
        if path[0] == "objects":
            known = set(roots) | set(objects[:objects.index(path[1])])
        unknown = sorted(compiled.names - known)
        if unknown:
            raise cfg.error(f"unknown name '{unknown[0]}' in expression {compiled.text!r}"
                            " (not a branch of the input files nor an object defined before it)"
                            + closest(unknown[0], known), *path)
        for field in sorted(compiled.fields):
            root, _, attr = field.partition(".")
            collection = source_of.get(root, root)
            if attr and f"n{collection}" in branches and f"{collection}_{attr}" not in branches \
                    and attr not in DERIVED_FIELDS:
                fields = [b[len(collection) + 1:] for b in branches if b.startswith(collection + "_")]
                raise cfg.error(f"'{field}' in expression {compiled.text!r}: the input files have no "
                                f"branch '{collection}_{attr}'" + closest(attr, fields), *path)
