"""The validated analysis config as an object: sections, expressions, derived variations."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from analysis.lang import expr as expressions
from analysis.config.errors import ConfigError
from analysis.config.files import MAX_CORRECTION_BYTES, regular_file
from analysis.config.loader import load_with_extends
from analysis.config.optimise import resolve_parameters
from analysis.config.schema import located_error, validate
from analysis.lang.plugins import Plugin, PluginError, load_plugin
from analysis.names import (CUTFLOW_RESERVED, DATA_SAMPLE, NOMINAL, SAMPLE_VARIATION_SEPARATOR, TEMPLATE_PARTS,
                            bad_name)



@dataclass(frozen=True)
class ShapeVariation:
    """A variation that changes inputs (e.g. jet pt) before objects and selection are built."""
    name: str                                   # e.g. "jes_up"
    overrides: dict                             # {"Jet.pt": Expression}


@dataclass(frozen=True)
class WeightVariation:
    """A variation that multiplies the event weight of selected events."""
    name: str                                   # e.g. "btag_var_0_up"
    factor: Any                                 # Expression


@dataclass
class AnalysisConfig:
    """A loaded, validated analysis config. ``data`` is the merged YAML (read-only by convention)."""

    path: Path
    data: dict
    locations: dict
    files: list
    plugins: dict = field(default_factory=dict)        # alias -> Plugin
    data_checked: bool = False                          # analysis.load ran the domain checks
    _compiled: dict = field(default_factory=dict)      # key path -> Expression
    parametrised: dict = field(default_factory=dict)   # key path -> text naming opt.<parameter> (as written)

    # ---- plain sections -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def datasets(self) -> dict:
        return self.data.get("datasets", {})       # none in a likelihood config

    @property
    def regions(self) -> dict:
        return self.data.get("regions", {})

    @property
    def observables(self) -> dict:
        return self.data.get("observables", {})

    @property
    def systematics(self) -> dict:
        return self.data.get("systematics", {})

    @property
    def tree(self) -> str:
        return self.data.get("tree", "Events")

    @property
    def lumi(self) -> float:
        return float(self.data.get("lumi", 1.0))

    def section(self, *path: str, default: Any = None) -> Any:
        """A deep copy of the value at ``path`` (or ``default``)."""
        node: Any = self.data
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return copy.deepcopy(default)
            node = node[key]
        return copy.deepcopy(node)

    def error(self, message: str, *path: str | int) -> ConfigError:
        """A ConfigError located at ``path`` (file and line of the key that set it)."""
        return located_error(message, tuple(path), self.locations, str(self.path))

    def file_of(self, *path: str | int) -> Path:
        """The config file that wrote ``path`` (relative file names resolve against its folder)."""
        probe = tuple(path)
        while probe and probe not in self.locations:
            probe = probe[:-1]
        return Path(self.locations.get(probe, (str(self.path), None))[0])

    # ---- expressions ----------------------------------------------------------------
    def expression(self, *path: str | int) -> expressions.Expression:
        """The compiled expression at ``path`` (compiled and checked at load time)."""
        return self._compiled[tuple(path)]

    def expression_paths(self) -> Iterator[tuple]:
        """Every key path that holds an expression, in evaluation order."""
        if "skim" in self.data and "preselection" in self.data["skim"]:
            yield ("skim", "preselection")
        if "event_weight" in self.data:
            yield ("event_weight",)
        for name, obj in self.data.get("objects", {}).items():
            if "where" in obj:
                yield ("objects", name, "where")
        for name, spec in self.data.get("models", {}).items():      # ML inputs: see the objects
            for key, text in spec["inputs"].items():
                yield from ([("models", name, "inputs", key, i) for i in range(len(text))] if isinstance(text, list)
                            else [("models", name, "inputs", key)])
        for index, _ in enumerate(self.data.get("selection", [])):
            yield ("selection", index, "cut")
        for name, region in self.regions.items():
            if "cut" in region:                 # none with external_histograms
                yield ("regions", name, "cut")
        for name in self.observables:
            yield ("observables", name, "expr")
        for name, syst in self.systematics.items():
            for side in ("up", "down"):
                value = syst.get(side)
                if syst["type"] == "weight" and value is not None:
                    yield ("systematics", name, side)
                elif syst["type"] == "shape" and isinstance(value, dict):
                    for target in value:
                        yield ("systematics", name, side, target)

    def plugin_functions(self) -> dict:
        """Callables the expressions may use: plugin functions and correctionlib corrections."""
        from analysis.lang import corrections

        functions = {}
        for plugin in self.plugins.values():
            functions.update(plugin.functions())
        for alias, path in self.correction_files().items():
            functions.update(corrections.functions(alias, path))
        return functions

    def correction_files(self) -> dict:
        """``{alias: absolute path}`` of the correctionlib files under ``corrections:``."""
        return {alias: str((self.file_of("corrections", alias).parent / spec).resolve())
                for alias, spec in self.data.get("corrections", {}).items()}

    def plugins_used(self, paths: Iterable[Sequence[str | int]]) -> dict:
        """``{alias: source fingerprint}`` of the plugins called by the expressions at ``paths``."""
        from analysis.lang import corrections

        used = {}
        files = self.correction_files()
        for path in paths:
            for function in self._compiled[tuple(path)].functions:
                alias = function.split(".", 1)[0]
                if alias in self.plugins:
                    used[alias] = self.plugins[alias].fingerprint
                elif alias in files:
                    used[alias] = corrections.fingerprint(files[alias])
        return dict(sorted(used.items()))

    # ---- variations -----------------------------------------------------------------
    def applies_to(self, syst_name: str, dataset: str) -> bool:
        syst = self.systematics[syst_name]
        spec = self.datasets[dataset]
        if spec["kind"] != "mc" or spec.get("systematics") is False:
            return False
        return dataset in syst["datasets"] if "datasets" in syst else True

    def shape_variations(self, dataset: str) -> list[ShapeVariation]:
        """Nominal first, then ``<syst>_up``/``<syst>_down`` of every shape systematic."""
        variations = [ShapeVariation(NOMINAL, {})]
        for name, syst in self.systematics.items():
            if syst["type"] != "shape" or not self.applies_to(name, dataset):
                continue
            for side in ("up", "down"):
                if isinstance(syst.get(side), dict):
                    overrides = {t: self.expression("systematics", name, side, t) for t in syst[side]}
                    variations.append(ShapeVariation(f"{name}_{side}", overrides))
        return variations

    def weight_variations(self, dataset: str) -> list[WeightVariation]:
        variations = []
        for name, syst in self.systematics.items():
            if syst["type"] != "weight" or not self.applies_to(name, dataset):
                continue
            for side in ("up", "down"):
                if syst.get(side) is not None:
                    variations.append(WeightVariation(f"{name}_{side}",
                                                      self.expression("systematics", name, side)))
        return variations


#: top-level keys of an event analysis, meaningless next to ``likelihood:``
EVENT_KEYS = ("datasets", "regions", "objects", "selection", "observables", "systematics", "skim", "select",
              "model", "external_histograms", "fit", "plots", "event_weight", "demo", "tree", "lumi",
              "plugins", "corrections", "limit", "models", "histogram")


def check_kind(data: dict, locations: dict, file: str) -> None:
    """A config is an event analysis (``datasets`` + ``regions``) or a published likelihood
    (``likelihood:``), never both and never neither.

    >>> check_kind({"name": "x", "likelihood": {}, "datasets": {}}, {}, "c.yaml")
    Traceback (most recent call last):
    analysis.errors.ConfigError: c.yaml: key 'datasets': a likelihood config (with 'likelihood:') has no 'datasets': it is either an event analysis or a published likelihood
    """
    if "likelihood" in data:
        mixed = [key for key in EVENT_KEYS if key in data]
        if mixed:
            raise located_error(f"a likelihood config (with 'likelihood:') has no '{mixed[0]}': it is either "
                                "an event analysis or a published likelihood", (mixed[0],), locations, file)
    elif "datasets" not in data and "regions" not in data:
        raise located_error("a config needs 'datasets' and 'regions' (an event analysis) or 'likelihood' "
                            "(a published likelihood)", (), locations, file)


def _check_names(cfg: AnalysisConfig) -> None:
    """Every name follows :data:`analysis.names.NAME_PATTERN`; cutflow steps do not clash."""
    problem = bad_name(cfg.name)
    if problem:
        raise cfg.error(problem, "name")
    sections = [("datasets", cfg.datasets), ("regions", cfg.regions), ("observables", cfg.observables),
                ("systematics", cfg.systematics), ("samples", cfg.section("model", "samples", default={}) or {})]
    for section, names in sections:
        for name in names:
            path = ("model", "samples", name) if section == "samples" else (section, name)
            problem = bad_name(name)
            if not problem and section in TEMPLATE_PARTS and SAMPLE_VARIATION_SEPARATOR in name:
                problem = f"'{name}' contains '{SAMPLE_VARIATION_SEPARATOR}', which separates the parts of template names"
            if not problem and section == "samples" and name == DATA_SAMPLE:
                problem = f"'{DATA_SAMPLE}' is reserved for the observed data in the fit: rename the sample"
            if problem:
                raise cfg.error(problem, *path)
    steps = [step["name"] for step in cfg.data.get("selection", [])]
    for index, step in enumerate(steps):
        problem = bad_name(step)
        if problem:
            raise cfg.error(problem, "selection", index, "name")
        if step in CUTFLOW_RESERVED or step in steps[:index]:
            raise cfg.error(f"'{step}' is already a cutflow step (reserved: {', '.join(CUTFLOW_RESERVED)})",
                            "selection", index, "name")
    for region in cfg.regions:
        if region in CUTFLOW_RESERVED or region in steps:
            raise cfg.error(f"region '{region}' would share its cutflow row with "
                            f"{'a reserved step' if region in CUTFLOW_RESERVED else 'a selection step'}: rename it",
                            "regions", region)


def _check_structure(cfg: AnalysisConfig) -> None:
    """Cross-references the schema cannot see: names that must exist elsewhere."""
    if "likelihood" in cfg.data:
        return                  # the likelihood section's references: analysis.load
    external = cfg.data.get("external_histograms")      # histograms made elsewhere: no event loop
    _check_datasets(cfg, external)
    _check_objects(cfg)
    _check_regions(cfg, external)
    _check_observables(cfg)
    for name, syst in cfg.systematics.items():
        _check_systematic(cfg, name, syst)
    _check_model(cfg)


def _check_datasets(cfg: AnalysisConfig, external: dict | None) -> None:
    """Each dataset has its inputs (files or a generator), MC its cross-section, pseudodata its parts."""
    datasets = cfg.datasets
    for name, ds in datasets.items():
        kind = ds["kind"]
        if kind in ("mc", "data") and not external and not ("files" in ds) ^ ("generator" in ds):
            raise cfg.error(f"dataset '{name}' needs exactly one of 'files' or 'generator'", "datasets", name)
        if kind == "mc" and "xsec" not in ds:
            raise cfg.error(f"MC dataset '{name}' needs 'xsec' (pb)", "datasets", name)
        if kind == "pseudodata":
            for other in ds.get("combine", {}) or {}:
                if other not in datasets:
                    raise cfg.error(f"unknown dataset '{other}'", "datasets", name, "combine", other)
            if not ds.get("combine") and not (external and name in external["datasets"]):
                raise cfg.error("pseudodata needs 'combine: {dataset: factor}'", "datasets", name)


def _check_objects(cfg: AnalysisConfig) -> None:
    """Each object derives from a NanoAOD collection or from an object defined above it."""
    known_objects: set = set()
    for name, obj in cfg.data.get("objects", {}).items():
        source = obj["from"]
        if source in known_objects:
            pass
        elif not source[:1].isupper():
            raise cfg.error(f"'from: {source}' is neither a NanoAOD collection nor an object defined above",
                            "objects", name, "from")
        known_objects.add(name)


def _check_regions(cfg: AnalysisConfig, external: dict | None) -> None:
    """Each region has a cut (unless its histograms are external) and histograms known observables."""
    for name, region in cfg.regions.items():
        if "cut" not in region and not external:
            raise cfg.error("a region needs 'cut' (only regions of external_histograms have none)",
                            "regions", name)
        for obs in _region_observables(region):
            if obs not in cfg.observables:
                raise cfg.error(f"unknown observable '{obs}'", "regions", name,
                                "observable" if "observable" in region else "observables")


def _check_observables(cfg: AnalysisConfig) -> None:
    """Each observable's range is [low, high] with high > low."""
    for name, obs in cfg.observables.items():
        low, high = obs["range"]
        if not high > low:
            raise cfg.error("range must be [low, high] with high > low", "observables", name, "range")


#: what the ``up``/``down`` of each kind of systematic must be, and how to say it
_SIDE_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "weight": (str, "an expression (string)"),
    "normalization": ((int, float), "a number (e.g. 0.03)"),
    "shape": (dict, "a mapping like {Jet.pt: 'Jet.pt * 1.03'}"),
    "template": (str, "a variation name (e.g. pt_scale_up)"),
}


def _check_systematic(cfg: AnalysisConfig, name: str, syst: dict) -> None:
    """A systematic names known datasets and has an ``up``/``down`` of the type its kind needs."""
    datasets = cfg.datasets
    for ds in syst.get("datasets", []):
        if ds not in datasets:
            raise cfg.error(f"unknown dataset '{ds}'", "systematics", name, "datasets")
    kind = syst["type"]
    for side in ("up", "down"):
        value = syst.get(side)
        if value is None:
            continue
        types, expected = _SIDE_TYPES[kind]
        if not isinstance(value, types):
            raise cfg.error(f"a {kind} systematic's '{side}' must be {expected}", "systematics", name, side)
    for key in ("up_dataset", "down_dataset"):
        if key in syst and syst[key] not in datasets:
            raise cfg.error(f"unknown dataset '{syst[key]}'", "systematics", name, key)
    if kind != "normalization" and syst.get("up") is None and "up_dataset" not in syst:
        raise cfg.error("a systematic needs 'up' (or 'up_dataset')", "systematics", name)


def _check_model(cfg: AnalysisConfig) -> None:
    """The model's data, sample datasets and regions exist; its POI is one of its norm factors."""
    model = cfg.data.get("model")
    if not model:
        return
    datasets = cfg.datasets
    if model["data"] not in datasets:
        raise cfg.error(f"unknown dataset '{model['data']}'", "model", "data")
    for sample, spec in model["samples"].items():
        for ds in spec["datasets"]:
            if ds not in datasets:
                raise cfg.error(f"unknown dataset '{ds}'", "model", "samples", sample, "datasets")
    for region in model.get("regions", {}):
        if region not in cfg.regions:
            raise cfg.error(f"unknown region '{region}'", "model", "regions", region)
    if model["poi"] not in model.get("norm_factors", {}):
        raise cfg.error(f"the POI '{model['poi']}' must be one of model.norm_factors", "model", "poi")


def _region_observables(region: dict) -> list:
    if "observables" in region:
        return list(region["observables"])
    return [region["observable"]] if "observable" in region else []


def region_observables(region: dict) -> list:
    """Observable names histogrammed in a region (``observable:`` or ``observables:``)."""
    return _region_observables(region)


def _compile_all(cfg: AnalysisConfig) -> None:
    plugins = cfg.plugin_functions()
    for path in cfg.expression_paths():
        node: Any = cfg.data
        for key in path:
            node = node[key]
        if not isinstance(node, str):
            raise cfg.error("expected an expression (a string)", *path)
        try:
            cfg._compiled[path] = expressions.compile_expression(node, plugins=plugins)
        except expressions.ExpressionError as err:
            if err.reason == "operator precedence":          # the message quotes what it reads as
                raise cfg.error(f"{node.strip()!r}: {err.message}", *path) from None
            raise cfg.error(f"bad expression: {err}", *path) from None
    for name, syst in cfg.systematics.items():
        if syst["type"] != "shape":
            continue
        for side in ("up", "down"):
            for target in (syst.get(side) or {}):
                if target.count(".") != 1 or not target.split(".")[0][:1].isupper():
                    raise cfg.error(f"shape override target '{target}' must be Collection.field",
                                    "systematics", name, side, target)


_CACHE: dict = {}


def _stamps(cfg: AnalysisConfig) -> tuple:
    """What a cached config depends on: its files and its plugin files (an edited plugin
    must be checked for trust again)."""
    paths = list(cfg.files) + [plugin.source_path for plugin in cfg.plugins.values()]
    return tuple((os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in paths)


def read_config(path: str | os.PathLike) -> AnalysisConfig:
    """Load, merge (``extends:``), validate and compile a config; raises ConfigError.

    This checks the schema and every reference inside the config. The sections that
    other layers read (external histograms, limits, published likelihoods, the AGC
    layout) are checked by :func:`analysis.load.load_config`, which everything else calls.
    Cached by the modification times of every file in the ``extends:`` chain.

    >>> cfg = read_config("configs/demo.yaml")
    >>> cfg.expression("regions", "4j1b", "cut").names
    frozenset({'bjets'})
    """
    path = Path(path)
    key = str(path.resolve())
    cached = _CACHE.get(key)
    if cached is not None:
        stamps, cfg = cached
        try:
            if stamps == _stamps(cfg):
                return cfg
        except OSError:
            pass
    if not path.exists():
        raise ConfigError("config file not found", file=str(path))
    data, locations, files = load_with_extends(path)
    check_kind(data, locations, str(path))
    validate(data, locations, str(path))
    cfg = AnalysisConfig(path=path, data=data, locations=locations, files=files)
    for alias, spec in data.get("plugins", {}).items():
        try:
            cfg.plugins[alias] = load_plugin(alias, spec, cfg.file_of("plugins", alias).parent)
        except PluginError as err:        # not a file, not trusted, not Python
            raise cfg.error(str(err), "plugins", alias) from None
    for alias, correction_file in cfg.correction_files().items():
        if alias in cfg.plugins:
            raise cfg.error(f"'{alias}' is both a plugin and a correction alias", "corrections", alias)
        try:
            regular_file(correction_file, limit=MAX_CORRECTION_BYTES, what="correction file")
        except ValueError as err:                # /dev/zero, a directory, 300 MiB: refused unread
            raise cfg.error(str(err), "corrections", alias) from None
        try:
            from analysis.lang.corrections import correction_names

            correction_names(correction_file)
        except (OSError, ValueError) as err:
            raise cfg.error(f"cannot read correction file: {err}", "corrections", alias) from None
    resolve_parameters(cfg, list(cfg.expression_paths()))      # opt.<name> -> its value (analysis.config.optimise)
    _check_names(cfg)
    _compile_all(cfg)
    _check_structure(cfg)
    _CACHE[key] = (_stamps(cfg), cfg)
    return cfg


from analysis.config.branches import DERIVED_FIELDS, check_names  # noqa: E402,F401  (their old home)
