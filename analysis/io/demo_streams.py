"""Seeding and bookkeeping of the demo generator that is cheap to import.

Task planning needs to know how many events a generated dataset will hold (the
Poisson-drawn pseudo-data included) before generating it; this module answers that
with numpy alone (imported on first use, :mod:`analysis.lazy`), so a no-op rerun never
imports awkward, nor numpy once the pseudo-data's size is known
(:func:`analysis.io.datasets.pseudo_data_entries`).
"""

from __future__ import annotations

import zlib
from typing import Mapping

from analysis.lazy import np

ALIASES = {"ttbar__nominal": "ttbar"}
MIXTURE_TAG = 0x6D6978       # separates the Poisson draws of a mixture from MC streams
DATA_SEED_OFFSET = 1_000_003

#: the branches every generated file has (NanoAOD names)
BRANCHES = (
    "run", "luminosityBlock", "event", "genWeight", "MET_pt", "MET_phi",
    "nElectron", "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_sip3d",
    "Electron_cutBased", "Electron_charge",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Muon_tightId", "Muon_charge",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
)
_INTEGER = {"run": "uint32", "luminosityBlock": "uint32", "event": "uint64", "nElectron": "int32",
            "nMuon": "int32", "nJet": "int32", "Electron_cutBased": "int32", "Electron_charge": "int32",
            "Muon_charge": "int32", "Muon_tightId": "bool", "Jet_jetId": "int32"}
#: the awkward type of each branch of a generated file (tests/test_everyday_errors.py reads one back)
BRANCH_TYPES = {name: ("var * " if name.split("_")[0] in ("Electron", "Muon", "Jet") else "")
                + _INTEGER.get(name, "float32") for name in BRANCHES}


def rng(*entropy: int) -> np.random.Generator:
    """A PCG64 generator seeded from integers (never from Python's salted ``hash``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(e) for e in entropy])))


def name_key(process: str) -> int:
    """Stable (unsalted) hash of a process name; aliases share their target's stream."""
    return zlib.crc32(ALIASES.get(process, process).encode())


def mixture_counts(expected: Mapping[str, float], seed: int) -> dict:
    """Events per process in generated pseudo-data: N ~ Poisson(expected), seeded.

    >>> mixture_counts({"ttbar": 1000.0}, 1) == mixture_counts({"ttbar": 1000.0}, 1)
    True
    """
    return {process: int(rng(seed, MIXTURE_TAG, name_key(process)).poisson(float(expected[process])))
            for process in expected}
