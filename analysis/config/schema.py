"""JSON schema of an analysis config, and its validation into located ConfigErrors.

The schema is the config reference in machine form; ``docs/config-reference.md``
describes each key for people. Unknown keys are errors: a typo must never be ignored.
"""

from __future__ import annotations

import re

import jsonschema

from analysis.config.errors import ConfigError

_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*\Z"}     # \Z: no trailing newline
_EXPR = {"type": "string", "minLength": 1}
_NUMBER = {"type": "number"}
_STRINGS = {"type": "array", "items": {"type": "string"}}

# What a config may make the machine allocate (docs/config-reference.md, "Limits").
MAX_BINS = 100_000              # bins of one histogram axis (observables.<name>.bins)
MAX_EVENTS = 50_000_000         # generated events of one dataset (generator.events, demo.events)
MAX_CHUNK_SIZE = 10_000_000     # events per chunk (demo/skim/select.chunk_size)
_EVENTS = {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS}
_CHUNK_SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_CHUNK_SIZE}


def _obj(properties: dict, required: tuple = (), **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False, **extra}


GENERATOR = _obj({
    "process": {"type": "string"},
    "events": _EVENTS,
    "seed": {"type": "integer"},
    "params": {"type": "object"},
    "mixture": {"type": "boolean", "description": "pseudo-collision data drawn from the MC datasets"},
})

DATASET = _obj({
    "kind": {"enum": ["mc", "data", "pseudodata"]},
    "files": {**_STRINGS, "minItems": 1},
    "generator": GENERATOR,
    "xsec": _NUMBER,
    "label": {"type": "string"},
    "color": {"type": "string"},
    "combine": {"type": "object", "additionalProperties": _NUMBER,
                "description": "pseudodata: dataset name -> factor"},
    "tree": {"type": "string"},
    "format": {"enum": ["root", "parquet"]},
    "version": {"type": ["string", "integer"],
                "description": "the files' version, for remote files whose server gives no checksum: change it "
                               "when they change (docs/remote-data.md)"},
    "systematics": {"type": "boolean",
                    "description": "false: no event-level systematics for this dataset (e.g. a sample-variation template)"},
}, required=("kind",))

OBSERVABLE = _obj({
    "expr": _EXPR,
    "bins": {"type": "integer", "minimum": 1, "maximum": MAX_BINS},
    "range": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
    "label": {"type": "string"},
    "unit": {"type": "string", "description": "of the y label 'Events / <bin width> <unit>' (default: [unit] of label)"},
}, required=("expr", "bins", "range"))

REGION = _obj({
    "cut": _EXPR,
    "observable": {"type": "string"},
    "observables": _STRINGS,
    "label": {"type": "string"},
})   # 'cut' is required unless the config has external_histograms (checked in model.py)

SYSTEMATIC = _obj({
    "type": {"enum": ["weight", "shape", "normalization", "template"],
             "description": "template: up/down name existing variations (e.g. of external_histograms)"},
    "up": {},
    "down": {},
    "datasets": _STRINGS,
    "samples": _STRINGS,
    "symmetrize": {"type": "boolean"},
    "up_dataset": {"type": "string"},
    "down_dataset": {"type": "string"},
    "label": {"type": "string"},
    "agc_name": {**_NAME, "description": "its variations' names in the AGC's layout (AGCHistograms): "
                 "<agc_name>_up, <agc_name>_down"},
}, required=("type",))

MODEL = _obj({
    "poi": {"type": "string"},
    "data": {"type": "string"},
    "regions": {"type": "object", "additionalProperties": _obj({"name": {"type": "string"}})},
    "rebin": _obj({"low": _NUMBER, "high": _NUMBER, "merge": {"type": "integer", "minimum": 1}}),
    "samples": {"type": "object", "additionalProperties": _obj({
        "datasets": _STRINGS, "label": {"type": "string"}, "color": {"type": "string"}},
        required=("datasets",))},
    "norm_factors": {"type": "object", "additionalProperties": _obj({
        "samples": _STRINGS, "nominal": _NUMBER,
        "bounds": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}},
        required=("samples",))},
}, required=("poi", "data", "samples"))

EXTERNAL_HISTOGRAMS = _obj({
    "file": {"type": "string", "minLength": 1, "description": "relative to the config file that sets it"},
    "format": {"enum": ["agc_json", "root"]},
    "name": {"type": "string", "minLength": 1,
             "description": "histogram name pattern with {region}, {dataset} and {variation}"},
    "regions": {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [
        {"type": "string"},
        _obj({"name": {"type": "string"}, "observable": _NAME, "label": {"type": "string"}})]},
        "description": "config region -> its {region} in names (or {name, observable, label})"},
    "datasets": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"},
                 "description": "config dataset -> its {dataset} in names"},
    "variations": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "variation -> its {variation} in names (nominal: '' unless given)"},
    "variances": {"enum": ["file", "per_event_weight", "contents", "zero"]},
    "weights": {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                "description": "per_event_weight: dataset -> weight (instead of inferring it)"},
}, required=("file", "format", "name", "regions", "datasets"))

LIKELIHOOD = _obj({
    "archive": {"type": "string", "minLength": 1,
                "description": "tar.gz of a published pyhf likelihood, relative to the config that sets it"},
    "region": {"type": "string", "description": "folder of the workspace in the archive ('' = top level)"},
    "background_only": {"type": "string", "minLength": 1, "description": "member name, default BkgOnly.json"},
    "patches": {"type": "string", "minLength": 1, "description": "glob of the signal patches, default patch.*.json"},
    "labels": {"type": "array", "items": _NAME, "minItems": 1,
               "description": "names of the numbers that end a patch name (e.g. the masses)"},
    "hepdata": {"type": "string", "pattern": r"^ins[0-9]{7}$",
                "description": "HEPData record (default: read from the archive name)"},
    "test_statistic": {"enum": ["qtilde", "q"]},
    "poi_value": _NUMBER,
    "calculator": {"enum": ["asymptotics"]},
    "points": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1, "items": {
        "type": "string", "minLength": 1}}], "description": "glob(s) of the point names to compute"},
    "plot": _obj({
        "x": _NAME,
        "y": _NAME,
        "fix": {"type": "object", "additionalProperties": _NUMBER,
                "description": "label -> value: draw only the points with these values"},
        "x_label": {"type": "string"},
        "y_label": {"type": "string"},
        "title": {"type": "string"},
        "experiment_label": {"type": "string"},
        "formats": {"type": "array", "minItems": 1, "items": {"enum": ["png", "pdf", "svg"]}},
    }),
}, required=("archive", "labels"))

LIMIT = _obj({
    "signal": _obj({"datasets": {**_STRINGS, "minItems": 1}, "label": {"type": "string"}}, required=("datasets",)),
    "poi": _NAME,
    "cl": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "bracket": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 2, "maxItems": 2,
                "description": "POI interval searched for the observed and expected limits"},
    "scan": _obj({"low": {"type": "number", "minimum": 0}, "high": {"type": "number", "exclusiveMinimum": 0},
                  "points": {"type": "integer", "minimum": 3}}, required=("low", "high", "points"),
                 description="CLs on a grid instead of a root search (one hypothesis test per point)"),
    "bounds": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
    "tolerance": {"type": "number", "exclusiveMinimum": 0},
}, required=("signal", "poi"))

# What one batch job of a task family asks for (analysis.batch.resources; result-neutral:
# never in a content key). Memory suffixes are binary (4GB = 4096 MiB); a bare number is MiB.
MEMORY_PATTERN = r"^ *([0-9]+(\.[0-9]*)?|\.[0-9]+) *([KkMmGgTt]([Ii]?[Bb])?)? *\Z"
PARTITION_PATTERN = r"^[A-Za-z0-9_.,+-]+\Z"      # also an HTCondor accounting group: one word
WALLTIME_EXPECTED = ('a walltime in quotes like "01:30:00" (HH:MM:SS), "45:00" (MM:SS) or "90" (minutes); '
                     'unquoted, YAML reads 45:00 as the number 2700')
WALLTIME_PATTERN = r"^ *([0-9]+|[0-9]+:[0-5][0-9]|([0-9]+-)?[0-9]+:[0-5][0-9]:[0-5][0-9]) *\Z"
RESOURCE_SPEC = _obj({
    "cpus": {"type": "integer", "minimum": 1},
    "memory": {"type": ["string", "integer"], "pattern": MEMORY_PATTERN, "minimum": 1,
               "x-expected": "a memory size like 4GB, 2000MB or 1.5GiB (binary units; a number is MiB)"},
    "gpus": {"type": "integer", "minimum": 0},
    "walltime": {"type": "string", "pattern": WALLTIME_PATTERN,     # a string: YAML reads 45:00 as 2700
                 "x-expected": WALLTIME_EXPECTED},
    "partition": {"type": "string", "pattern": PARTITION_PATTERN, "x-expected": "a partition name (letters, "
                  "digits and _ . , + -)", "description": "Slurm partition (--partition); HTCondor accounting_group"},
})
RESOURCES = {"type": "object", "additionalProperties": RESOURCE_SPEC,
             "propertyNames": {"pattern": r"^(default|[A-Z][A-Za-z0-9_]*)\Z",
                               "x-expected": "a task family (Skim, Select, Fit, ...) or default"},
             "description": "task family (Skim, Fit, ...) or default -> its batch resources"}

# Where the Histogram task fills (analysis.hist.device_fill). Result-neutral: both devices
# give identical histograms, so the device never enters a content key.
HISTOGRAM = _obj({
    "device": {"enum": ["cpu", "cuda"], "description": "cuda: bin indices and sums with cupy on a GPU "
               "(numpy, with one log line, where there is none); on Dask, runs on a GPU=1 worker"},
})

# An ONNX model run in Select (analysis.ml.models): its file's content enters Select's key.
ML_MODEL = _obj({
    "file": {"type": "string", "minLength": 1, "description": "ONNX file, relative to the config that sets it "
             "(inside its folder)"},
    "inputs": {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [
        _EXPR, {"type": "array", "minItems": 1, "items": _EXPR}]},
        "description": "ONNX input -> an expression with the features on its last axis, or one expression per feature"},
    "outputs": {"type": "object", "minProperties": 1, "additionalProperties": _NAME,
                "description": "ONNX output -> the column expressions read it as"},
    "device": {"enum": ["cpu", "cuda"], "description": "cuda: ONNX Runtime's CUDA provider, or an error"},
}, required=("file", "inputs", "outputs"))

OPTIMISE = _obj({
    "objective": {"enum": ["discovery_significance", "poi_uncertainty"]},
    "parameters": {"type": "object", "minProperties": 1, "propertyNames": _NAME, "additionalProperties": _obj({
        "value": _NUMBER,
        "bounds": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
        "slope": {"type": "number", "exclusiveMinimum": 0,
                  "description": "steepness of the sigmoid that replaces a cut on it, per unit of the parameter"},
        "round": {"type": "number", "exclusiveMinimum": 0, "description": "the optimum is rounded to a multiple of this"},
    }, required=("value", "bounds", "slope"))},
    "method": _obj({
        "name": {"enum": ["L-BFGS-B", "adam"]},
        "steps": {"type": "integer", "minimum": 1, "maximum": 10_000,
                  "description": "L-BFGS-B: most evaluations of the objective; adam: its steps"},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "description": "adam only"},
    }, required=("name",)),
}, required=("objective", "parameters"))

SCHEMA = _obj({
    "name": {"type": "string", "description": "the analysis name (analysis.names: letters, digits, _ and -)"},
    "description": {"type": "string"},
    "plugins": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "alias -> python file (relative to the config); runs only when trusted (docs/security.md)"},
    "corrections": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "alias -> correctionlib JSON(.gz) file (relative to the config)"},
    "tree": {"type": "string"},
    "lumi": _NUMBER,
    "event_weight": _EXPR,
    "demo": _obj({
        "seed": {"type": "integer"},
        "events": _EVENTS,
        "inject": {"type": "object", "additionalProperties": _NUMBER},
        "chunk_size": _CHUNK_SIZE,
    }),
    "datasets": {"type": "object", "minProperties": 1, "additionalProperties": DATASET},
    "skim": _obj({
        "preselection": _EXPR,
        "chunk_size": _CHUNK_SIZE,
        "memory_mb": {"type": "integer", "minimum": 100, "maximum": 10_000_000,
                      "description": "memory budget per worker process: Skim chunks of at most chunk_size events "
                                     "that fit it (it decides the chunks, so it can change Skim keys)"},
        "keep": _STRINGS,
        "copy": {"enum": ["auto", "always"],
                 "description": "auto: a chunk whose every event passes, of a local ROOT file stored uncompressed, "
                                "LZ4 or ZSTD, is not copied (Select reads the file); always: every chunk is copied"},
    }),
    "objects": {"type": "object", "additionalProperties": _obj({
        "from": {"type": "string"}, "where": _EXPR}, required=("from",))},
    "selection": {"type": "array", "items": _obj({"name": {"type": "string"}, "cut": _EXPR}, required=("name", "cut"))},
    "regions": {"type": "object", "minProperties": 1, "additionalProperties": REGION},
    "observables": {"type": "object", "additionalProperties": OBSERVABLE},
    "systematics": {"type": "object", "additionalProperties": SYSTEMATIC},
    "select": _obj({"chunk_size": _CHUNK_SIZE,
                    "memory_mb": {"type": "integer", "minimum": 100, "maximum": 10_000_000,
                                  "description": "memory budget per worker process: sets the chunk size"}}),
    "models": {"type": "object", "additionalProperties": ML_MODEL},    # ONNX inference in Select
    "histogram": HISTOGRAM,     # device: cpu|cuda (result-neutral: never in a key)
    "model": MODEL,
    "external_histograms": EXTERNAL_HISTOGRAMS,
    "limit": LIMIT,
    "likelihood": LIKELIHOOD,   # a published likelihood instead of datasets/regions
    "resources": RESOURCES,     # batch jobs: cpus, memory, gpus, walltime, partition per task family
    "fit": _obj({
        "strategy": {"type": ["integer", "null"], "enum": [0, 1, 2, None]},
        "tolerance": {"type": ["number", "null"]},
        "minos": _STRINGS,
        "asimov": {"type": "boolean"},
        "maxiter": {"type": ["integer", "null"], "minimum": 1},
        "ranking": {"type": "boolean", "description": "nuisance-parameter impact ranking (4 fits per parameter)"},
        "significance": {"type": "boolean", "description": "discovery significance of the POI"},
    }),
    "optimise": OPTIMISE,       # gradient-based optimisation of cut thresholds (analysis.config.optimise)
    "plots": _obj({            # analysis.plot.style; checked further by analysis.plot.layout.check_config
        "title": {"type": "string"},
        "log_y": {"type": "boolean"},
        "experiment": {"type": "string", "description": "CMS, ATLAS, LHCb, ALICE (their mplhep labels) or any text"},
        "label": {"type": "string", "description": "text after the experiment, e.g. 'Open Data', 'Preliminary'"},
        "cms_label": {"type": "string", "description": "short for experiment: CMS, label: <this>"},
        "energy": {"type": ["number", "string"], "description": "sqrt(s): TeV, or a text with its unit; '' omits it"},
        "ratio_range": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
        "formats": {"type": "array", "minItems": 1, "items": {"enum": ["png", "pdf", "svg"]}},
    }),
}, required=("name",),     # and datasets + regions, or likelihood (model.check_kind)
   **{"if": {"required": ["likelihood"]}, "else": {"required": ["datasets", "regions"]}},
   patternProperties={"^x-": {}})   # free keys for YAML anchors, e.g. x-nominal-datasets: &nominal [...]


def validate(data: dict, locations: dict, file: str) -> None:
    """Raise a ConfigError naming key and line for the first schema violation.

    >>> validate({"name": "x", "datasets": {"d": {"kind": "data", "files": ["d.root"]}},
    ...           "regions": {"r": {"cut": "True"}}}, {}, "c.yaml")
    >>> validate({"name": "x", "datasets": {}, "regions": {}}, {}, "c.yaml")
    Traceback (most recent call last):
    analysis.errors.ConfigError: c.yaml: key 'datasets': {} should be non-empty
    """
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties",
                                                                         list(map(str, e.absolute_path))))
    if not errors:
        return
    error = errors[0]
    path = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties":
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        unknown = [k for k in error.instance if k not in error.schema.get("properties", {})
                   and not any(p.search(k) for p in patterns)]
        if unknown:
            path = path + (unknown[0],)
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            message = f"unknown key '{unknown[0]}' (allowed here: {allowed})"
    elif error.validator == "required":
        message = error.message.replace("is a required property", "is required here")
    elif "x-expected" in error.schema:          # a value with a format: say which, not the regex
        message = f"{error.instance!r} is not {error.schema['x-expected']}"
        if "propertyNames" in error.schema_path:        # a bad key: locate the key itself
            path = path + (error.instance,)
    raise located_error(message, path, locations, file)


def located_error(message: str, path: tuple, locations: dict, file: str) -> ConfigError:
    """A ConfigError for ``path``, using the closest recorded location (the key or a parent)."""
    probe = tuple(path)
    while probe and probe not in locations:
        probe = probe[:-1]
    where_file, line = locations.get(probe, (file, None))
    key = ".".join(str(p) for p in path) or None
    return ConfigError(message, file=where_file, key=key, line=line)
