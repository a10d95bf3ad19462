"""From histograms to a pyhf workspace: fit templates, a cabinetry config, the workspace.

1. :func:`write_templates`: every template the fit needs, rebinned (``model.rebin``) and
   summed over the datasets of each fit sample, goes to ONE ROOT file as
   ``{region}__{sample}__{template}`` (``nominal``, ``<syst>_up``, ``<syst>_down``; data:
   ``{region}__data__nominal``). It is also the "export to ROOT" artifact. Both forms of
   shape systematics, ``up``/``down`` (variations of the same datasets) and
   ``up_dataset``/``down_dataset`` (nominal of another dataset), become such templates.
2. :func:`cabinetry_config` reads that file through ``InputPath`` placeholders; which
   systematic acts on which sample is read off the file.
3. :func:`build_workspace`: cabinetry collects, post-processes, builds the pyhf workspace.

>>> ws = build_workspace(histograms, model, cfg.data["fit"], outdir)   # model: fit_model(cfg)
>>> [c["name"] for c in ws["channels"]]
['4j1b CR', '4j2b SR']
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, cast

import hist
import numpy as np
from analysis.io.root_file import recreate
from analysis.names import NOMINAL, sample_variation

DATA = "data"                        # sample name of the observed data in templates/config
TEMPLATE_FILE = "templates.root"
_SAFE = re.compile(r"^[^./:\\{}]+$")  # cabinetry stores histograms as "<name>.npz" files


def rebin_for_fit(h: hist.Hist, rebin: Mapping | None) -> hist.Hist:
    """Cut the observable axis to ``[low, high)`` and merge ``merge`` adjacent bins.

    Category axes (e.g. ``variation``) are kept. ``low``/``high`` must be bin edges and
    the number of bins between them a multiple of ``merge``, else ``ValueError``.

    >>> h = hist.Hist.new.Reg(25, 50, 550, name="ht").Weight()
    >>> rebin_for_fit(h, {"low": 110, "high": 550, "merge": 2}).axes["ht"].edges[[0, -1]]
    array([110., 550.])
    """
    if not rebin:
        return h
    axis = _observable_axis(h)
    edges = axis.edges
    low, high = float(rebin.get("low", edges[0])), float(rebin.get("high", edges[-1]))
    merge = int(rebin.get("merge", 1))
    for what, value in (("low", low), ("high", high)):
        if not np.isclose(edges, value, rtol=0, atol=1e-9 * max(1.0, abs(value))).any():
            raise ValueError(f"rebin {what}={value:g} is not a bin edge of axis '{axis.name}' "
                             f"(edges {edges[0]:g}..{edges[-1]:g}, width {edges[1] - edges[0]:g})")
    n_bins = int(np.argmin(abs(edges - high)) - np.argmin(abs(edges - low)))
    if n_bins <= 0 or merge < 1 or n_bins % merge:
        raise ValueError(f"rebin: {n_bins} bins in [{low:g}, {high:g}) of axis '{axis.name}' "
                         f"cannot be merged in groups of {merge}")
    return cast(hist.Hist, h[{axis.name: slice(hist.loc(low), hist.loc(high), hist.rebin(merge))}])


def fit_regions(model: Mapping, histograms: Mapping | None = None) -> dict[str, str]:
    """Analysis region -> fit region (channel) name; all data regions if none are listed.

    >>> fit_regions({"regions": {"4j1b": {"name": "4j1b CR"}, "4j2b": {}}})
    {'4j1b': '4j1b CR', '4j2b': '4j2b'}
    """
    regions = model.get("regions")
    if not regions:
        if histograms is None:
            raise ValueError("model.regions is empty and no histograms to take regions from")
        regions = {name: {} for name in histograms[model["data"]]}
    return {key: (spec or {}).get("name", key) for key, spec in regions.items()}


def systematics(model: Mapping) -> list[dict]:
    """The model's systematics in one normalised form (names, samples, templates).

    Each entry: ``name``, ``kind`` ("normalization"/"shape"), ``samples`` (default: all MC
    samples; for ``up_dataset: ttbar__ME_var`` the samples holding ``ttbar``) and ``up``/
    ``down``: relative norm. effects, or ``(how, name)`` with ``how`` "variation"/"dataset".
    ``down`` is None when symmetrised (``symmetrize: true``, or a one-sided ``up``).

    >>> systematics({"samples": {"tt": {}}, "systematics": {"jes": {"type": "shape", "up": "jes_up"}}})
    [{'name': 'jes', 'kind': 'shape', 'samples': ['tt'], 'up': ('variation', 'jes_up'), 'down': None}]
    """
    mc = list(model["samples"])
    out = []
    for name, spec in (model.get("systematics") or {}).items():
        if "samples" in spec and not spec["samples"]:
            continue                                           # acts on no fit sample
        samples = list(spec.get("samples") or mc)
        if "up_dataset" in spec and "samples" not in spec:     # ttbar__ME_var: the sample(s) with ttbar
            base = sample_variation(spec["up_dataset"])[0]
            samples = [s for s in mc if base in model["samples"][s].get("datasets", [])]
            if not samples:
                raise ValueError(f"systematic '{name}': say which samples '{spec['up_dataset']}' varies")
        unknown = sorted(set(samples) - set(mc))
        if unknown:
            raise ValueError(f"systematic '{name}': unknown samples {unknown} (known: {mc})")
        entry = {"name": name, "kind": spec["type"], "samples": samples}
        if spec["type"] == "normalization":
            up = float(spec["up"])
            entry.update(up=up, down=float(spec.get("down", -up)))
        elif spec["type"] in ("shape", "weight"):
            entry["kind"] = "shape"
            entry["up"] = (("dataset", spec["up_dataset"]) if "up_dataset" in spec
                           else ("variation", spec["up"] if isinstance(spec.get("up"), str) else f"{name}_up"))
            explicit_down = "down_dataset" in spec or isinstance(spec.get("down"), str)
            one_sided = "up_dataset" in spec or isinstance(spec.get("up"), str)
            if spec.get("symmetrize") or (one_sided and not explicit_down):
                entry["down"] = None
            elif "down_dataset" in spec:
                entry["down"] = ("dataset", spec["down_dataset"])
            else:
                entry["down"] = ("variation", spec["down"] if isinstance(spec.get("down"), str) else f"{name}_down")
        else:
            raise ValueError(f"systematic '{name}': unknown type '{spec['type']}'")
        out.append(entry)
    return out


def templates(histograms: Mapping, model: Mapping) -> dict[str, hist.Hist]:
    """Every template the fit needs, by name ``{region}__{sample}__{template}`` (1D, rebinned).

    A shape systematic applies to a sample when at least one of its datasets has the
    variation (datasets without it contribute their nominal).

    >>> sorted(templates(histograms, model))[:2]
    ['4j1b__data__nominal', '4j1b__single_top__btag_var_0_down']
    """
    samples = model["samples"]
    if DATA in samples:
        raise ValueError(f"'{DATA}' is reserved for the observed data; rename that sample")
    regions = fit_regions(model, histograms)
    for name in [*regions, *regions.values(), *samples, *(s["name"] for s in systematics(model))]:
        if not _SAFE.match(name) or "__" in name:
            raise ValueError(f"name '{name}' may not contain '.', '/', ':', '\\', braces or '__'")
    nominal = ("variation", NOMINAL)
    out: dict[str, hist.Hist] = {}
    for region in regions:
        out[f"{region}__{DATA}__{NOMINAL}"] = _summed(histograms, [model["data"]], region, nominal)[0]
        for sample, spec in samples.items():
            out[f"{region}__{sample}__{NOMINAL}"] = _summed(histograms, spec["datasets"], region, nominal)[0]
    for syst in (s for s in systematics(model) if s["kind"] == "shape"):
        name = syst["name"]
        for sample in syst["samples"]:
            for side in ("up", "down") if syst["down"] is not None else ("up",):
                found = {region: _summed(histograms, samples[sample]["datasets"], region, syst[side], name)
                         for region in regions}
                if any(exists for _, exists in found.values()):
                    out.update({f"{region}__{sample}__{name}_{side}": h for region, (h, _) in found.items()})
                elif side == "down" and f"{next(iter(regions))}__{sample}__{name}_up" in out:
                    raise ValueError(f"systematic '{name}': sample '{sample}' has an up but no down "
                                     f"template {syst['down'][1]!r}")
        if not any(key.endswith(f"__{name}_up") for key in out):
            raise ValueError(f"systematic '{name}': template {syst['up'][1]!r} found for none of the "
                             f"samples {syst['samples']}")
    return {key: _without_flow(rebin_for_fit(h, model.get("rebin"))) for key, h in out.items()}


def write_templates(histograms: Mapping, model: Mapping, path: str | Path) -> None:
    """Write all fit templates (see :func:`templates`) to ONE ROOT file with uproot.

    >>> write_templates(histograms, model, outdir / "templates.root")
    >>> import uproot
    >>> len(uproot.open(outdir / "templates.root").keys(cycle=False)) == len(templates(histograms, model))
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = templates(histograms, model)
    identity = "|".join(f"{name}:{np.asarray(h.values()).tobytes().hex()}" for name, h in shapes.items())
    with recreate(path, identity) as out:                  # the same templates, the same bytes
        for name, h in shapes.items():
            out[name] = h


def cabinetry_config(model: Mapping, fit_cfg: Mapping | None, template_path: str | Path,
                     workdir: str | Path | None = None) -> dict:
    """A validated cabinetry config reading the templates written by :func:`write_templates`.

    Which systematic acts on which sample, and each region's binning (used for plot
    axes), are read from the template file. ``HistogramFolder`` is ``workdir/histograms``
    (``workdir`` defaults to the folder of the template file). ``fit_cfg`` is unused so far.

    >>> config = cabinetry_config(model, {}, work / "templates.root")   # written by build_workspace (ws)
    >>> config["General"]["InputPath"]                                  # doctest: +ELLIPSIS
    '/.../templates.root:{RegionPath}__{SamplePath}__{VariationPath}'
    >>> [s["Name"] for s in config["Systematics"]]
    ['jes', 'btag_var_0', 'btag_var_1', 'lumi']
    """
    import cabinetry

    template_path = _checked_template_path(template_path)
    workdir = Path(workdir).resolve() if workdir is not None else template_path.parent
    keys, regions, axes, populated = _read_template_file(template_path, model)
    config: dict = {
        "General": {
            "Measurement": str(model.get("measurement", "heirloom")),
            "POI": model["poi"],
            "InputPath": f"{template_path}:{{RegionPath}}__{{SamplePath}}__{{VariationPath}}",
            "HistogramFolder": str(workdir / "histograms"),
            "VariationPath": NOMINAL,
        },
        "Regions": [{"Name": name, "RegionPath": key, "Binning": [float(e) for e in axes[key].edges()],
                     "Variable": str(axes[key].member("fTitle") or key)} for key, name in regions.items()],
        "Samples": [{"Name": DATA, "SamplePath": DATA, "Data": True}]
                   + [{"Name": sample, "SamplePath": sample,
                       **({} if len(populated[sample]) == len(regions) else {"Regions": populated[sample]})}
                      for sample in model["samples"] if populated[sample]],
        "NormFactors": _norm_factor_entries(model),
        "Systematics": _systematic_entries(model, regions, keys, template_path),
    }
    cabinetry.configuration.validate(config)
    return config


def _checked_template_path(template_path: str | Path) -> Path:
    """The template file's absolute path; it must exist and hold no ':' (uproot's separator)."""
    path = Path(template_path).resolve()
    if ":" in str(path):
        raise ValueError(f"template path {path} contains ':' (uproot's file:object separator)")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: call write_templates first")
    return path


def _read_template_file(template_path: Path, model: Mapping) -> tuple[list, dict[str, str], dict, dict[str, list]]:
    """What the template file holds: its keys, the fit regions (analysis region -> fit region),
    each region's axis, and the fit regions where each sample expects events."""
    import uproot

    with uproot.open(template_path) as file:
        keys = file.keys(cycle=False)
        suffix = f"__{DATA}__{NOMINAL}"
        regions = fit_regions(model, {model["data"]: [k[: -len(suffix)] for k in keys if k.endswith(suffix)]})
        axes = {region: file[f"{region}__{DATA}__{NOMINAL}"].axis() for region in regions}
        # a sample with no expected events in a region is left out of that region: its
        # (up / nominal) systematic ratios would be 0/0 and poison the whole fit
        populated = {sample: [name for key, name in regions.items()
                              if float(file[f"{key}__{sample}__{NOMINAL}"].values().sum()) > 0]
                     for sample in model["samples"]}
    return keys, regions, axes, populated


def _norm_factor_entries(model: Mapping) -> list[dict]:
    """The cabinetry ``NormFactors`` of the model's ``norm_factors``."""
    return [{"Name": name, "Samples": list(spec["samples"]),
             **({"Nominal": float(spec["nominal"])} if "nominal" in spec else {}),
             **({"Bounds": [float(x) for x in spec["bounds"]]} if "bounds" in spec else {})}
            for name, spec in (model.get("norm_factors") or {}).items()]


def _systematic_entries(model: Mapping, regions: Mapping[str, str], keys: list, template_path: Path) -> list[dict]:
    """The cabinetry ``Systematics``; a shape systematic acts on the samples with templates of it."""
    entries = []
    for syst in systematics(model):
        entry = {"Name": syst["name"], "Samples": syst["samples"]}
        if syst["kind"] == "normalization":
            entry.update(Type="Normalization", Up={"Normalization": syst["up"]},
                         Down={"Normalization": syst["down"]})
        else:
            first = next(iter(regions))
            entry["Samples"] = [s for s in syst["samples"] if f"{first}__{s}__{syst['name']}_up" in keys]
            if not entry["Samples"]:
                raise ValueError(f"systematic '{syst['name']}' has no templates in {template_path}")
            entry.update(Type="NormPlusShape", Up={"VariationPath": f"{syst['name']}_up"},
                         Down={"Symmetrize": True} if syst["down"] is None
                         else {"VariationPath": f"{syst['name']}_down"})
        entries.append(entry)
    return entries


def build_workspace(histograms: Mapping, model: Mapping, fit_cfg: Mapping | None,
                    workdir: str | Path) -> dict:
    """Templates -> cabinetry config -> collect -> postprocess -> pyhf workspace (a plain dict).

    Writes ``workdir/templates.root``, ``workdir/cabinetry_config.json`` (paths in it
    relative to ``workdir``) and cabinetry's ``workdir/histograms/``. Deterministic: the same inputs give the identical JSON.

    >>> ws = build_workspace(histograms, model, {"strategy": 1}, outdir)
    >>> sorted(ws), sorted(p.name for p in outdir.iterdir())
    (['channels', 'measurements', 'observations', 'version'], ['cabinetry_config.json', 'histograms', 'templates.root'])
    """
    import cabinetry

    workdir = Path(workdir).resolve()
    template_path = workdir / TEMPLATE_FILE
    write_templates(histograms, model, template_path)
    config = cabinetry_config(model, fit_cfg, template_path, workdir)
    logging.getLogger("cabinetry.histo").addFilter(_quiet_empty_bins)
    cabinetry.templates.collect(config, method="uproot")
    cabinetry.templates.postprocess(config)
    _pin_zip_times(workdir / "histograms")
    workspace = cabinetry.workspace.build(config)
    # kept with paths relative to its folder: the output moves from staging into the
    # store (and stores move), so absolute paths would point nowhere
    portable = json.loads(json.dumps(config))
    portable["General"]["InputPath"] = config["General"]["InputPath"].replace(f"{template_path}:", f"{TEMPLATE_FILE}:")
    portable["General"]["HistogramFolder"] = "histograms"
    (workdir / "cabinetry_config.json").write_text(json.dumps(portable, indent=2) + "\n")
    return json.loads(json.dumps(workspace))      # plain Python types (no numpy floats)


# ---- helpers ------------------------------------------------------------------------
def _pin_zip_times(folder: Path) -> None:
    """cabinetry's ``.npz`` templates are zip files that carry the time they were written;
    rewrite them with a fixed time, so that the same fit gives the same bytes."""
    import zipfile

    for path in sorted(folder.glob("*.npz")):
        with zipfile.ZipFile(path) as source:
            members = [(info, source.read(info)) for info in source.infolist()]
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w") as target:
            for info, data in members:
                pinned = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                pinned.compress_type, pinned.external_attr = info.compress_type, info.external_attr
                target.writestr(pinned, data)
        tmp.replace(path)
def _quiet_empty_bins(record: logging.LogRecord) -> bool:
    """Drop cabinetry's per-template 'has empty bins' warnings: sparse systematic
    templates of small backgrounds are normal and the lines drown the useful output."""
    return "has empty bins" not in record.getMessage()


def _summed(histograms: Mapping, datasets: list, region: str, source: tuple, syst: str = ""):
    """(sum over ``datasets`` of the ``source`` template in ``region``, whether it exists).

    ``source`` is ``("variation", name)`` or ``("dataset", alternative dataset)``.
    """
    how, name = source
    if how == "dataset":
        replaced = datasets[0] if len(datasets) == 1 else sample_variation(name)[0]   # ttbar__ME_var -> ttbar
        if replaced not in datasets:
            raise ValueError(f"systematic '{syst}': cannot tell which of {datasets} '{name}' replaces "
                             "(name it '<dataset>__<variation>')")
        parts = [_get(histograms, name, region, NOMINAL)]
        parts += [_get(histograms, d, region, NOMINAL) for d in datasets if d != replaced]
        return sum(parts[1:], start=parts[0]), True
    varied = [_get(histograms, d, region, name, required=False) for d in datasets]
    parts = [h if h is not None else _get(histograms, d, region, NOMINAL) for d, h in zip(datasets, varied)]
    return sum(parts[1:], start=parts[0]), any(h is not None for h in varied)


def _get(histograms: Mapping, dataset: str, region: str, variation: str, required: bool = True):
    if dataset not in histograms or region not in histograms[dataset]:
        raise ValueError(f"no histogram for dataset '{dataset}' in region '{region}'")
    h = _select(histograms[dataset][region], variation)
    if h is None and required:
        raise ValueError(f"dataset '{dataset}' has no '{variation}' histogram in region '{region}'")
    return h


def _observable_axis(h: hist.Hist) -> Any:
    axes = [ax for ax in h.axes if not isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory))]
    if len(axes) != 1:
        raise ValueError(f"expected exactly one observable axis, got {[ax.name for ax in axes]}")
    return axes[0]


def _select(h: hist.Hist, variation: str) -> hist.Hist | None:
    """The 1D histogram of ``variation`` (None if ``h`` does not have it)."""
    categories = [ax for ax in h.axes if isinstance(ax, hist.axis.StrCategory)]
    if not categories:
        return h if variation == NOMINAL else None
    if len(categories) > 1 or categories[0].name != "variation":
        raise ValueError(f"expected one StrCategory axis 'variation', got {[ax.name for ax in categories]}")
    if variation not in list(categories[0]):
        return None
    return cast(hist.Hist, h[{"variation": variation}])


def _without_flow(h: hist.Hist) -> hist.Hist:
    """A copy without under/overflow bins, so the ROOT file holds exactly what is fitted."""
    axis = _observable_axis(h)
    edges = axis.edges
    new: hist.axis.Regular | hist.axis.Variable
    if isinstance(axis, hist.axis.Regular) and axis.transform is None:
        new = hist.axis.Regular(len(edges) - 1, edges[0], edges[-1], name=axis.name, label=axis.label,
                                underflow=False, overflow=False)
    else:
        new = hist.axis.Variable(edges, name=axis.name, label=axis.label, underflow=False, overflow=False)
    out = hist.Hist(new, storage=hist.storage.Weight())
    variances = h.variances()
    out.view()["value"] = h.values()
    out.view()["variance"] = h.values() if variances is None else variances   # Poisson if unweighted
    return out

