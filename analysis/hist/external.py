"""Histograms made by another system, mapped onto a config's datasets, regions and variations.

An ``external_histograms:`` section replaces the event loop (Generate .. Histograms): the
``ExternalHistograms`` task reads one file and writes the same ``histograms.json`` as
``Histograms`` (names ``dataset/region/observable``; a ``variation`` StrCategory axis and
one observable axis, Weight storage), so ``Fit`` and ``Plot`` run on it unchanged.
``docs/fit-products.md`` describes the section; in short::

    external_histograms:
      file: ../../shared/data/agc/histos_5_file_per_process.json   # relative to this config
      format: agc_json                      # or root (TH1s, variances from Sumw2)
      name: "{region}_{dataset}{variation}" # how a histogram is named in the file
      regions: {4j1b: {name: 4j1b, observable: ht, label: "$H_T$ [GeV]"}}   # or 4j1b: 4j1b
      datasets: {ttbar: ttbar, ttbar__ME_var: ttbar_ME_var, pseudodata: pseudodata}
      variations: {nominal: "", pt_scale_up: _pt_scale_up}
      variances: per_event_weight           # file | per_event_weight | contents | zero

A name the pattern gives that the file lacks is a variation the dataset does not have
(the nominal must exist); a variation found for no dataset, or a variation present in
some regions of a dataset and not in others, is an error (a typo must not vanish).

Variances (the MC statistical uncertainty of the fit, cabinetry's ``staterror``):

- ``file``: as stored (``root``: the TH1's Sumw2). ``agc_json`` stores none.
- ``per_event_weight``: variance = w x content, exact for histograms filled with one
  weight w per event (the AGC: w = xsec x lumi / N_total, per dataset). w is the largest
  number of which every nominal bin content of the dataset (all regions, flow bins
  included) is an integer multiple (tried: smallest content / k, k = 1 .. 100 000), or
  ``weights: {dataset: w}``. (If every nominal count shared an integer factor m, w would
  come out m times too large: vanishingly unlikely with dozens of bins; set ``weights``
  where in doubt. Variations are not used to infer w: a weight variation like x 1.025 =
  41/40 would fake a step of w/40.) Applied to all of the dataset's variations: exact for the
  nominal (the only variance the fit uses) and for object variations, approximate for
  weight variations. Data (kinds ``data``/``pseudodata``): variance = content.
- ``contents``: variance = content (unweighted counts; what a TH1 without Sumw2 reports).
- ``zero``: no MC statistical uncertainty (cabinetry's staterror parameters become fixed).

>>> merged, summary = read(ext_cfg)        # a tiny agc_json file: weights 0.5 and 2
>>> sorted(merged), summary["weights"]
(['bkg/SR/x', 'data/SR/x', 'sig/SR/x'], {'sig': 0.5, 'bkg': 2.0})
>>> list(merged["sig/SR/x"].axes["variation"]), summary["events"]["sig"]
(['nominal', 'jes_up'], 177.0)
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from analysis.config.files import MAX_ARCHIVE_BYTES, MAX_JSON_BYTES, regular_file
from analysis.config.model import AnalysisConfig
from analysis.errors import InputError
from analysis.lazy import np
from analysis.io.fileid import ContentIdentity, content_identity
from analysis.names import NOMINAL, histogram_key

FORMATS = ("agc_json", "root")
STORES_VARIANCES = {"agc_json": False, "root": True}
MAX_WEIGHT_STEPS = 100_000          # per_event_weight: w = smallest content / k, k <= this
_FIELDS = {"region", "dataset", "variation"}
_DATA_KINDS = ("data", "pseudodata")
_TOLERANCE = 2e-11                  # relative: how far from an integer a count may be (rounding)
_WHERE = ("external_histograms",)


class ExternalHistogramError(InputError):
    """The file does not hold what the config's ``external_histograms`` section maps."""


ExternalFile = ContentIdentity       # the histogram file's identity: its content, not its path or name


@dataclass(frozen=True)
class RawHistogram:
    """One histogram of the file: bin edges, contents and variances with flow bins
    (``len(edges) + 1`` numbers: underflow, bins, overflow); ``variances`` None if not stored."""

    edges: np.ndarray
    values: np.ndarray
    variances: np.ndarray | None


# ---- the config section ---------------------------------------------------------------
def section(cfg: AnalysisConfig) -> dict:
    return cfg.section("external_histograms", default={})


def source_path(cfg: AnalysisConfig) -> Path:
    """The file, relative names resolved against the folder of the config that sets ``file``."""
    spec = section(cfg)
    path = Path(spec["file"]).expanduser()
    if not path.is_absolute():
        path = cfg.file_of("external_histograms", "file").parent / path
    return path


def variances_mode(spec: Mapping) -> str:
    return spec.get("variances", "file")


def region_specs(cfg: AnalysisConfig) -> dict:
    """``{region: {"name": token in file names, "observable": axis name, "label": axis label}}``.

    >>> region_specs(load_config("configs/agc_reference_5files.yaml"))["4j1b"]
    {'name': '4j1b', 'observable': 'ht', 'label': '$H_T$ [GeV]'}
    """
    out = {}
    for region, value in section(cfg)["regions"].items():
        value = {"name": value} if isinstance(value, str) else dict(value)
        declared = cfg.regions.get(region, {})
        observable = value.get("observable") or (declared.get("observables") or [declared.get("observable")])[0] \
            or "observable"
        label = value.get("label") or cfg.observables.get(observable, {}).get("label", observable)
        out[region] = {"name": value.get("name", region), "observable": observable, "label": label}
    return out


def variation_tokens(spec: Mapping) -> dict:
    """``{variation: token}``, nominal first (token ``""`` unless the section maps it)."""
    variations = dict(spec.get("variations") or {})
    return {NOMINAL: variations.pop(NOMINAL, ""), **variations}


def check_config(cfg: AnalysisConfig) -> None:
    """Cross-references of ``external_histograms`` (called by the config loader).

    The file itself is read (and its absence reported) by the ``ExternalHistograms`` task,
    so a config loads on a machine without the file.
    """
    spec = section(cfg)
    if source_path(cfg).exists():                # a missing file is reported by the task, as above
        try:
            regular_file(source_path(cfg), limit=MAX_JSON_BYTES if spec["format"] == "agc_json" else MAX_ARCHIVE_BYTES,
                         what="external histogram file")
        except ValueError as err:
            raise cfg.error(str(err), "external_histograms", "file") from None
    tokens = variation_tokens(spec)
    _check_name_pattern(cfg, spec, tokens)
    _check_mapped_names(cfg, spec)
    _check_variances(cfg, spec)
    _check_needed_datasets(cfg, spec)
    for name, syst in cfg.systematics.items():
        for side in ("up", "down"):
            value = syst.get(side)
            if syst["type"] == "template" and value is not None and value not in tokens:
                raise cfg.error(f"unknown variation '{value}' (external_histograms.variations has: "
                                f"{', '.join(tokens)})", "systematics", name, side)


def _check_name_pattern(cfg: AnalysisConfig, spec: Mapping, tokens: Mapping[str, str]) -> None:
    """The ``name`` pattern has {region} and {dataset} (and {variation} when variations are mapped)."""
    fields = {f for _, f, _, _ in string.Formatter().parse(spec["name"]) if f is not None}
    unknown = sorted(fields - _FIELDS)
    if unknown:
        raise cfg.error(f"unknown placeholder {{{unknown[0]}}} in the name pattern "
                        "(allowed: {region}, {dataset}, {variation})", *_WHERE, "name")
    for placeholder in ("region", "dataset"):
        if placeholder not in fields:
            raise cfg.error(f"the name pattern needs {{{placeholder}}}", *_WHERE, "name")
    if "variation" not in fields and len(tokens) > 1:
        raise cfg.error("the name pattern needs {variation} when variations are mapped", *_WHERE, "name")
    if len(set(tokens.values())) != len(tokens):
        raise cfg.error("two variations map to the same name part", *_WHERE, "variations")


def _check_mapped_names(cfg: AnalysisConfig, spec: Mapping) -> None:
    """The section maps exactly the config's regions, and only datasets the config has."""
    for region in spec["regions"]:
        if region not in cfg.regions:
            raise cfg.error(f"unknown region '{region}' (regions: {', '.join(cfg.regions)})",
                            *_WHERE, "regions", region)
    for region in cfg.regions:
        if region not in spec["regions"]:
            raise cfg.error(f"region '{region}' is not mapped in external_histograms.regions", "regions", region)
    for dataset in spec["datasets"]:
        if dataset not in cfg.datasets:
            raise cfg.error(f"unknown dataset '{dataset}'", *_WHERE, "datasets", dataset)


def _check_variances(cfg: AnalysisConfig, spec: Mapping) -> None:
    """The variances mode suits the format; ``weights`` only with per_event_weight, for mapped MC."""
    mode = variances_mode(spec)
    if mode == "file" and not STORES_VARIANCES[spec["format"]]:
        raise cfg.error(f"{spec['format']} files store no variances: say how to get them with "
                        "'variances: per_event_weight' (or contents, zero)", *_WHERE, "format")
    for dataset in spec.get("weights") or {}:
        if mode != "per_event_weight":
            raise cfg.error("'weights' needs 'variances: per_event_weight'", *_WHERE, "weights")
        if dataset not in spec["datasets"]:
            raise cfg.error(f"dataset '{dataset}' is not mapped in external_histograms.datasets",
                            *_WHERE, "weights", dataset)
        if cfg.datasets[dataset]["kind"] in _DATA_KINDS:
            raise cfg.error(f"'{dataset}' is {cfg.datasets[dataset]['kind']}: weights are for MC datasets "
                            "(data variances are the contents)", *_WHERE, "weights", dataset)


def _check_needed_datasets(cfg: AnalysisConfig, spec: Mapping) -> None:
    """Every dataset the model or a systematic uses has histograms (mapped, or pseudodata of mapped ones)."""
    mapped = set(spec["datasets"]) | {name for name, ds in cfg.datasets.items()
                                      if ds["kind"] == "pseudodata" and ds.get("combine")
                                      and set(ds["combine"]) <= set(spec["datasets"])}
    model = cfg.data.get("model") or {}
    needed: list[tuple[str, tuple[str, ...]]] = [(model["data"], ("model", "data"))] if model else []
    needed += [(ds, ("model", "samples", sample, "datasets"))
               for sample, s in (model.get("samples") or {}).items() for ds in s["datasets"]]
    needed += [(syst[key], ("systematics", name, key)) for name, syst in cfg.systematics.items()
               for key in ("up_dataset", "down_dataset") if key in syst]
    for dataset, path in needed:
        if dataset not in mapped:
            raise cfg.error(f"dataset '{dataset}' has no histograms: map it in external_histograms.datasets",
                            *path)


def excerpt(cfg: AnalysisConfig) -> dict:
    """What the histograms depend on besides the file's content (the path is left out)."""
    spec = section(cfg)
    return {
        "format": spec["format"], "name": spec["name"], "regions": region_specs(cfg),
        "datasets": dict(spec["datasets"]), "variations": variation_tokens(spec),
        "variances": variances_mode(spec), "weights": dict(spec.get("weights") or {}),
        "kinds": {name: cfg.datasets[name]["kind"] for name in spec["datasets"]},
        "pseudodata": {name: ds["combine"] for name, ds in cfg.datasets.items()
                       if ds["kind"] == "pseudodata" and name not in spec["datasets"] and ds.get("combine")},
    }


def identify(cfg: AnalysisConfig) -> ExternalFile:
    """BLAKE3 digest and size of the file (cached while size, mtime, ctime and inode hold)."""
    return content_identity(source_path(cfg))


# ---- reading --------------------------------------------------------------------------
def read_file(path: str | Path, format: str) -> dict[str, RawHistogram]:
    """Every 1D histogram of the file by name.

    ``agc_json``: ``{name: {"edges": [n+1 edges], "contents": [underflow, n bins, overflow]}}``
    (``n`` contents without flow bins are accepted too). ``root``: every TH1 (names with
    their folder, ``dir/name``), variances from its Sumw2.

    >>> raw = read_file(ext_file, "agc_json")
    >>> sorted(raw)[:2], raw["sr_data"].values[:3]
    (['sr_background', 'sr_background_jes_up'], array([  0., 124., 114.]))
    """
    if format == "agc_json":
        return _read_agc_json(Path(path))
    if format == "root":
        return _read_root(Path(path))
    raise ExternalHistogramError(f"unknown format '{format}' (known: {', '.join(FORMATS)})")


def _read_agc_json(path: Path) -> dict[str, RawHistogram]:
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise ExternalHistogramError(f"{path}: not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ExternalHistogramError(f"{path}: expected an object {{name: {{edges, contents}}}}")
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not {"edges", "contents"} <= set(entry):
            raise ExternalHistogramError(f"{path}: histogram '{name}' needs 'edges' and 'contents'")
        edges = np.asarray(entry["edges"], dtype=float)
        values = np.asarray(entry["contents"], dtype=float)
        n = len(edges) - 1
        if n < 1 or np.any(np.diff(edges) <= 0):
            raise ExternalHistogramError(f"{path}: histogram '{name}': edges must increase")
        if len(values) == n:
            values = np.concatenate([[0.0], values, [0.0]])
        elif len(values) != n + 2:
            raise ExternalHistogramError(f"{path}: histogram '{name}': {len(values)} contents for {n} bins "
                                         f"(expected {n + 2}: underflow, bins, overflow)")
        out[name] = RawHistogram(edges, values, None)
    return out


def _read_root(path: Path) -> dict[str, RawHistogram]:
    import uproot

    out = {}
    try:
        with uproot.open(path) as file:
            for name, classname in file.classnames(cycle=False).items():
                if not classname.startswith("TH1"):
                    continue
                h = file[name]
                out[name] = RawHistogram(np.asarray(h.axis().edges(), dtype=float),
                                         np.asarray(h.values(flow=True), dtype=float),
                                         np.asarray(h.variances(flow=True), dtype=float))
    except (OSError, ValueError) as err:
        raise ExternalHistogramError(f"{path}: cannot read as ROOT ({err})") from None
    return out


def infer_weight(values: np.ndarray, max_steps: int = MAX_WEIGHT_STEPS) -> float | None:
    """The largest w of which every non-zero ``values`` is an integer multiple (None if none).

    Tries w = smallest |value| / k for k = 1 .. ``max_steps``; value / w must be an integer
    to 2e-11 relative: adding 10^6 equal weights one by one strays by up to 5e-12 (the AGC
    files: <= 2e-14).

    >>> infer_weight(np.array([0.0, 0.75, 1.25, 2.5]))
    0.25
    """
    v = np.abs(np.asarray(values, dtype=float).ravel())
    v = v[v > 0]
    if not v.size:
        return None
    smallest = v.min()
    ratios = v / smallest
    block = max(1, 2_000_000 // v.size)
    for start in range(1, max_steps + 1, block):
        k = np.arange(start, min(start + block, max_steps + 1), dtype=float)[:, None]
        multiples = k * ratios[None, :]
        ok = np.all(np.abs(multiples - np.rint(multiples)) <= _TOLERANCE * np.maximum(multiples, 1.0), axis=1)
        if ok.any():
            return float(smallest / k[np.argmax(ok), 0])
    return None


def build(cfg: AnalysisConfig, raw: Mapping[str, RawHistogram]) -> tuple[dict, dict]:
    """``({dataset/region/observable: Hist}, summary)`` from the file's histograms.

    ``summary``: the per-event weights found (``weights``), the file names read per
    dataset (``used``) and the names of the file that nothing maps (``unused``).
    """
    import hist

    from analysis.hist import histograms

    spec = excerpt(cfg)
    regions, tokens, mode = spec["regions"], spec["variations"], spec["variances"]
    used: dict[str, str] = {}           # file name -> "dataset/region/variation"
    found: dict = {}                    # (dataset, region) -> {variation: RawHistogram}
    for dataset, dtoken in spec["datasets"].items():
        for region, rspec in regions.items():
            for variation, vtoken in tokens.items():
                name = spec["name"].format(region=rspec["name"], dataset=dtoken, variation=vtoken)
                if name not in raw:
                    if variation == NOMINAL:
                        raise ExternalHistogramError(
                            f"dataset '{dataset}', region '{region}': no histogram '{name}' in the file"
                            f"{_close_names(name, raw)}")
                    continue
                if name in used:
                    raise ExternalHistogramError(f"histogram '{name}' is mapped twice: as {used[name]} and as "
                                                 f"{dataset}/{region}/{variation}")
                used[name] = f"{dataset}/{region}/{variation}"
                found.setdefault((dataset, region), {})[variation] = raw[name]
    _check_variations(spec, found, tokens)
    weights = _weights(spec, found) if mode == "per_event_weight" else {}
    merged: dict = {}
    for (dataset, region), by_variation in found.items():
        rspec = regions[region]
        edges = by_variation[NOMINAL].edges
        for variation, h in by_variation.items():
            if len(h.edges) != len(edges) or not np.allclose(h.edges, edges, rtol=1e-9, atol=1e-12):
                raise ExternalHistogramError(f"dataset '{dataset}', region '{region}': variation '{variation}' "
                                             "has other bin edges than the nominal")
        out = hist.Hist(hist.axis.StrCategory(list(by_variation), name="variation", label="variation", growth=True),
                        _axis(edges, rspec["observable"], rspec["label"]), storage=hist.storage.Weight())
        view = out.view(flow=True)
        for i, (variation, h) in enumerate(by_variation.items()):
            view[i]["value"] = h.values
            view[i]["variance"] = _variance(h, mode, spec["kinds"][dataset], weights.get(dataset))
        merged[histogram_key(dataset, region, rspec['observable'])] = out
    for name, combine in spec["pseudodata"].items():
        merged.update(histograms.pseudodata(merged, name, combine))
    summary = {
        "weights": weights,
        "events": {d: round(sum(float(np.sum(found[(d, r)][NOMINAL].values)) for r in regions) / w, 3)
                   for d, w in weights.items()},
        "variations": {d: sorted({v for (d2, _), by in found.items() if d2 == d for v in by})
                       for d in spec["datasets"]},
        "used": len(used),
        "unused": sorted(set(raw) - set(used)),
    }
    return merged, summary


def read(cfg: AnalysisConfig) -> tuple[dict, dict]:
    """Read the config's file and :func:`build` Heirloom's histograms from it."""
    return build(cfg, read_file(source_path(cfg), section(cfg)["format"]))


def fit_observables(cfg: AnalysisConfig) -> dict:
    """``{region: observable}``: which histogram of each region the fit uses."""
    return {region: spec["observable"] for region, spec in region_specs(cfg).items()}


# ---- helpers --------------------------------------------------------------------------
def _axis(edges: np.ndarray, name: str, label: str) -> Any:
    import hist

    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0):
        return hist.axis.Regular(len(widths), float(edges[0]), float(edges[-1]), name=name, label=label)
    return hist.axis.Variable(edges, name=name, label=label)


def _check_variations(spec: Mapping, found: Mapping, tokens: Mapping) -> None:
    seen = {v for by in found.values() for v in by}
    missing = [v for v in tokens if v not in seen]
    if missing:
        example = spec["name"].format(region=next(iter(spec["regions"].values()))["name"],
                                      dataset=next(iter(spec["datasets"].values())), variation=tokens[missing[0]])
        raise ExternalHistogramError(f"variation '{missing[0]}' matches no histogram of the file "
                                     f"(e.g. '{example}')")
    for dataset in spec["datasets"]:
        per_region = {region: set(found[(dataset, region)]) for region in spec["regions"]}
        union = set().union(*per_region.values())
        for region, have in per_region.items():
            if have != union:
                raise ExternalHistogramError(f"dataset '{dataset}': region '{region}' lacks variations "
                                             f"{sorted(union - have)} that other regions have")


def _weights(spec: Mapping, found: Mapping) -> dict:
    weights = {}
    for dataset, kind in spec["kinds"].items():
        if kind in _DATA_KINDS:
            continue
        if dataset in spec["weights"]:
            weights[dataset] = float(spec["weights"][dataset])
            continue
        values = np.concatenate([found[(dataset, region)][NOMINAL].values for region in spec["regions"]])
        w = infer_weight(values)
        if w is None and np.any(values != 0):
            raise ExternalHistogramError(
                f"dataset '{dataset}': its nominal contents are not multiples of one per-event weight "
                f"(tried smallest content / k for k <= {MAX_WEIGHT_STEPS}); give it with "
                f"'weights: {{{dataset}: w}}' or choose 'variances: contents' or 'zero'")
        if w is not None:
            weights[dataset] = w
    return weights


def _variance(h: RawHistogram, mode: str, kind: str, weight: float | None) -> np.ndarray:
    if kind in _DATA_KINDS:
        return np.abs(h.values) if h.variances is None else h.variances
    if mode == "file":
        if h.variances is None:
            raise ExternalHistogramError("the file stores no variances: choose another 'variances' mode")
        return h.variances
    if mode == "per_event_weight":
        return (weight or 0.0) * np.abs(h.values)
    if mode == "contents":
        return np.abs(h.values)
    return np.zeros_like(h.values)


def _close_names(name: str, raw: Mapping) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(raw), n=3)
    return f" (similar: {', '.join(close)})" if close else ""
