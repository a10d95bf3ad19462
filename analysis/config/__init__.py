"""Analysis configs: YAML + ``extends:`` + schema + restricted expressions.

>>> cfg = load_config("configs/demo.yaml")     # doctest: +SKIP
>>> cfg.name, list(cfg.datasets)[:2]           # doctest: +SKIP
('agc_demo', ['ttbar', 'single_top_s_chan'])
"""

from analysis.config.errors import ConfigError
from analysis.config.model import AnalysisConfig, load_config

__all__ = ["AnalysisConfig", "ConfigError", "load_config"]
