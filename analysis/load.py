"""Load an analysis config with every check: the one entry point for tasks and tools.

:func:`analysis.config.read_config` checks the schema and the references inside a
config. The sections that the higher layers read are checked by the code that reads
them, here, before anything runs: external histograms (:mod:`analysis.hist.external`),
the AGC layout names (:mod:`analysis.hist.agc_layout`), batch resources
(:mod:`analysis.batch.resources`), the histograms' size
(:mod:`analysis.hist.histograms`), a limit's signal
(:mod:`analysis.stats.limits`), ONNX models (:mod:`analysis.ml.models`) and a published likelihood
(:mod:`analysis.likelihood.published`).

>>> cfg = load_config("configs/agc_ttbar.yaml")
>>> cfg.name
'agc_ttbar'
"""

from __future__ import annotations

import os

from analysis.batch.resources import check_resources
from analysis.config import AnalysisConfig, read_config
from analysis.hist import agc_layout, external, histograms
from analysis.likelihood import published
from analysis.ml import models
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
    cfg.data_checked = True
    return cfg
