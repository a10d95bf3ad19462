"""Which raw branches an analysis reads, and how flat branches group into collections.

The skim keeps only the branches that some expression of the config can reach, so a
947-branch NanoAOD file shrinks to the dozen columns the analysis uses.
"""

from __future__ import annotations

from analysis.config.model import AnalysisConfig

EVENT_IDS = ("run", "luminosityBlock", "event")


def collection_branches(branches, collection: str) -> list:
    prefix = collection + "_"
    return [b for b in branches if b.startswith(prefix)]


def needed_branches(cfg: AnalysisConfig, branches) -> list:
    """The raw branches the config's expressions can read, given a file's branch list.

    Fields read through an attribute (``Jet.pt``) keep one branch; a collection passed
    whole (``agc.m_bjj(jets)``) or a property that is not a branch (``jets.energy``)
    keeps every branch of that collection. Objects map back to the collection they are
    built from.

    >>> needed_branches(cfg, ["nJet", "Jet_pt", "Jet_eta", "genWeight"])    # doctest: +SKIP
    ['event', 'genWeight', 'nJet', 'Jet_pt']
    """
    branches = list(branches)
    branch_set = set(branches)
    source_of = {}
    for name, obj in cfg.data.get("objects", {}).items():
        source_of[name] = source_of.get(obj["from"], obj["from"])
    keep = {b for b in EVENT_IDS if b in branch_set}
    keep.update(b for b in cfg.section("skim", "keep", default=[]) if b in branch_set)
    for compiled in cfg._compiled.values():
        for field in compiled.fields:
            root, _, attr = field.partition(".")
            root = source_of.get(root, root)
            _keep_field(root, attr, branch_set, branches, keep)
    for syst in cfg.systematics.values():
        for side in ("up", "down"):
            if isinstance(syst.get(side), dict):
                for target in syst[side]:
                    root, _, attr = target.partition(".")
                    _keep_field(root, attr, branch_set, branches, keep)
    ordered = [b for b in branches if b in keep]
    return ordered


def _keep_field(root: str, attr: str, branch_set: set, branches: list, keep: set) -> None:
    if root in branch_set and not attr:
        keep.add(root)
        return
    members = collection_branches(branches, root)
    if not members:
        if root in branch_set:
            keep.add(root)
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
