"""Read YAML analysis configs with line numbers and resolve ``extends:`` by deep merge.

Every value keeps the (file, line) where it was written, so later checks (schema,
expressions) can point a physicist at the exact line of the file that is wrong, even
when the value came from a parent config through ``extends:``.

A config may come from a stranger, so reading one is bounded (docs/config-reference.md,
"Limits"): a config is a regular file of at most :data:`MAX_CONFIG_BYTES`, its YAML may
not expand through aliases to more than :data:`MAX_YAML_NODES` values or
:data:`MAX_YAML_CHARS` characters (a "billion laughs" document), nor nest deeper than
:data:`MAX_YAML_DEPTH`, and an ``extends:`` chain holds at most :data:`MAX_EXTENDS_DEPTH`
configs. These are checked on the composed YAML nodes, before any object is built.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from analysis.config.errors import ConfigError
from analysis.config.files import MAX_CONFIG_BYTES, MiB, file_kind, regular_file, size_text

KeyPath = tuple  # e.g. ("selection", 0, "cut")
Locations = dict  # KeyPath -> (file, line)

MAX_YAML_NODES = 200_000        # values (scalars, lists, mappings, keys) once aliases are expanded
MAX_YAML_CHARS = 16 * MiB       # characters of all scalars once aliases are expanded
MAX_YAML_DEPTH = 100            # nesting levels (the document itself is level 1)
MAX_EXTENDS_DEPTH = 20          # configs in an ``extends:`` chain, the first one included


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override is a classic config bug)
    and documents that expand (through aliases) or nest beyond the limits."""

    heirloom_file: str | None = None    # the file being read, for error messages

    def __init__(self, stream: str):
        super().__init__(stream)
        self.heirloom_path: list = []       # key path of the node being composed (None: no key)
        self.heirloom_sizes: dict = {}      # id(node) -> (values, characters, depth), aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> Any:
        event = self.peek_event()
        self.heirloom_path.append(index.value if isinstance(index, yaml.ScalarNode) else
                                  index if isinstance(index, int) else None)
        try:
            if len(self.heirloom_path) > MAX_YAML_DEPTH:
                raise self.heirloom_error(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            node = super().compose_node(parent, index)
            _measure(self, node, event)
        finally:
            self.heirloom_path.pop()
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as err:   # e.g. an integer of 5000 digits
            if isinstance(err, ConfigError):
                raise
            raise self.heirloom_error(f"cannot read this value: {str(err).split(';')[0]}", node.start_mark) from None

    def heirloom_error(self, message: str, mark: Any) -> ConfigError:
        """A ConfigError at ``mark``, keyed by the path of the node being composed."""
        parts = [str(part) for part in self.heirloom_path if part is not None]
        key = ".".join(parts[:8] + ["..."] * (len(parts) > 8)) or None
        return ConfigError(message, file=self.heirloom_file, line=mark.line + 1, key=key)


def _measure(loader: _LineLoader, node: Any, event: Any) -> None:
    """Record the size of ``node`` with its aliases expanded; refuse one over the limits.

    Sizes are memoised per node, so a "billion laughs" document costs one step per node
    written, and is refused at the first value whose expansion is too big.
    """
    sizes = loader.heirloom_sizes
    if id(node) not in sizes:
        if isinstance(event, yaml.AliasEvent):       # an alias to a node still being composed
            raise loader.heirloom_error(f"recursive alias *{event.anchor}", event.start_mark)
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = (1, len(node.value), 1)
        else:
            children = [sizes[id(c)] for pair in node.value for c in (pair if isinstance(pair, tuple) else (pair,))]
            sizes[id(node)] = (1 + sum(c[0] for c in children), sum(c[1] for c in children),
                               1 + max((c[2] for c in children), default=0))
    values, chars, depth = sizes[id(node)]
    anchor = f" (anchor &{event.anchor})" if event.anchor and not isinstance(event, yaml.AliasEvent) else ""
    if values > MAX_YAML_NODES:
        raise loader.heirloom_error(f"this value{anchor} holds {values} values once its YAML aliases are "
                                    f"expanded; the limit is {MAX_YAML_NODES}", event.start_mark)
    if chars > MAX_YAML_CHARS:
        raise loader.heirloom_error(f"this value{anchor} holds {size_text(chars)} of text once its YAML "
                                    f"aliases are expanded; the limit is {size_text(MAX_YAML_CHARS)}",
                                    event.start_mark)
    if len(loader.heirloom_path) - 1 + depth > MAX_YAML_DEPTH:
        raise loader.heirloom_error(f"nested deeper than {MAX_YAML_DEPTH} levels once its YAML aliases are "
                                    "expanded", event.start_mark)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key '{key}' (first written on line {seen[key]})",
                              file=getattr(loader, "heirloom_file", None),
                              line=key_node.start_mark.line + 1, key=str(key))
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _record_lines(node: yaml.Node, path: KeyPath, file: str, out: Locations) -> None:
    out[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = (file, key_node.start_mark.line + 1)
            _record_lines(value_node, path + (key,), file, out)
            out[path + (key,)] = (file, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), file, out)


def read_yaml(path: str | os.PathLike) -> tuple[dict, Locations]:
    """Parse one YAML file into (data, locations) without following ``extends:``.

    >>> data, where = read_yaml("configs/demo.yaml")
    >>> data["extends"], where[("datasets", "ttbar__scaleup")]
    ('agc_ttbar.yaml', ('configs/demo.yaml', 15))
    """
    file = str(path)
    data, node = _parse(_read_text(path, file), file)
    if not isinstance(data, dict):
        raise ConfigError("the top level of a config must be a mapping", file=file, line=1)
    locations: Locations = {}
    if node is not None:
        _record_lines(node, (), file, locations)
    return data, locations


def _parse(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    r"""The data of a one-document YAML text and its node; refuses a document that expands
    (through aliases) or nests beyond the limits before building any object from it.

    >>> _parse("a: &a [x, y]\nb: [*a, *a]\n", "c.yaml")[0]
    {'a': ['x', 'y'], 'b': [['x', 'y'], ['x', 'y']]}
    >>> ten = lambda name: "[" + ", ".join([name] * 10) + "]"
    >>> bomb = f"a: &a {ten('x')}\n" + "".join(f"{c}: &{c} {ten('*' + p)}\n" for p, c in zip("abcde", "bcdef"))
    >>> _parse(bomb, "c.yaml")
    Traceback (most recent call last):
    analysis.errors.ConfigError: c.yaml:6: key 'f': this value (anchor &f) holds 1111111 values once its YAML aliases are expanded; the limit is 200000
    """
    loader = _LineLoader(text)
    loader.heirloom_file = file
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else {}), node
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"malformed YAML: {err.problem or err}", file=file, line=line) from None
    except yaml.YAMLError as err:          # e.g. a ReaderError: characters YAML does not allow
        raise ConfigError(f"not YAML text: {str(err).splitlines()[0]}", file=file) from None
    finally:
        loader.dispose()


def _read_text(path: str | os.PathLike, file: str) -> str:
    """The text of a config: a regular file of at most MAX_CONFIG_BYTES bytes, in UTF-8.

    >>> _read_text("/dev/zero", "c.yaml")
    Traceback (most recent call last):
    analysis.errors.ConfigError: c.yaml: config must be a regular file (/dev/zero is a character device)
    """
    try:
        regular_file(path, limit=MAX_CONFIG_BYTES, what="config")
        data = _read_at_most(Path(path), MAX_CONFIG_BYTES + 1)
    except ValueError as err:
        raise ConfigError(str(err), file=file) from None
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", file=file) from None
    if len(data) > MAX_CONFIG_BYTES:               # it grew after the check
        raise ConfigError(f"config is over {size_text(MAX_CONFIG_BYTES)}; the limit is "
                          f"{size_text(MAX_CONFIG_BYTES)}", file=file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config is not UTF-8 text ({err.reason} at byte {err.start})", file=file,
                          line=data.count(b"\n", 0, err.start) + 1) from None


def _read_at_most(path: Path, size: int) -> bytes:
    """At most ``size`` bytes of a regular file (opened without blocking: it may have been
    swapped for a FIFO since it was checked)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as stream:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"config must be a regular file ({path} is {file_kind(mode)})")
        return stream.read(size)


def deep_merge(base: Any, override: Any, base_where: Locations, over_where: Locations,
               path: KeyPath = ()) -> tuple[Any, Locations]:
    """Merge ``override`` into ``base``: mappings merge key by key, anything else is replaced.

    A key set to ``null`` in the override removes it from the result (so a fork can drop a
    dataset or a systematic). The locations (those under ``path``) follow the values; this
    costs one step per key of every location, never one per pair of them.

    >>> deep_merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {}, {})[0]
    {'a': {'x': 1, 'y': 3}}
    """
    n = len(path)
    where = {p: loc for p, loc in base_where.items()
             if p[:n] == path and _origin(base, override, p[n:]) in ("base", "both")}
    where.update({p: loc for p, loc in over_where.items()
                  if p[:n] == path and _origin(base, override, p[n:]) in ("override", "both")})
    return _merge_values(base, override), where


def _merge_values(base: Any, override: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    merged = dict(base)
    for key, value in override.items():
        if value is None and key in merged:
            del merged[key]
        else:
            merged[key] = _merge_values(merged[key], value) if key in merged else value
    return merged


def _origin(base: Any, override: Any, relative: KeyPath) -> str | None:
    """Where the merged value at ``relative`` comes from: "base", "override", "both" (two
    mappings merged there: the override's location wins) or None (removed by a ``null``)."""
    for key in relative:
        if not (isinstance(base, dict) and isinstance(override, dict)):
            return "override"
        if key not in override:
            return "base"
        if key not in base:
            return "override"
        if override[key] is None:
            return None
        base, override = base[key], override[key]
    return "both" if isinstance(base, dict) and isinstance(override, dict) else "override"


def load_with_extends(path: str | os.PathLike, _chain: tuple = ()) -> tuple[dict, Locations, list[str]]:
    """Read a config and, recursively, the configs it ``extends:``.

    Returns the merged data, the location of every key, and the list of files read
    (parents first). ``extends:`` paths are relative to the file that names them.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        raise ConfigError("circular 'extends:' chain: " + " -> ".join(str(p) for p in _chain + (resolved,)),
                          file=str(path), key="extends")
    data, where = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data, where, [str(path)]
    parent_path = _parent_path(path, parent, where, len(_chain) + 1)
    base, base_where, files = load_with_extends(parent_path, _chain + (resolved,))
    where.pop(("extends",), None)
    merged, merged_where = deep_merge(base, data, base_where, where)
    return merged, merged_where, files + [str(path)]


def _parent_path(path: Path, parent: Any, where: Locations, depth: int) -> Path:
    """The config that ``path`` (the ``depth``-th of its chain) extends: a regular file of at
    most MAX_CONFIG_BYTES bytes, else a ConfigError on the ``extends:`` line."""
    file, line = where.get(("extends",), (str(path), None))
    if not isinstance(parent, str):
        raise ConfigError("'extends' must be a path to another config", file=file, line=line, key="extends")
    if depth >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"the 'extends:' chain is longer than {MAX_EXTENDS_DEPTH} configs",
                          file=file, line=line, key="extends")
    parent_path = path.parent / parent
    if not parent_path.exists():
        raise ConfigError(f"extended config '{parent}' not found (looked for {parent_path})",
                          file=file, line=line, key="extends")
    try:
        regular_file(parent_path, limit=MAX_CONFIG_BYTES, what="extended config")
    except ValueError as err:
        raise ConfigError(str(err), file=file, line=line, key="extends") from None
    return parent_path
