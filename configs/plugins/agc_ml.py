"""Jet-parton assignment features of the AGC ttbar ML variant (a plugin: configs list it).

An event with >= 4 jets and a lepton has 12 candidate assignments of its four leading
jets to (b of the hadronic top, b of the leptonic top, W jet, W jet): every ordered pair
of b jets, the other two jets being the W's (unordered, so the features are symmetric in
them). Each candidate gets the FEATURES below; a model scores the candidates
(``models:`` in configs/agc_ttbar_ml.yaml) and the best one gives the observables.
``configs/models/make_agc_assignment.py`` trains that model on these same features.
"""

import itertools

import awkward as ak
import numpy as np

#: (b_had, b_lep, w1, w2): indices into the four leading jets, one row per candidate
PERMUTATIONS = np.array([(bh, bl, *sorted({0, 1, 2, 3} - {bh, bl}))
                         for bh, bl in itertools.permutations(range(4), 2)])
#: the features of one candidate, in the order of the model's input
FEATURES = ("dr_lep_blep", "dr_w1w2", "dr_w_bhad", "m_lep_blep", "m_w", "m_top_had", "pt_top_had",
            "btag_bhad", "btag_blep", "btag_w_max")


def assignment_features(jets, electrons, muons):
    """The features of every candidate assignment: ``[event][candidate][feature]`` (float32).

    ``jets``: pt-ordered jets with pt/eta/phi/mass/btagCSVV2; ``electrons``, ``muons``: the
    leptons (the leading one is used). An event with fewer than 4 jets or no lepton has
    no candidate (an empty list), else 12.

    >>> assignment_features(events.Jet, events.Electron, events.Muon)   # doctest: +SKIP
    """
    features, has = _features(jets, electrons, muons)
    counts = np.where(has, len(PERMUTATIONS), 0)
    rows = ak.from_numpy(features.reshape(-1, len(FEATURES)))
    return ak.unflatten(rows, counts)


def assignment_feature(jets, electrons, muons, name):
    """One feature (by its name in FEATURES) of every candidate: ``[event][candidate]``.

    >>> assignment_feature(events.Jet, events.Electron, events.Muon, "m_top_had")   # doctest: +SKIP
    """
    if name not in FEATURES:
        raise ValueError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")
    return assignment_features(jets, electrons, muons)[:, :, FEATURES.index(name)]


#: the fields the functions read of the collections passed to them (the skim keeps these)
assignment_features.reads = ("pt", "eta", "phi", "mass", "btagCSVV2")
assignment_feature.reads = ("pt", "eta", "phi", "mass", "btagCSVV2")


def _features(jets, electrons, muons):
    """(features of the events with a candidate: (n, 12, len(FEATURES)) float32, which events)."""
    has = ak.to_numpy((ak.num(jets, axis=1) >= 4) & ((ak.num(electrons, axis=1) + ak.num(muons, axis=1)) >= 1))
    lead = {f: _leading(getattr(jets, f), 4)[has] for f in ("pt", "eta", "phi", "mass", "btagCSVV2")}
    lepton = {f: ak.concatenate([getattr(electrons, f), getattr(muons, f)], axis=1) for f in ("pt", "eta", "phi", "mass")}
    first = ak.argmax(lepton["pt"], axis=1, keepdims=True)
    lep = {f: ak.to_numpy(ak.fill_none(ak.firsts(v[first]), 0.0)).astype(np.float64)[has, None] for f, v in lepton.items()}
    bh, bl, w1, w2 = PERMUTATIONS.T
    p4 = _p4(lead["pt"], lead["eta"], lead["phi"], lead["mass"])            # (n, 4 jets, 4)
    w = p4[:, w1] + p4[:, w2]
    top = w + p4[:, bh]
    lep_p4 = _p4(lep["pt"], lep["eta"], lep["phi"], lep["mass"])           # (n, 1, 4)
    w_eta, w_phi = _eta_phi(w)
    columns = {
        "dr_lep_blep": _dr(lep["eta"], lep["phi"], lead["eta"][:, bl], lead["phi"][:, bl]),
        "dr_w1w2": _dr(lead["eta"][:, w1], lead["phi"][:, w1], lead["eta"][:, w2], lead["phi"][:, w2]),
        "dr_w_bhad": _dr(w_eta, w_phi, lead["eta"][:, bh], lead["phi"][:, bh]),
        "m_lep_blep": _mass(lep_p4 + p4[:, bl]),
        "m_w": _mass(w),
        "m_top_had": _mass(top),
        "pt_top_had": np.hypot(top[..., 0], top[..., 1]),
        "btag_bhad": lead["btagCSVV2"][:, bh],
        "btag_blep": lead["btagCSVV2"][:, bl],
        "btag_w_max": np.maximum(lead["btagCSVV2"][:, w1], lead["btagCSVV2"][:, w2]),
    }
    return np.stack([columns[f] for f in FEATURES], axis=-1).astype(np.float32), has


def _leading(values, n):
    """The first ``n`` entries of each event's list as an (events, n) float64 array (0 where absent)."""
    return ak.to_numpy(ak.fill_none(ak.pad_none(values, n, axis=1, clip=True), 0.0)).astype(np.float64)


def _p4(pt, eta, phi, mass):
    """(px, py, pz, E) on a new last axis."""
    pz = pt * np.sinh(eta)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt * pt + pz * pz + mass * mass)], axis=-1)


def _mass(p4):
    return np.sqrt(np.maximum(p4[..., 3] ** 2 - p4[..., 0] ** 2 - p4[..., 1] ** 2 - p4[..., 2] ** 2, 0.0))


def _eta_phi(p4):
    pt = np.maximum(np.hypot(p4[..., 0], p4[..., 1]), 1e-9)
    return np.arcsinh(p4[..., 2] / pt), np.arctan2(p4[..., 1], p4[..., 0])


def _dr(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)
