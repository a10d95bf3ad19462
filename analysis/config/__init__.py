"""Analysis configs: YAML + ``extends:`` + schema + restricted expressions.

This package checks a config on its own terms; :func:`analysis.load.load_config` adds the
checks of the sections that other layers read, and is what tasks and tools call.

>>> cfg = read_config("configs/demo.yaml")
>>> cfg.name, list(cfg.datasets)[:2]
('agc_demo', ['ttbar', 'single_top_s_chan'])
"""

from analysis.config.errors import ConfigError
from analysis.config.model import AnalysisConfig, read_config

__all__ = ["AnalysisConfig", "ConfigError", "read_config"]
