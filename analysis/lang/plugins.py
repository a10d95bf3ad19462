"""Plugin files a config names, checked for trust, and the functions they export.

A config may call Python functions from files it lists under ``plugins:`` (alias ->
``.py`` file, relative to the config). Plugins are files only: a module name such as
``subprocess`` is refused. A file runs only when trusted (:mod:`analysis.lang.trust`),
and not when the config loads: its exported functions are read from its syntax tree
(top-level ``def`` without a leading ``_``, narrowed by a literal ``__all__``; names it
imports are never exported), as are the fields a function declares it reads
(``f.reads = (...)``); the file is executed at the first call, from the
bytes that were trusted (a file edited since is refused). Its normalised source enters
the content address of every task whose expressions call it, so editing a plugin reruns
exactly the tasks that use it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.abc
import importlib.util
import inspect
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from analysis.errors import ExpressionError, PluginError
from analysis.lang import trust
from analysis.store.code_source import source_fingerprint

MAX_PLUGIN_BYTES = 1 << 20
_MODULES: dict[tuple[str, str], ModuleType] = {}


@dataclass(frozen=True)
class PluginFunction:
    """A plugin's exported function, bound lazily: the file runs at the first call.
    ``reads``: the fields it declares it reads of a collection (``f.reads = (...)``)."""

    source_path: str
    sha256: str
    name: str
    reads: tuple[str, ...] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(_module(self.source_path, self.sha256), self.name)(*args, **kwargs)


@dataclass(frozen=True)
class Plugin:
    alias: str
    source_path: str          # the resolved file
    sha256: str               # of the bytes that were trusted
    exports: tuple[str, ...]  # the functions expressions may call
    reads: tuple[tuple[str, tuple[str, ...]], ...] = ()    # declared ``f.reads``, read statically

    @property
    def fingerprint(self) -> str:
        """Of the plugin's normalised source (comments, docstrings and formatting do not
        count) and of its import statements in full (which library a name comes from does)."""
        return _fingerprint(self.source_path, self.sha256)

    def functions(self) -> dict[str, PluginFunction]:
        """The exported functions, as ``{"alias.name": callable}``."""
        reads = dict(self.reads)
        return {f"{self.alias}.{name}": PluginFunction(self.source_path, self.sha256, name, reads.get(name))
                for name in self.exports}


@functools.lru_cache(maxsize=256)
def _fingerprint(path: str, sha256: str) -> str:
    """:attr:`Plugin.fingerprint`, once per process for each trusted content (every task
    of a DAG asks for it: 20 times for the AGC's)."""
    text = Path(path).read_text()
    imports = sorted(ast.unparse(node) for node in ast.walk(ast.parse(text))
                     if isinstance(node, (ast.Import, ast.ImportFrom)))
    digest = hashlib.sha256(source_fingerprint(text, path).encode())
    digest.update("\n".join(imports).encode())
    return digest.hexdigest()[:20]


def exported_functions(source: str, filename: str = "<plugin>") -> tuple[str, ...]:
    """The functions a plugin's source defines at top level for expressions to call.

    >>> exported_functions("from os import system\\ndef m_bjj(j): ...\\ndef _h(): ...")
    ('m_bjj',)
    >>> exported_functions("__all__ = ['b']\\ndef a(): ...\\ndef b(): ...")
    ('b',)
    """
    tree = ast.parse(source, filename)
    defined = [node.name for node in tree.body
               if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")]
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            try:
                listed = set(ast.literal_eval(node.value))
            except ValueError:
                continue
            defined = [name for name in defined if name in listed]
    return tuple(sorted(set(defined)))


def declared_reads(source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``f.reads = (...)`` declarations at top level, read without running the file: a
    tuple of strings, possibly ``+`` of module-level tuples.

    >>> declared_reads("K = ('pt', 'eta')\\ndef f(j): ...\\nf.reads = K + ('mass',)")
    (('f', ('pt', 'eta', 'mass')),)
    """
    known: dict[str, tuple] = {}
    found = []

    def value(node: ast.AST) -> tuple | None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = value(node.left), value(node.right)
            return left + right if left is not None and right is not None else None
        if isinstance(node, ast.Name):
            return known.get(node.id)
        try:
            literal = ast.literal_eval(node)
        except (ValueError, SyntaxError):
            return None
        return tuple(literal) if isinstance(literal, (tuple, list)) and all(
            isinstance(x, str) for x in literal) else None

    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, result = node.targets[0], value(node.value)
        if isinstance(target, ast.Name) and result is not None:
            known[target.id] = result
        elif isinstance(target, ast.Attribute) and target.attr == "reads" and isinstance(target.value, ast.Name) \
                and result is not None:
            found.append((target.value.id, result))
    return tuple(found)


def _read(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError:
        raise PluginError(f"plugin file not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PluginError(f"plugin must be a regular file: {path}")
    if info.st_size > MAX_PLUGIN_BYTES:
        raise PluginError(f"plugin file is {info.st_size} bytes; the limit is {MAX_PLUGIN_BYTES}: {path}")
    return path.read_bytes()


def load_plugin(alias: str, spec: str, base_dir: Path) -> Plugin:
    """Check a plugin file (``plugins/agc.py``, relative to ``base_dir``): a file, trusted,
    Python. Nothing in it runs here.

    >>> plugin = load_plugin("agc", "plugins/agc.py", Path("configs"))
    >>> plugin.alias, sorted(plugin.functions())[:2]
    ('agc', ['agc.jer_factor', 'agc.m_bjj'])
    """
    if not spec.endswith(".py"):
        raise PluginError(f"plugins are files only: {spec!r} is not a .py file (a module name such as "
                          "'subprocess' is refused; write the functions you need in a file)")
    try:
        path = (base_dir / spec).resolve()
    except (OSError, ValueError) as err:          # e.g. an embedded NUL byte
        raise PluginError(f"plugin path {spec!r} is not a usable path ({err})") from None
    data = _read(path)
    digest = trust.sha256_hex(data)
    if trust.trusted_by(path, digest) is None:
        raise PluginError(trust.untrusted_message(alias, path, digest))
    try:
        exports = exported_functions(data.decode(), str(path))
        reads = declared_reads(data.decode())
    except (SyntaxError, UnicodeDecodeError, ValueError) as err:
        raise PluginError(f"plugin {path} is not valid Python: {err}") from None
    return Plugin(alias, str(path), digest, exports, reads)


def trusted_plugin(alias: str, source_path: str, sha256: str) -> Plugin:
    """A plugin that the config loader already checked (in a worker process, say): its
    exports are read again from the trusted bytes.

    >>> checked = load_plugin("agc", "plugins/agc.py", Path("configs"))
    >>> trusted_plugin("agc", checked.source_path, checked.sha256) == checked
    True
    """
    data = _read(Path(source_path))
    if trust.sha256_hex(data) != sha256:
        raise PluginError(f"plugin {source_path} changed since it was checked; run again")
    return Plugin(alias, source_path, sha256, exported_functions(data.decode(), source_path),
                  declared_reads(data.decode()))


class _TrustedBytes(importlib.abc.SourceLoader):
    """An import loader that serves the bytes whose hash was trusted, not the file as it
    may be now (no window between the check and the import)."""

    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        return self.data


def _module(source_path: str, sha256: str) -> ModuleType:
    """Execute the plugin file from the bytes that were trusted (once per process)."""
    module = _MODULES.get((source_path, sha256))
    if module is not None:
        return module
    data = Path(source_path).read_bytes()
    if trust.sha256_hex(data) != sha256:
        raise ExpressionError(f"plugin {source_path} changed since it was trusted; it will not run "
                              "(check it, trust it again, run again)", reason="plugin changed")
    name = f"heirloom_plugin_{sha256[:16]}"
    spec = importlib.util.spec_from_loader(name, _TrustedBytes(source_path, data), origin=source_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)         # Python's import machinery, on the trusted bytes
    for export in exported_functions(data.decode(), source_path):
        value = module.__dict__.get(export)
        if not (inspect.isfunction(value) and value.__module__ == name):
            raise ExpressionError(f"plugin {source_path}: {export!r} is not a function it defines",
                                  reason="plugin export")
    _MODULES[(source_path, sha256)] = module
    return module
