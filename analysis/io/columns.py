"""Which raw branches an analysis reads, and how flat branches group into collections.

The skim keeps only the branches that some expression of the config can reach, so a
947-branch NanoAOD file shrinks to the dozen columns the analysis uses.
"""

from __future__ import annotations

from typing import Iterable

from analysis.config.model import AnalysisConfig

EVENT_IDS = ("run", "luminosityBlock", "event")
CANDIDATE_FIELDS = ("pt", "eta", "phi", "mass", "charge")


def collection_branches(branches: Iterable[str], collection: str) -> list:
    prefix = collection + "_"
    return [b for b in branches if b.startswith(prefix)]


def needed_branches(cfg: AnalysisConfig, branches: Iterable[str]) -> list:
    """The raw branches the config's expressions can read, given a file's branch list.

    Fields read through an attribute (``Jet.pt``) keep one branch; a collection passed
    whole (``agc.m_bjj(jets)``) or a property that is not a branch (``jets.energy``)
    keeps every branch of that collection. Objects map back to the collection they are
    built from.

    >>> needed_branches(cfg, ["event", "genWeight", "nJet", "Jet_pt", "Jet_area", "nPhoton", "Photon_pt"])
    ['event', 'nJet', 'Jet_pt', 'Jet_area']
    """
    branches = list(branches)
    memo = cfg.__dict__.setdefault("_needed_branches", {})   # every Skim of a DAG asks, with the same list
    found = memo.get(tuple(branches))
    if found is None:
        found = memo[tuple(branches)] = _needed(cfg, branches)
    return list(found)


def _needed(cfg: AnalysisConfig, branches: list) -> list:
    branch_set = set(branches)
    keep = {b for b in EVENT_IDS if b in branch_set}
    keep.update(b for b in cfg.section("skim", "keep", default=[]) if b in branch_set)
    _add_reads(cfg, cfg._compiled.values(), branches, keep)
    for syst in cfg.systematics.values():
        for side in ("up", "down"):
            if isinstance(syst.get(side), dict):
                for target in syst[side]:
                    root, _, attr = target.partition(".")
                    _keep_field(root, attr, branch_set, branches, keep)
    # coffea's NanoAOD behaviours build a collection only with its kinematics and charge:
    # counted ones (nJet + Jet_*) and uncounted ones (MET_pt needs MET_phi)
    collections = {b.split("_", 1)[0] for b in keep if "_" in b}
    keep.update(f"{c}_{f}" for c in collections for f in CANDIDATE_FIELDS if f"{c}_{f}" in branch_set)
    return [b for b in branches if b in keep]


def expression_branches(cfg: AnalysisConfig, paths: Iterable[tuple], branches: Iterable[str]) -> list:
    """The raw branches that the expressions at ``paths`` read, of ``branches``: what the
    skim reads first to decide which events its preselection keeps. A collection read only
    through its multiplicity keeps one of its fields, so that it exists once grouped
    (:func:`group_collections`).

    >>> expression_branches(cfg, [("skim", "preselection")], ["nJet", "Jet_pt", "Jet_eta", "nMuon", "Muon_pt",
    ...                                                        "nElectron", "Electron_pt", "MET_pt"])
    ['nJet', 'Jet_pt', 'nMuon', 'Muon_pt', 'nElectron', 'Electron_pt']
    """
    branches = list(branches)
    keep: set = set()
    _add_reads(cfg, [cfg.expression(*path) for path in paths], branches, keep)
    for name in list(keep):
        members = collection_branches(branches, name[1:]) if name.startswith("n") else []
        if members and not set(members) & keep:
            keep.add(members[0])
    return [b for b in branches if b in keep]


def _add_reads(cfg: AnalysisConfig, compiled: Iterable, branches: list, keep: set) -> None:
    """Add to ``keep`` the branches that the compiled expressions ``compiled`` read
    (objects map back to the collection they are built from)."""
    branch_set = set(branches)
    source_of: dict[str, str] = {}
    for name, obj in cfg.data.get("objects", {}).items():
        source_of[name] = source_of.get(obj["from"], obj["from"])
    functions = cfg.plugin_functions()
    for expression in compiled:
        bare = _bare_reads(expression.text, functions)
        for field in expression.fields:
            root, _, attr = field.partition(".")
            attrs = [attr] if attr else sorted(bare.get(root) or [""])
            for attr in attrs:
                _keep_field(source_of.get(root, root), attr, branch_set, branches, keep)


def _bare_reads(text: str, functions: dict) -> dict:
    """For names used bare (not through an attribute), the fields they need.

    ``ak.num(jets)`` needs only the multiplicity (``COUNT``); a plugin function with a
    ``reads`` attribute (``m_bjj.reads = ("pt", "eta", "phi", "mass")``) needs those
    fields of the collections passed to it, where they exist (``OPTIONAL``: MET passed
    to a function that reads pt/eta/phi/mass keeps MET_pt and MET_phi); the vector
    methods need the kinematics of their receiver and of their argument
    (``Jet.metric_table(muons)``; the argument of ``nearest`` is returned, so it needs
    every field); any other bare use needs every field (None).
    """
    import ast

    tree = ast.parse(text.strip(), mode="eval")
    parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    kinematics = {OPTIONAL + f for f in CANDIDATE_FIELDS}
    needs: dict = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name):
            continue
        parent = parents.get(id(node))
        fields = None
        if isinstance(parent, ast.Attribute):
            call = parents.get(id(parent))
            if not (parent.attr in VECTOR_METHODS | {"nearest"} and isinstance(call, ast.Call) and call.func is parent):
                continue                   # a field (Jet.pt): read through the attribute
            fields = kinematics            # the receiver of a vector method
        elif isinstance(parent, ast.Call) and node in parent.args:
            callee = ast.unparse(parent.func)
            if callee == "ak.num":
                fields = {COUNT}
            elif callee in functions and getattr(functions[callee], "reads", None) is not None:
                fields = {OPTIONAL + f for f in functions[callee].reads}   # (with nX where it exists)
            elif isinstance(parent.func, ast.Attribute) and parent.func.attr in VECTOR_METHODS:
                fields = kinematics
        if node.id in needs and (needs[node.id] is None or fields is None):
            needs[node.id] = None
        else:
            needs[node.id] = (needs.get(node.id) or set()) | fields if fields is not None else None
    return needs


COUNT = "\0count"
OPTIONAL = "\0optional:"
#: methods of the expression language that compute from kinematics only (see analysis/lang/expr.py)
VECTOR_METHODS = frozenset({"delta_r", "delta_phi", "metric_table"})


def _keep_field(root: str, attr: str, branch_set: set, branches: list, keep: set) -> None:
    if root in branch_set and not attr:
        keep.add(root)
        return
    members = collection_branches(branches, root)
    if not members:
        if root in branch_set:
            keep.add(root)
        return
    if attr.startswith(OPTIONAL):          # a declared read: that branch if the collection has it
        attr = attr[len(OPTIONAL):]
        if f"{root}_{attr}" in branch_set:
            keep.add(f"{root}_{attr}")
            if f"n{root}" in branch_set:
                keep.add(f"n{root}")
        return
    if attr == COUNT:
        if f"n{root}" in branch_set:
            keep.add(f"n{root}")
        else:
            keep.update(members)
        return
    if attr and f"{root}_{attr}" in branch_set:
        keep.add(f"{root}_{attr}")
    else:
        keep.update(members)
    if f"n{root}" in branch_set:
        keep.add(f"n{root}")


def group_collections(arrays: dict) -> dict:
    """Group flat NanoAOD branches into records: ``Jet_pt`` + ``nJet`` -> ``Jet.pt``.

    Counted collections become jagged records; uncounted prefixes (``MET_pt``) become
    flat records; every branch also stays available under its own name.

    >>> import awkward as ak
    >>> ns = group_collections({"nJet": ak.Array([1]), "Jet_pt": ak.Array([[40.0]])})
    >>> ns["Jet"].pt.tolist()
    [[40.0]]
    """
    import awkward as ak

    namespace = dict(arrays)
    prefixes: dict = {}
    for name in arrays:
        if "_" in name:
            prefix, field = name.split("_", 1)
            prefixes.setdefault(prefix, {})[field] = arrays[name]
    for prefix, fields in prefixes.items():
        if prefix in namespace:
            continue
        namespace[prefix] = ak.zip(fields, depth_limit=None if f"n{prefix}" in arrays else 1)
    return namespace
