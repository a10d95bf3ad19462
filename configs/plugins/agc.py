"""AGC ttbar observables that need combinatorics (a plugin: the config lists it)."""

import awkward as ak
import numpy as np


def m_bjj(jets, btag_threshold=0.5):
    """Mass of the highest-pt trijet that contains at least one b-tagged jet (AGC 4j2b).

    ``jets``: a jagged collection with pt/eta/phi/mass and btagCSVV2 (coffea Jet).
    Events without such a trijet give None.
    """
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    p4 = trijet.j1 + trijet.j2 + trijet.j3
    max_btag = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
    p4 = p4[max_btag > btag_threshold]
    best = ak.argmax(p4.pt, axis=1, keepdims=True)
    return ak.firsts(p4[best].mass)
