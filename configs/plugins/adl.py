"""Combinatorics of the IRIS-HEP ADL benchmark queries (configs/adl/q*.yaml).

The config language has no variables, so a candidate built from combinations (a muon
pair, a trijet) would be rebuilt for every use in one expression. These functions build
it once and return what the queries cut on or plot. Each one takes raw collections
(coffea NanoAOD records) and declares with ``reads`` which of their fields it uses, so
the skim keeps only those branches.
"""

import awkward as ak
import numpy as np

_KINEMATICS = ("pt", "eta", "phi", "mass")


def pair_mass(objects, opposite_charge=False):
    """Invariant mass of every pair of ``objects`` in each event (jagged), only
    opposite-charge pairs with ``opposite_charge=True`` (query 5).

    >>> pair_mass(events.Muon, opposite_charge=True)     # doctest: +SKIP
    <Array [[91.2], [], ...] type='n * var * float32'>
    """
    pairs = ak.combinations(objects, 2, fields=["a", "b"])
    if opposite_charge:
        pairs = pairs[pairs.a.charge != pairs.b.charge]
    return (pairs.a + pairs.b).mass


pair_mass.reads = _KINEMATICS + ("charge",)


def best_trijet(jets, mass=172.5):
    """Of all three-jet combinations, the one with invariant mass closest to ``mass``:
    a record per event with its ``pt``, ``mass`` and ``max_btag`` (the largest ``btag``
    of its three jets), None for events with fewer than three jets (query 6).

    >>> best_trijet(events.Jet).pt                       # doctest: +SKIP
    """
    trijets = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    p4 = trijets.j1 + trijets.j2 + trijets.j3
    best = ak.argmin(abs(p4.mass - mass), axis=1, keepdims=True)
    btag = np.maximum(trijets.j1.btag, np.maximum(trijets.j2.btag, trijets.j3.btag))
    return ak.firsts(ak.zip({"pt": p4.pt[best], "mass": p4.mass[best], "max_btag": btag[best]}))


best_trijet.reads = _KINEMATICS + ("btag",)


def sfos_mt(electrons, muons, met, mass=91.2):
    """Transverse mass of ``met`` and the highest-pt light lepton that is not in the
    same-flavour opposite-charge pair with invariant mass closest to ``mass``; None for
    events with fewer than three light leptons or no such pair (query 8).

    >>> sfos_mt(events.Electron, events.Muon, events.MET)   # doctest: +SKIP
    """
    fields = _KINEMATICS + ("charge",)
    leptons = ak.concatenate([
        ak.zip({**{f: electrons[f] for f in fields}, "flavour": ak.zeros_like(electrons.charge)}),
        ak.zip({**{f: muons[f] for f in fields}, "flavour": ak.ones_like(muons.charge)}),
    ], axis=1)
    leptons = ak.with_name(leptons, "PtEtaPhiMCandidate", behavior=electrons.behavior)
    pairs = ak.argcombinations(leptons, 2, fields=["i", "j"])
    a, b = leptons[pairs.i], leptons[pairs.j]
    pairs = pairs[(a.flavour == b.flavour) & (a.charge != b.charge)]
    distance = abs((leptons[pairs.i] + leptons[pairs.j]).mass - mass)
    best = ak.firsts(pairs[ak.argmin(distance, axis=1, keepdims=True)])
    index = ak.local_index(leptons, axis=1)
    others = leptons[(index != best.i) & (index != best.j)]
    third = ak.firsts(others[ak.argmax(others.pt, axis=1, keepdims=True)])
    return np.sqrt(2 * third.pt * met.pt * (1 - np.cos(met.delta_phi(third))))


sfos_mt.reads = _KINEMATICS + ("charge",)
