"""Load the plugin modules a config names explicitly, and fingerprint their sources.

A config may only call Python functions from modules it lists under ``plugins:``
(alias -> file path relative to the config, or an importable module name). Their
source text goes into the content address of every task whose expressions call them,
so editing a plugin reruns exactly the tasks that use it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from analysis.store.code_source import source_fingerprint


@dataclass(frozen=True)
class Plugin:
    alias: str
    source_path: str          # where the module's source lives (for fingerprints)
    module: ModuleType

    @property
    def fingerprint(self) -> str:
        """Of the plugin's normalised source (comments, docstrings and formatting do not
        count) and of its import statements in full (which library a name comes from does)."""
        text = Path(self.source_path).read_text()
        imports = sorted(ast.unparse(node) for node in ast.walk(ast.parse(text))
                         if isinstance(node, (ast.Import, ast.ImportFrom)))
        digest = hashlib.sha256(source_fingerprint(text, self.source_path).encode())
        digest.update("\n".join(imports).encode())
        return digest.hexdigest()[:20]

    def functions(self) -> dict[str, Callable]:
        """Public functions of the module, as ``{"alias.name": function}``."""
        return {f"{self.alias}.{name}": obj for name, obj in vars(self.module).items()
                if inspect.isfunction(obj) and not name.startswith("_")
                and obj.__module__ == self.module.__name__}


def load_plugin(alias: str, spec: str, base_dir: Path) -> Plugin:
    """Import a plugin from a path (``plugins/agc.py``, relative to ``base_dir``) or module name.

    >>> plugin = load_plugin("agc", "plugins/agc.py", Path("configs"))
    >>> plugin.alias, sorted(plugin.functions())[:2]
    ('agc', ['agc.jer_factor', 'agc.m_bjj'])
    """
    if spec.endswith(".py"):
        path = (base_dir / spec).resolve()
        if not path.exists():
            raise FileNotFoundError(f"plugin module '{spec}' not found (looked for {path})")
        name = f"heirloom_plugin_{alias}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__heirloom_mtime__", None) != path.stat().st_mtime_ns:
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot import plugin module '{spec}' ({path})")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            setattr(module, "__heirloom_mtime__", path.stat().st_mtime_ns)
        return Plugin(alias, str(path), module)
    module = importlib.import_module(spec)
    source = inspect.getsourcefile(module)
    if source is None:          # a compiled module: no source to fingerprint
        raise ImportError(f"plugin module '{spec}' has no Python source")
    return Plugin(alias, source, module)
