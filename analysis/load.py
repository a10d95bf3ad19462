"""Load an analysis config with every check: the one entry point for tasks and tools.

:func:`analysis.config.read_config` checks the schema and the references inside a
config. The sections that the higher layers read are checked by the code that reads
them, here, before anything runs: external histograms (:mod:`analysis.hist.external`),
the AGC layout names (:mod:`analysis.hist.agc_layout`), batch resources
(:mod:`analysis.batch.resources`), the histograms' size
(:mod:`analysis.hist.histograms`), a limit's signal
(:mod:`analysis.stats.limits`), ONNX models (:mod:`analysis.ml.models`) and a published likelihood
(:mod:`analysis.likelihood.published`). :func:`check_inputs` then checks the config against
its input files before any task runs: every file readable, every name a branch, every
expression's types (:mod:`analysis.select.typecheck`).

>>> cfg = load_config("configs/agc_ttbar.yaml")
>>> cfg.name
'agc_ttbar'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from analysis.batch.resources import check_resources
from analysis.config import AnalysisConfig, read_config
from analysis.io.fileid import Manifest
from analysis.hist import agc_layout, external, histograms
from analysis.likelihood import published
from analysis.ml import models
from analysis.plot import layout as plot_layout
from analysis.stats import limits

def load_config(path: str | os.PathLike) -> AnalysisConfig:
    """:func:`~analysis.config.read_config` plus the checks of every domain section;
    raises :class:`~analysis.errors.ConfigError` naming the file, line and key."""
    cfg = read_config(path)
    if cfg.data_checked:
        return cfg
    if "likelihood" in cfg.data:
        published.check_config(cfg)
    if cfg.data.get("external_histograms"):
        external.check_config(cfg)
    histograms.check_size(cfg)
    if cfg.data.get("models"):
        models.check_config(cfg)
    if cfg.data.get("resources"):
        check_resources(cfg)
    if any("agc_name" in syst for syst in cfg.systematics.values()):
        agc_layout.check_config(cfg)
    if cfg.data.get("limit"):
        limits.check_config(cfg)
    if "likelihood" not in cfg.data:
        plot_layout.check_config(cfg)
    cfg.data_checked = True
    return cfg


def check_inputs(cfg: AnalysisConfig, manifest: Manifest, checks: Path | Sequence[Path] | None = None, *,
                 strict: bool = True) -> None:
    """The config against its input files, before any task runs: every listed file
    readable (an InputFileError naming the file and the config line that lists it), every
    name an expression reads a branch (:func:`analysis.config.branches.check_names`) and,
    with ``checks`` (the JSON files of passed checks: the store's and the user's), every expression evaluated on
    type-only arrays of the files' schema (:mod:`analysis.select.typecheck`). Not
    ``strict`` (a tool that only computes keys): a dataset whose files cannot be read is
    skipped, left to what reads it. For a likelihood config: the archive and the members it names.

    >>> from analysis.io.fileid import Manifest
    >>> check_inputs(load_config("configs/demo.yaml"), Manifest(outdir), outdir / "checks.json")
    """
    if "likelihood" in cfg.data:                # a published likelihood: no event files
        published.check_archive(cfg)
        return
    from analysis.config.branches import check_names
    from analysis.errors import InputFileError
    from analysis.io import datasets
    from analysis.io.schema import dataset_schema

    schemas = {}
    for dataset, spec in cfg.datasets.items():
        if spec["kind"] == "pseudodata" or not ("files" in spec or "generator" in spec):
            continue
        try:
            for path in datasets.input_files(cfg, dataset) if "files" in spec and strict else []:
                datasets.identify(cfg, dataset, path, manifest)
            check_names(cfg, datasets.dataset_branches(cfg, dataset, manifest))
            schemas[dataset] = dataset_schema(cfg, dataset, manifest)
        except InputFileError:
            if strict:
                raise
    manifest.save()
    if checks is not None and schemas:
        from analysis.select.typecheck import check_types_once

        check_types_once(cfg, schemas, checks)
