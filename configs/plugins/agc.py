"""AGC ttbar observables that need combinatorics (a plugin: the config lists it)."""

import awkward as ak


def m_bjj(jets, btagged):
    """Mass of the highest-pt trijet that contains at least one b-tagged jet (AGC 4j2b).

    ``jets``: a jagged collection with pt/eta/phi/mass (coffea Jet); ``btagged``: a
    jagged boolean of the same shape saying which jets are b-tagged (so the b-tag
    branch and working point stay in the config). Events without such a trijet give None.

    >>> m_bjj(events.Jet, events.Jet.btagCSVV2 > 0.5)      # doctest: +SKIP
    """
    jets = ak.with_field(jets, btagged, "heirloom_btagged")
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    p4 = trijet.j1 + trijet.j2 + trijet.j3
    has_btag = trijet.j1.heirloom_btagged | trijet.j2.heirloom_btagged | trijet.j3.heirloom_btagged
    p4 = p4[has_btag]
    best = ak.argmax(p4.pt, axis=1, keepdims=True)
    return ak.firsts(p4[best].mass)


#: the jet fields m_bjj reads: the skim keeps just these (plus what the config reads)
m_bjj.reads = ("pt", "eta", "phi", "mass")
