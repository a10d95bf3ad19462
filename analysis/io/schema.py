"""The schema of a dataset's input: its branches' names and awkward types, no events.

A type is awkward's type string of one branch, ``"float32"`` for one value per event or
``"var * float32"`` for one per object (flat NanoAOD-style names, as
:func:`analysis.io.fileid.parquet_columns` lists a parquet file's columns). A generated
dataset's schema is the generator's (:data:`analysis.io.demo_streams.BRANCH_TYPES`); a
file-based one's comes from its first file's metadata (the TTree's branch
interpretations, the parquet footer's arrow schema), read once and cached under the
file's content key in ``<store>/manifests/schemas.json`` and in the user's cache
(:mod:`analysis.store.user_cache`).

>>> schema = dataset_schema(cfg, "ttbar", Manifest(outdir))
>>> schema["Jet_pt"], schema["nJet"], schema["event"]
('var * float32', 'int32', 'uint64')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis.config.model import AnalysisConfig
from analysis.io import datasets
from analysis.io.fileid import COUNT, FileIdentity, Manifest, open_parquet, parquet_columns, reading
from analysis.store.user_cache import cache_file, load_dict, save_dict

#: bumped when what a cached schema holds changes
SCHEMA_VERSION = 1


def dataset_schema(cfg: AnalysisConfig, dataset: str, manifest: Manifest) -> dict[str, str]:
    """``{branch: type}`` of a dataset's input (the generator's, or its first file's).

    >>> dataset_schema(load_config("configs/cms2015_files.yaml"), "ttbar_2015", Manifest(outdir))["Jet_pt"]
    'var * float32'
    """
    if datasets.is_generated(cfg, dataset):
        from analysis.io.demo_streams import BRANCH_TYPES

        return dict(BRANCH_TYPES)
    ident = datasets.identify(cfg, dataset, datasets.input_files(cfg, dataset)[0], manifest)
    tree = cfg.datasets[dataset].get("tree", cfg.tree)
    return _cached(manifest.path.parent / "schemas.json", ident, tree)


def _cached(path: Path, ident: FileIdentity, tree: str) -> dict[str, str]:
    """The schema from the store's cache ``path`` or the user's (a fact about the file's
    content, so it holds for any store: a new store does not open every input again),
    else read from the file; written to both."""
    key = json.dumps([SCHEMA_VERSION, ident.key(), tree, ident.format], sort_keys=True)
    places = [path, *filter(None, [cache_file("schemas.json")])]
    caches = [load_dict(place) for place in places]
    types = next((cache[key] for cache in caches if isinstance(cache.get(key), dict)), None)
    if types is None:
        types = file_types(ident.path, tree, ident.format)
    for place, cache in zip(places, caches):
        if cache.get(key) != types:
            save_dict(place, {**cache, key: types}, indent=1)
    return types


def file_types(path: str, tree: str = "Events", fmt: str = "root") -> dict[str, str]:
    """``{branch: type}`` of one file, from its metadata only (every failure an
    InputFileError naming the file).

    >>> file_types(nano)["Jet_btagCSVV2"]
    'var * float32'
    """
    if fmt == "parquet":
        return reading(path, "reading the parquet schema", lambda: _parquet_types(path))
    return reading(path, "reading the tree's branch types", lambda: _root_types(path, tree))


def _root_types(path: str, tree: str) -> dict[str, str]:
    import uproot

    out = {}
    with uproot.open(path) as handle:
        for name, branch in handle[tree].items(recursive=False):
            try:
                out[name] = str(branch.interpretation.awkward_form(None).type)
            except Exception:          # a branch uproot cannot interpret: not readable anyway
                continue
    return out


def _parquet_types(path: str) -> dict[str, str]:
    import pyarrow as pa

    def is_list(t) -> bool:
        return pa.types.is_list(t) or pa.types.is_large_list(t)

    with open_parquet(path) as handle:
        schema = handle.schema_arrow
    out = {}
    for name, (column, field) in parquet_columns(schema).items():
        outer = schema.field(column).type
        if field == COUNT:
            out[name] = "int64"                     # ak.num of the list column
            continue
        jagged = is_list(outer)
        inner = outer.value_type if jagged else outer
        if field is not None:
            inner = inner.field(field).type
        if is_list(inner):                          # a list field of a struct (MET.values)
            jagged, inner = True, inner.value_type
        out[name] = ("var * " if jagged else "") + _ARROW.get(str(inner), str(inner))
    return out


_ARROW: dict[str, Any] = {"float": "float32", "double": "float64", "halffloat": "float16"}
