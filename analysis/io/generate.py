"""Deterministic NanoAOD-like demo data for the AGC CMS ttbar analysis.

Generates toy events for the nine AGC process/variation samples plus a Z'->ttbar signal
and writes them as NanoAOD-flavoured ROOT *TTrees* (``Events``: ``nJet``, ``Jet_pt``, ...)
that coffea's ``NanoAODSchema`` reads. The physics is a cartoon but a consistent one:
tops, Ws and their decay products are built from vectorised two-body decays, so ttbar
has a hadronic-top peak in m_bjj, W+jets has a steeply falling jet multiplicity and
almost no b tags, and non-prompt leptons, bad-ID jets and out-of-acceptance objects make
every cut of the AGC selection remove events.

Determinism: each process has an infinite event stream per ``seed``; events are made in
fixed blocks of ``_BLOCK`` events, block ``k`` drawing from ``PCG64(SeedSequence([seed,
crc32(process), k]))``. ``generate_events(..., first_event=s)`` returns events
``s .. s+n-1`` of that stream, so a file is bit-identical whatever the chunk size.

    $ python -m analysis.io.generate ttbar 100000 1 ttbar.root
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

import awkward as ak
import numpy as np

from analysis.io.root_file import recreate
from analysis.io.demo_streams import (  # noqa: F401  (re-exported)
    ALIASES, BRANCHES, DATA_SEED_OFFSET, MIXTURE_TAG as _MIXTURE_TAG, mixture_counts, name_key, rng)

M_TOP, M_W, M_B = 172.5, 80.4, 4.8
_BLOCK = 10_000            # events per independently seeded block
_MAX_EXTRA = 10            # slots for ISR/FSR (or W+jets) jets


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """Knobs of one sample; any field can be overridden through ``params``."""
    kind: str                      # "ttbar", "tW", "st_s", "st_t" or "wjets"
    mass: float | None = None      # Z' mass [GeV] (resonant ttbar), None = QCD ttbar
    hardness: float = 1.0          # scales the mass/pt spectra of the hard process
    jet_scale: float = 1.0         # jet energy scale
    jet_resolution: float = 0.10   # relative jet pt resolution
    extra_jets: float = 1.3        # mean number of ISR/FSR jets (W+jets: of all jets)
    extra_jet_index: float = 2.2   # power-law index of their pt spectrum (larger = softer)
    btag_eff: float = 0.70         # P(btagCSVV2 > 0.5 | b jet)
    mistag: float = 0.02           # P(btagCSVV2 > 0.5 | light jet)
    heavy_flavour: float = 0.01    # fraction of extra jets that are b/c-like
    dilepton: float = 0.08         # fraction with the hadronic W decaying to l nu instead
    fakes: float = 0.25            # mean number of non-prompt leptons per event
    negative_weights: float = 0.0  # fraction of events with genWeight = -1


_SPECS: dict[str, ProcessSpec] = {
    "ttbar": ProcessSpec("ttbar"),
    "ttbar__scaleup": ProcessSpec("ttbar", jet_scale=1.02, extra_jets=1.45),
    "ttbar__scaledown": ProcessSpec("ttbar", jet_scale=0.98, extra_jets=1.15),
    "ttbar__ME_var": ProcessSpec("ttbar", hardness=1.05, btag_eff=0.71, negative_weights=0.05),
    "ttbar__PS_var": ProcessSpec("ttbar", jet_scale=0.97, jet_resolution=0.12, extra_jets=1.5,
                                 extra_jet_index=2.4, btag_eff=0.685),
    "single_top_s_chan": ProcessSpec("st_s", extra_jets=1.2, dilepton=0.0),
    "single_top_t_chan": ProcessSpec("st_t", extra_jets=1.2, dilepton=0.0),
    "single_top_tW": ProcessSpec("tW", extra_jets=1.2),
    "wjets": ProcessSpec("wjets", extra_jets=2.2, extra_jet_index=2.4, mistag=0.02,
                         heavy_flavour=0.04, dilepton=0.01),
    "zprime_ttbar": ProcessSpec("ttbar", mass=1000.0),
}
PROCESSES: tuple[str, ...] = tuple(_SPECS)
def process_spec(process: str, params: Mapping | None = None) -> ProcessSpec:
    """The :class:`ProcessSpec` of ``process`` with ``params`` applied.

    >>> process_spec("zprime_ttbar", {"mass": 1500}).mass
    1500
    """
    name = ALIASES.get(process, process)
    if name not in _SPECS:
        raise ValueError(f"unknown process {process!r}; known: {', '.join(PROCESSES)}")
    params = dict(params or {})
    unknown = set(params) - {f.name for f in dataclasses.fields(ProcessSpec)}
    if unknown:
        raise ValueError(f"unknown generator parameter(s) for {process!r}: {sorted(unknown)}")
    spec = dataclasses.replace(_SPECS[name], **params)
    if spec.kind not in _HARD:
        raise ValueError(f"unknown process kind {spec.kind!r}")
    return spec


_rng = rng
_name_key = name_key


# --------------------------------------------------------------------------- kinematics
def _p4(pt, eta, phi, m):
    """(px, py, pz, E) stacked on the last axis."""
    pz = pt * np.sinh(eta)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt**2 + pz**2 + m**2)], -1)


def _ptetaphim(p):
    px, py, pz, e = np.moveaxis(p, -1, 0)
    pt = np.maximum(np.hypot(px, py), 1e-6)
    return pt, np.arcsinh(pz / pt), np.arctan2(py, px), np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))


def _system(rng, mass, pt_mean, y_sigma):
    """A system of invariant ``mass`` with Gamma-distributed pt, Gaussian rapidity."""
    n = len(mass)
    pt, y, phi = rng.gamma(2.0, pt_mean / 2, n), rng.normal(0, y_sigma, n), rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(mass**2 + pt**2)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)], -1)


def _decay(rng, parent, m1, m2):
    """Isotropic two-body decay of ``parent`` (n, 4) into daughters of masses m1, m2."""
    n = len(parent)
    m1, m2 = np.broadcast_to(m1, n), np.broadcast_to(m2, n)
    big_m = np.sqrt(np.maximum(parent[:, 3]**2 - (parent[:, :3]**2).sum(1), (m1 + m2)**2 + 1e-9))
    p = np.sqrt(np.maximum((big_m**2 - (m1 + m2)**2) * (big_m**2 - (m1 - m2)**2), 0)) / (2 * big_m)
    cos, phi = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin = np.sqrt(1 - cos**2)
    d = (p * np.stack([sin * np.cos(phi), sin * np.sin(phi), cos]))[:, :, None] * [1, -1]  # (3, n, 2)
    e = np.stack([np.sqrt(p**2 + m1**2), np.sqrt(p**2 + m2**2)], -1)                        # (n, 2)
    beta, gamma = parent[:, :3] / parent[:, 3:], parent[:, 3] / big_m
    bp = np.einsum("in,ink->nk", beta.T, d)
    coef = gamma**2 / (gamma + 1)
    mom = d + (coef[:, None] * bp + gamma[:, None] * e)[None] * beta.T[:, :, None]
    out = np.concatenate([np.moveaxis(mom, 0, -1), (gamma[:, None] * (e + bp))[..., None]], -1)
    return out[:, 0], out[:, 1]


def _power_law(rng, size, lo, index, hi=2000.0):
    return np.minimum(lo * rng.random(size) ** (-1.0 / index), hi)


# ----------------------------------------------------------------------- hard processes
class _Partons(NamedTuple):
    jets: np.ndarray          # (n, k, 4) quarks that become jets
    is_b: np.ndarray          # (k,) which of them are b quarks
    jet_valid: np.ndarray     # (n, k)
    leptons: np.ndarray       # (n, 2, 4) prompt leptons (second: dilepton decays)
    lepton_valid: np.ndarray  # (n, 2)
    neutrinos: np.ndarray     # (n, 4) summed, for MET


def _bw(rng, n, mass, width, lo, hi):
    return np.clip(rng.normal(mass, width, n), lo, hi)


def _ttbar_like(spec: ProcessSpec, rng, n) -> _Partons:
    """ttbar (QCD or Z' resonance) and tW: one W -> q q', the other -> l nu."""
    s, ttbar, ones = spec.hardness, spec.kind == "ttbar", np.ones(n, bool)
    dilep = rng.random(n) < spec.dilepton   # the "hadronic" W decays to l nu as well
    if spec.mass is not None:
        m_sys = np.clip(rng.normal(spec.mass, 0.03 * spec.mass, n), 2 * M_TOP + 20, None)
    else:
        m_sys = 2 * M_TOP + 10 + rng.gamma(1.3, 110 * s, n) if ttbar else M_TOP + M_W + 20 + rng.gamma(1.5, 80 * s, n)
    m_other = _bw(rng, n, M_TOP, 1.5, 165, 180) if ttbar else _bw(rng, n, M_W, 2.1, 60, 100)
    top, other = _decay(rng, _system(rng, m_sys, 40 * s, 0.8), _bw(rng, n, M_TOP, 1.5, 165, 180), m_other)
    b1, w1 = _decay(rng, top, M_B, _bw(rng, n, M_W, 2.1, 60, 100))
    if ttbar:
        b2, w_lep = _decay(rng, other, M_B, _bw(rng, n, M_W, 2.1, 60, 100))
        w_had, extra_b = w1, [b2]
    else:  # tW: either the top's W or the associated W decays hadronically
        top_had = (rng.random(n) < 0.5)[:, None]
        w_had, w_lep, extra_b = np.where(top_had, w1, other), np.where(top_had, other, w1), []
    q1, q2 = _decay(rng, w_had, 0.0, 0.0)
    lep, nu = _decay(rng, w_lep, 0.0, 0.0)
    jets = np.stack([b1, q1, q2, *extra_b], 1)
    valid = np.ones(jets.shape[:2], bool)
    valid[:, 1:3] = ~dilep[:, None]
    return _Partons(jets, np.array([True, False, False, True][:jets.shape[1]]), valid,
                    np.stack([lep, q1], 1), np.stack([ones, dilep], 1), nu + q2 * dilep[:, None])


def _single_top(spec: ProcessSpec, rng, n) -> _Partons:
    """s channel (t + b) and t channel (t + forward light quark + soft b); t -> b l nu."""
    s, ones = spec.hardness, np.ones(n, bool)
    m_top = _bw(rng, n, M_TOP, 1.5, 165, 180)
    if spec.kind == "st_s":
        top, b_assoc = _decay(rng, _system(rng, M_TOP + M_B + 30 + rng.gamma(1.5, 90 * s, n), 25 * s, 1.0), m_top, M_B)
        others, is_b, valid = [b_assoc], [True, True], [ones, ones]
    else:
        top = _system(rng, m_top, 45 * s, 1.2)
        eta_q = rng.choice([-1.0, 1.0], n) * rng.normal(2.3, 0.8, n)
        q = _p4(_power_law(rng, n, 25 * s, 2.3), eta_q, rng.uniform(-np.pi, np.pi, n), 0.0)
        b_g = _p4(_power_law(rng, n, 12 * s, 2.0), rng.normal(0, 2.0, n), rng.uniform(-np.pi, np.pi, n), M_B)
        others, is_b, valid = [q, b_g], [True, False, True], [ones, ones, rng.random(n) < 0.6]
    b, w = _decay(rng, top, M_B, _bw(rng, n, M_W, 2.1, 60, 100))
    lep, nu = _decay(rng, w, 0.0, 0.0)
    return _Partons(np.stack([b, *others], 1), np.array(is_b), np.stack(valid, 1),
                    np.stack([lep, np.zeros_like(lep)], 1), np.stack([ones, ~ones], 1), nu)


def _wjets(spec: ProcessSpec, rng, n) -> _Partons:
    """W -> l nu; all jets come from _jets' (steeply falling) extra-jet multiplicity."""
    w = _system(rng, _bw(rng, n, M_W, 2.1, 60, 100), 30 * spec.hardness, 1.6)
    lep, nu = _decay(rng, w, 0.0, 0.0)
    second = rng.random(n) < spec.dilepton  # Z/gamma* -> ll contamination
    lep2 = _p4(_power_law(rng, n, 15, 2.5), rng.normal(0, 1.2, n), rng.uniform(-np.pi, np.pi, n), 0)
    return _Partons(np.zeros((n, 0, 4)), np.zeros(0, bool), np.zeros((n, 0), bool),
                    np.stack([lep, lep2], 1), np.stack([np.ones(n, bool), second], 1), nu)


_HARD = {"ttbar": _ttbar_like, "tW": _ttbar_like, "st_s": _single_top, "st_t": _single_top, "wjets": _wjets}


# ------------------------------------------------------------------- detector response
def _btag(rng, is_b, eff, mistag):
    """btagCSVV2 scores: P(score > 0.5) = eff for b jets, = mistag for light jets.

    Shapes are Beta(a, 1) = u**(1/a) (peaked at 1) for b jets, Beta(1, b) = 1 - u**(1/b)
    (peaked at 0) for light jets, on [0.5, 1] if tagged and [0, 0.5] otherwise.
    """
    tagged = rng.random(is_b.shape) < np.where(is_b, eff, mistag)
    u = rng.random(is_b.shape)
    x = np.where(is_b, u ** np.where(tagged, 0.25, 0.5), 1 - u ** np.where(tagged, 1 / 3, 0.25))
    return np.where(tagged, 0.5 + 0.5 * x, 0.5 * x)


def _jets(spec: ProcessSpec, rng, partons, is_b, valid):
    """Partons + ISR/FSR jets -> smeared reco jets with btag and jetId; (columns, valid)."""
    n = len(partons)
    k = (rng.geometric(1 / (1 + spec.extra_jets), n) - 1 if spec.kind == "wjets"
         else rng.poisson(spec.extra_jets, n))
    shape = (n, _MAX_EXTRA)
    pt_x = _power_law(rng, shape, 20.0, spec.extra_jet_index)
    extra = _p4(pt_x, rng.normal(0, 1.8, shape), rng.uniform(-np.pi, np.pi, shape), 0.0)
    p = np.concatenate([partons, extra], 1)
    is_b = np.concatenate([np.broadcast_to(is_b, (n, len(is_b))), rng.random(shape) < spec.heavy_flavour], 1)
    valid = np.concatenate([valid, np.arange(_MAX_EXTRA) < k[:, None]], 1)
    pt, eta, phi, m = _ptetaphim(p)
    resp = np.clip(rng.normal(1.0, spec.jet_resolution, pt.shape), 0.3, None) * spec.jet_scale
    pt = pt * resp
    m = np.hypot(m, pt * rng.uniform(0.03, 0.10, pt.shape))
    u = rng.random(pt.shape)  # jetId 6 (tight+lepveto), 2 (tight), 1 (loose only), 0 (fail)
    jet_id = np.select([u < 0.91, u < 0.97, u < 0.985], [6, 2, 1], 0).astype(np.int32)
    cols = {"pt": pt, "eta": eta + rng.normal(0, 0.01, pt.shape), "phi": phi, "mass": m,
            "btagCSVV2": _btag(rng, is_b, spec.btag_eff, spec.mistag), "jetId": jet_id}
    return cols, valid & (pt > 15) & (np.abs(eta) < 4.7)


def _leptons(spec: ProcessSpec, rng, prompt, prompt_valid):
    """Prompt leptons (2 slots) plus up to 2 non-prompt ones; split by flavour later."""
    n, (pt, eta, phi, _) = len(prompt), _ptetaphim(prompt)
    pt = pt * np.where(rng.random(pt.shape) < 0.11, rng.uniform(0.2, 0.8, pt.shape), 1.0)  # W->tau->l
    pt = pt * rng.normal(1.0, 0.02, pt.shape)
    nf = np.minimum(rng.poisson(spec.fakes, n), 2)
    f_shape, shape = (n, 2), (n, 4)
    fake_pt, fake_eta = _power_law(rng, f_shape, 8.0, 2.3), rng.uniform(-2.5, 2.5, f_shape)
    fake = np.broadcast_to(np.arange(4) >= 2, shape)

    def pick(prompt_v: Any, fake_v: Any) -> np.ndarray:
        return np.where(fake, fake_v, prompt_v)

    cols = {
        "pt": np.concatenate([pt, fake_pt], 1), "eta": np.concatenate([eta, fake_eta], 1),
        "phi": np.concatenate([phi, rng.uniform(-np.pi, np.pi, f_shape)], 1),
        "sip3d": pick(rng.exponential(1.0, shape), rng.exponential(4.0, shape)),
        "cutBased": pick(np.where(rng.random(shape) < 0.88, 4, rng.integers(1, 4, shape)),
                         rng.choice(5, shape, p=[0.4, 0.25, 0.15, 0.1, 0.1])).astype(np.int32),
        "pfRelIso04_all": pick(rng.exponential(0.04, shape), rng.exponential(0.35, shape)),
        "tightId": pick(rng.random(shape) < 0.95, rng.random(shape) < 0.5),
        "charge": rng.choice(np.array([-1, 1], np.int32), shape),
    }
    valid = np.concatenate([prompt_valid, np.arange(2) < nf[:, None]], 1)
    return cols, valid, rng.random(shape) < 0.5


_DTYPES = {"cutBased": np.int32, "charge": np.int32, "jetId": np.int32, "tightId": np.bool_}  # else float32
_FIELDS = {"Electron": ("pt", "eta", "phi", "mass", "sip3d", "cutBased", "charge"),
           "Muon": ("pt", "eta", "phi", "mass", "sip3d", "pfRelIso04_all", "tightId", "charge"),
           "Jet": ("pt", "eta", "phi", "mass", "btagCSVV2", "jetId")}


def _jagged(name, cols, valid) -> ak.Array:
    """Fixed-width columns + validity mask -> pt-sorted jagged record array."""
    key = np.where(valid, cols["pt"], -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    keep = np.take_along_axis(valid, order, 1)
    flat = {f: np.take_along_axis(cols[f], order, 1)[keep].astype(_DTYPES.get(f, np.float32)) for f in _FIELDS[name]}
    return ak.unflatten(ak.zip(flat), valid.sum(1))


def _simulate_block(spec: ProcessSpec, rng, n) -> dict:
    """``n`` events: flat float32 numpy columns and jagged pt-sorted collections."""
    partons, is_b, jvalid, prompt, lvalid, nu = _HARD[spec.kind](spec, rng, n)
    jets, jvalid = _jets(spec, rng, partons, is_b, jvalid)
    leps, lvalid, is_mu = _leptons(spec, rng, prompt, lvalid)
    met_x, met_y = nu[:, 0] + rng.normal(0, 15, n), nu[:, 1] + rng.normal(0, 15, n)
    ele = {k: v for k, v in leps.items() if k not in ("tightId", "pfRelIso04_all")}
    ele["mass"] = np.full(lvalid.shape, 0.000511)
    ele_valid = lvalid & ~is_mu & (leps["pt"] > 7) & (np.abs(leps["eta"]) < 2.5)
    mu = {k: v for k, v in leps.items() if k != "cutBased"}
    mu["mass"] = np.full(lvalid.shape, 0.10566)
    mu_valid = lvalid & is_mu & (leps["pt"] > 5) & (np.abs(leps["eta"]) < 2.4)
    weight = np.where(rng.random(n) < spec.negative_weights, -1.0, 1.0)
    flat = {"genWeight": weight, "MET_pt": np.hypot(met_x, met_y), "MET_phi": np.arctan2(met_y, met_x)}
    return {**{k: v.astype(np.float32) for k, v in flat.items()}, "Electron": _jagged("Electron", ele, ele_valid),
            "Muon": _jagged("Muon", mu, mu_valid), "Jet": _jagged("Jet", jets, jvalid)}


def _event_ids(event):
    event = np.asarray(event, np.uint64)
    return {"run": np.ones(len(event), np.uint32), "luminosityBlock": (event // 1000 + 1).astype(np.uint32),
            "event": event}


def generate_events(process: str, n_events: int, seed: int, *, first_event: int = 0,
                    params: Mapping | None = None) -> dict[str, ak.Array]:
    """Events ``first_event .. first_event + n_events - 1`` of ``process``'s stream for ``seed``.

    Returns flat branches (``run``, ``luminosityBlock``, ``event``, ``genWeight``,
    ``MET_pt``, ``MET_phi``) and jagged, pt-sorted records ``Electron``, ``Muon``, ``Jet``.

    >>> ev = generate_events("wjets", 100, seed=7, first_event=500)
    >>> int(ev["event"][0]), len(ev["Jet"])
    (500, 100)
    """
    if n_events < 0 or first_event < 0:
        raise ValueError("n_events and first_event must be >= 0")
    spec, key = process_spec(process, params), _name_key(process)
    stop = first_event + n_events
    parts = []
    for b in range(first_event // _BLOCK, max(-(-stop // _BLOCK), first_event // _BLOCK + 1)):
        block = _simulate_block(spec, _rng(seed, key, b), _BLOCK)
        lo, hi = max(first_event - b * _BLOCK, 0), min(stop - b * _BLOCK, _BLOCK)
        parts.append({k: v[lo:hi] for k, v in block.items()})
    out = {k: ak.Array(v) for k, v in _event_ids(np.arange(first_event, stop, dtype=np.uint64)).items()}
    for k in parts[0]:
        out[k] = ak.Array(np.concatenate([p[k] for p in parts])) if k in ("genWeight", "MET_pt", "MET_phi") \
            else ak.concatenate([p[k] for p in parts])
    return out


# ------------------------------------------------------------------------------ writing
def write_nanoaod(path: str | os.PathLike, events_iter_or_dict: Mapping[str, Any] | Iterable[Mapping[str, Any]],
                  *, tree: str = "Events", identity: str | None = None) -> int:
    """Write one event dict or an iterable of them as a NanoAOD-style TTree; return entries.

    The file appears atomically: it is written to a hidden temporary file in the same
    directory and ``os.replace``-d into place only when complete.

    >>> write_nanoaod(outdir / "tt.root", generate_events("ttbar", 10, 1))
    10
    >>> sorted(p.name for p in outdir.iterdir())     # no temporary file left
    ['tt.root']
    """
    chunks = [events_iter_or_dict] if isinstance(events_iter_or_dict, Mapping) else events_iter_or_dict
    path = Path(path)
    entries, out = 0, None
    with recreate(path, identity or uuid.uuid4().hex) as f:      # no identity given: a fresh UUID
        for chunk in chunks:
            chunk = {k: ak.Array(v) for k, v in chunk.items()}
            if out is None:
                out = f.mktree(tree, {k: v.type.content for k, v in chunk.items()},
                               counter_name=lambda counted: "n" + counted,
                               field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner,
                               initial_basket_capacity=100)
            n = len(next(iter(chunk.values())))
            if n:
                out.extend(chunk)
            entries += n
        if out is None:
            raise ValueError("write_nanoaod: no event chunks given")
    return entries


def _chunks(process, n_events, seed, chunk_size, params) -> Iterator[dict]:
    for start in range(0, max(n_events, 1), chunk_size):
        yield generate_events(process, min(chunk_size, n_events - start), seed, first_event=start, params=params)


def generate_file(path: str | os.PathLike, process: str, n_events: int, seed: int, *, chunk_size: int = 200_000,
                  params: Mapping | None = None) -> int:
    """Generate ``n_events`` of ``process`` in chunks and write them to ``path``; return entries.

    The content does not depend on ``chunk_size`` (it only bounds memory).

    >>> generate_file(outdir / "wjets.root", "wjets", 2_000, seed=42, chunk_size=500)
    2000
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    return write_nanoaod(path, _chunks(process, n_events, seed, chunk_size, params),
                         identity=f"generate|{process}|{n_events}|{seed}|{sorted((params or {}).items())}")


def generate_mixture(path: str | os.PathLike, expected: Mapping[str, float], seed: int, *, chunk_size: int = 200_000,
                     params: Mapping[str, Mapping] | None = None) -> dict[str, int]:
    """Write pseudo-data: N_p ~ Poisson(expected[p]) events of each process, shuffled.

    Events are drawn from streams seeded with ``seed + DATA_SEED_OFFSET`` (statistically
    independent of MC made with ``seed``), get ``genWeight = 1`` and are renumbered
    0..N-1, in a seeded random order. ``params`` maps process -> generator parameters.
    Returns the drawn counts. Fitting the MC templates to this file is a closure test.
    All drawn events are held in memory (fine for demo-sized expectations).

    >>> generate_mixture(outdir / "data.root", {"ttbar": 900.0, "wjets": 300.0}, seed=1)
    {'ttbar': 913, 'wjets': 326}
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    counts, parts = {}, []
    for process in sorted(expected):  # order-independent result
        process_spec(process)  # validate the name early
        counts[process] = mixture_counts({process: expected[process]}, seed)[process]
        parts.append(generate_events(process, counts[process], seed + DATA_SEED_OFFSET,
                                     params=(params or {}).get(process)))
    total = sum(counts.values())
    parts = parts or [generate_events("ttbar", 0, seed)]
    perm = _rng(seed, _MIXTURE_TAG).permutation(total)
    merged = {"genWeight": ak.Array(np.ones(total, np.float32)),
              **{k: ak.concatenate([p[k] for p in parts])[perm] for k in ("MET_pt", "MET_phi", "Electron", "Muon", "Jet")}}

    def chunks():
        for start in range(0, max(total, 1), chunk_size):
            stop = min(start + chunk_size, total)
            ids = _event_ids(np.arange(start, stop, dtype=np.uint64))
            yield {**{k: ak.Array(v) for k, v in ids.items()}, **{k: v[start:stop] for k, v in merged.items()}}

    write_nanoaod(path, chunks(), identity=f"mixture|{sorted(expected.items())}|{seed}|{sorted((params or {}).items())}")
    return {p: counts[p] for p in expected}


# ----------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.io.generate PROCESS N SEED OUT.root [--chunk-size K] [--param k=v]``."""
    ap = argparse.ArgumentParser(prog="python -m analysis.io.generate", description=__doc__.split("\n")[0])
    ap.add_argument("process", choices=sorted(PROCESSES + tuple(ALIASES)))
    for name, kind in (("n_events", int), ("seed", int), ("output", str)):
        ap.add_argument(name, type=kind)
    ap.add_argument("--chunk-size", type=int, default=200_000)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a generator parameter, e.g. --param mass=1500")
    args = ap.parse_args(argv)
    params = {k: float(v) for k, v in (p.split("=", 1) for p in args.param)}
    t0 = time.perf_counter()
    n = generate_file(args.output, args.process, args.n_events, args.seed,
                      chunk_size=args.chunk_size, params=params)
    dt = time.perf_counter() - t0
    print(f"wrote {n} events of {args.process} (seed {args.seed}) to {args.output} "
          f"in {dt:.1f} s ({n / max(dt, 1e-9):,.0f} events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
