"""AGC ttbar observables that need combinatorics (a plugin: the config lists it)."""

import awkward as ak
import numpy as np


def m_bjj(jets, btagged):
    """Mass of the highest-pt trijet that contains at least one b-tagged jet (AGC 4j2b).

    ``jets``: a jagged collection with the fields pt/eta/phi/mass (coffea Jet); ``btagged``: a
    jagged boolean of the same shape saying which jets are b-tagged (so the b-tag
    branch and working point stay in the config). Events without such a trijet give None.

    The combinatorics is the expensive part of the AGC, so it runs on flat numpy arrays:
    the jets' Cartesian components once per jet, every trijet (``ak.argcombinations``, as
    indices into the flat jets) summed with numpy, and the best trijet of each event
    found on the flat list (the first of the largest pt, as ``ak.argmax`` picks). The
    arithmetic is the same, operation for operation, as on awkward arrays, so the masses
    are bit for bit those of the awkward form (checked by tests/test_agc_plugin.py).

    >>> m_bjj(events.Jet, events.Jet.btagCSVV2 > 0.5)      # doctest: +SKIP
    """
    jet_pt = jets["pt"]              # the fields, not vector's properties (the same arrays, read faster)
    counts = ak.to_numpy(ak.num(jet_pt, axis=1))
    pt, eta, phi, mass = (ak.to_numpy(ak.flatten(jets[name], axis=1)) for name in m_bjj.reads)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    trios = ak.argcombinations(jet_pt, 3)
    n_trios = ak.to_numpy(ak.num(trios, axis=1))
    first_jet = np.repeat(np.cumsum(counts) - counts, n_trios)
    i, j, k = (ak.to_numpy(ak.flatten(index)) + first_jet for index in ak.unzip(trios))
    sum_px, sum_py = px[i] + px[j] + px[k], py[i] + py[j] + py[k]
    sum_pz, sum_e = pz[i] + pz[j] + pz[k], energy[i] + energy[j] + energy[k]
    trijet_pt2 = sum_px * sum_px + sum_py * sum_py
    trijet_m2 = sum_e * sum_e - trijet_pt2 - sum_pz * sum_pz
    tagged = ak.to_numpy(ak.flatten(btagged, axis=1))
    has_btag = tagged[i] | tagged[j] | tagged[k]
    best = _first_largest(np.where(has_btag, trijet_pt2, -1.0), n_trios)
    some = n_trios > 0
    best_m2 = np.zeros(len(counts), dtype=trijet_m2.dtype)
    best_has_btag = np.zeros(len(counts), dtype=bool)
    best_m2[some], best_has_btag[some] = trijet_m2[best], has_btag[best]
    return ak.mask(ak.Array(np.sqrt(np.maximum(best_m2, 0.0))), best_has_btag)


def _first_largest(values, counts):
    """Index into ``values`` of the first largest value of each non-empty segment
    (segments of ``counts`` values, one after the other)."""
    filled = counts[counts > 0]
    starts = np.cumsum(filled) - filled
    largest = np.maximum.reduceat(values, starts)
    hits = np.flatnonzero(values == np.repeat(largest, filled))
    return hits[np.searchsorted(hits, starts)]


#: the jet fields m_bjj reads: the skim keeps just these (plus what the config reads)
m_bjj.reads = ("pt", "eta", "phi", "mass")


def jer_factor(pt, event, sigma=0.05):
    """Jet energy resolution smearing factors N(1, sigma), one per jet, reproducible.

    The AGC draws them from an unseeded generator; here each jet's factor is a hash of
    (event number, jet index), so the same jet gets the same factor in every rerun,
    every chunking and every executor. ``pt``: jagged jet pt (for the structure);
    ``event``: the event number of each event.

    >>> jer_factor(events.Jet.pt, events.event)          # doctest: +SKIP
    """
    index = ak.local_index(pt, axis=1)
    events, jets = ak.broadcast_arrays(ak.values_astype(event, np.uint64), ak.values_astype(index, np.uint64))
    counts = ak.num(pt, axis=1)
    key = ak.to_numpy(ak.flatten(events)) * np.uint64(64) + ak.to_numpy(ak.flatten(jets))
    u1 = (_splitmix64(key) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u2 = (_splitmix64(key ^ np.uint64(0x5DEECE66D)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)      # Box-Muller
    return ak.unflatten(1.0 + sigma * normal, counts)


def _splitmix64(x):
    """SplitMix64 finaliser: a well-mixed 64-bit hash (vectorised, wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

